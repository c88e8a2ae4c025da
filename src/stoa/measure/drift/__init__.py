"""Drift: does the current data still look like the reference?

``compare(reference, current)`` tests every common column with the test Evidently would
choose for its type and size, and decides for the dataset; ``DriftReport.to_dict()`` is
what ``stoa monitor drift --json`` prints. See docs/monitoring.md for the methods,
defaults and their agreement with Evidently.
"""

from stoa.measure.drift.columns import COLUMN_TYPES, infer_column_type
from stoa.measure.drift.report import Check, ColumnDrift, DriftReport, compare, default_method
from stoa.measure.drift.statistics import METHODS, Method
from stoa.measure.drift.text import TextEmbedder

__all__ = [
    "COLUMN_TYPES",
    "METHODS",
    "Check",
    "ColumnDrift",
    "DriftReport",
    "Method",
    "TextEmbedder",
    "compare",
    "default_method",
    "infer_column_type",
]
