"""Compare two tables column by column and decide whether the dataset drifted.

The test for a column follows its type and the reference's size, as Evidently chooses
it, so that decisions agree:

- up to 1,000 non-missing reference values: Kolmogorov-Smirnov for numbers,
  chi-squared for categories, a two-proportion z-test for columns with two values
  (numbers with at most five distinct values count as categories); drift at p < 0.05;
- above 1,000: Wasserstein distance over the reference's standard deviation for
  numbers (drift at >= 0.1), Jensen-Shannon distance for categories and for numbers
  with at most five distinct values (drift at >= 0.1);
- text and embeddings: a domain classifier's cross-validated AUC, with the distance
  between centroids reported beside it (see text.py).

The dataset drifts when the share of drifted columns is at least ``drift_share``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stoa.core.errors import InvalidInputError
from stoa.measure.drift.columns import (
    BINARY,
    CATEGORICAL,
    COLUMN_TYPES,
    EMBEDDING,
    NUMERIC,
    TEXT,
    Prepared,
    infer_column_type,
    prepare,
)
from stoa.measure.drift.distribution import column_distribution
from stoa.measure.drift.statistics import METHODS, TABULAR_TESTS, Method
from stoa.measure.drift.text import TextEmbedder, default_embedder, text_vectors, vector_drift

#: References with at most this many non-missing values get the small-sample tests.
SMALL_SAMPLE = 1_000
#: Numbers with at most this many distinct values (both sides) are tested as categories.
FEW_VALUES = 5
#: Tests that count values rather than compare numbers; their plots show categories.
_BY_VALUE = {"chisquare", "chisquare_homogeneity", "z", "jensenshannon", "psi"}


@dataclass(frozen=True)
class Check:
    """One test on one column: its score, threshold and decision."""

    test: str
    score: float
    threshold: float
    drifted: bool
    stattest_kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "score": _json_float(self.score),
            "threshold": _json_float(self.threshold),
            "drifted": self.drifted,
            "stattest_kind": self.stattest_kind,
        }


@dataclass(frozen=True)
class ColumnDrift:
    """The deciding check on one column, what it was run on, and other checks reported."""

    column: str
    type: str
    check: Check
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float
    distribution: dict[str, Any]
    secondary: tuple[Check, ...] = ()

    @property
    def drifted(self) -> bool:
        return self.check.drifted

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "type": self.type,
            **self.check.to_dict(),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "missing_reference": round(self.missing_reference, 6),
            "missing_current": round(self.missing_current, 6),
            "distribution": self.distribution,
            "secondary": [c.to_dict() for c in self.secondary],
        }


@dataclass(frozen=True)
class DriftReport:
    """Per-column results and the dataset-level decision."""

    columns: list[ColumnDrift]
    drift_share: float
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def drifted_columns(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def share(self) -> float:
        return self.drifted_columns / len(self.columns)

    @property
    def drifted(self) -> bool:
        return self.share >= self.drift_share

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, with stable keys: ``dataset``, ``columns`` and ``skipped``."""
        return {
            "dataset": {
                "drifted_columns": self.drifted_columns,
                "columns": len(self.columns),
                "share": self.share,
                "drift_share_threshold": self.drift_share,
                "drifted": self.drifted,
            },
            "columns": [c.to_dict() for c in self.columns],
            "skipped": list(self.skipped),
        }


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Iterable[str] | None = None,
    column_types: Mapping[str, str] | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    embedder: TextEmbedder | None = None,
) -> DriftReport:
    """Drift of ``current`` against ``reference`` over their common columns (or
    ``columns``), each with its default test or the one named in ``methods``, at its
    default threshold or the one in ``thresholds``. Columns whose type drift cannot read
    (dates, all missing) are listed under ``skipped`` with the reason."""
    names = _columns(reference, current, columns)
    column_types = _checked_types(column_types or {}, names)
    methods = _checked_keys(methods or {}, names, "methods")
    thresholds = _checked_keys(thresholds or {}, names, "thresholds")
    if isinstance(drift_share, bool) or not 0 < drift_share <= 1:
        raise InvalidInputError(
            f"drift_share must be in (0, 1], got {drift_share!r}",
            field="drift_share",
            fix="give the share of drifted columns that makes the dataset drift, e.g. 0.5",
        )
    results: list[ColumnDrift] = []
    skipped: list[dict[str, str]] = []
    for name in names:
        kind = column_types.get(name) or infer_column_type(reference[name])
        if kind is None:
            skipped.append({"column": name, "reason": f"type {reference[name].dtype} not read"})
            continue
        col = prepare(name, kind, reference[name], current[name])
        if col.n_reference == 0 or col.n_current == 0:
            side = "reference" if col.n_reference == 0 else "current"
            skipped.append({"column": name, "reason": f"no non-missing values in the {side}"})
            continue
        if kind in (TEXT, EMBEDDING):
            if embedder is None and kind == TEXT:
                embedder = default_embedder()
            result = _vector_column(col, methods.get(name), thresholds.get(name), embedder)
        else:
            result = _tabular_column(col, methods.get(name), thresholds.get(name), name)
        results.append(result)
    if not results:
        raise InvalidInputError(
            "no column could be compared: " + "; ".join(
                f"{s['column']}: {s['reason']}" for s in skipped),
            field="columns",
            fix="compare columns of numbers, categories, text or embeddings with values on "
            "both sides",
        )  # fmt: skip
    return DriftReport(results, float(drift_share), skipped)


def default_method(col: Prepared) -> str:
    """Evidently's choice: by the reference's size and the distinct values of both sides."""
    if col.type in (TEXT, EMBEDDING):
        return "domain_classifier"
    distinct = col.distinct()
    few = col.type != NUMERIC or distinct <= FEW_VALUES
    if col.n_reference <= SMALL_SAMPLE:
        if not few:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    return "jensenshannon" if few else "wasserstein"


def _tabular_column(
    col: Prepared, method_name: str | None, threshold: float | None, name: str
) -> ColumnDrift:
    if col.type in (NUMERIC, CATEGORICAL) and col.distinct() <= 2:
        col.type = BINARY
    if col.type == BINARY and col.distinct() > 2:
        raise InvalidInputError(
            f"column {name!r} is typed binary but has {col.distinct()} distinct values",
            field=f"column_types.{name}",
            fix="type it categorical, or leave its type to be inferred",
        )
    method = _method(col, method_name or default_method(col))
    limit = _threshold(method, threshold, name)
    score = TABULAR_TESTS[method.name](col)
    check = Check(method.name, score, limit, method.drifted(score, limit), method.kind)
    by_value = method.name in _BY_VALUE and (
        col.reference_sorted is None or col.distinct() <= FEW_VALUES
    )
    return ColumnDrift(
        col.column, col.type, check, col.n_reference, col.n_current,
        col.missing_reference, col.missing_current, column_distribution(col, by_value),
    )  # fmt: skip


def _vector_column(
    col: Prepared, method_name: str | None, threshold: float | None, embedder: Any
) -> ColumnDrift:
    method = _method(col, method_name or "domain_classifier")
    if col.type == TEXT:
        ref, cur = text_vectors(col.reference_items, col.current_items, embedder)  # type: ignore[arg-type]
    else:
        ref, cur = col.reference_items, col.current_items
    if len(ref) < 2 or len(cur) < 2:  # type: ignore[arg-type]
        raise InvalidInputError(
            f"column {col.column!r} needs at least 2 non-missing rows on each side",
            field=f"columns.{col.column}",
            fix="compare larger samples, or leave the column out",
        )
    auc_method, centroid_method = METHODS["domain_classifier"], METHODS["centroid_distance"]
    auc_limit = _threshold(auc_method, threshold if method is auc_method else None, col.column)
    drift = vector_drift(ref, cur, auc_floor=auc_limit)  # type: ignore[arg-type]
    if not (method is auc_method and threshold is not None):
        auc_limit = drift.auc_threshold
    centroid_limit = _threshold(
        centroid_method, threshold if method is centroid_method else None, col.column
    )
    checks = {
        "domain_classifier": Check(
            "domain_classifier", drift.auc, auc_limit,
            auc_method.drifted(drift.auc, auc_limit), auc_method.kind,
        ),
        "centroid_distance": Check(
            "centroid_distance", drift.centroid_distance, centroid_limit,
            centroid_method.drifted(drift.centroid_distance, centroid_limit),
            centroid_method.kind,
        ),
    }  # fmt: skip
    main = checks.pop(method.name)
    distribution = {
        "kind": "classifier_scores",
        "edges": drift.edges,
        "reference": drift.reference_shares,
        "current": drift.current_shares,
    }
    return ColumnDrift(
        col.column, col.type, main, col.n_reference, col.n_current,
        col.missing_reference, col.missing_current, distribution, tuple(checks.values()),
    )  # fmt: skip


def _method(col: Prepared, name: str) -> Method:
    method = METHODS.get(name)
    if method is None:
        raise InvalidInputError(
            f"unknown drift method {name!r} for column {col.column!r}",
            field=f"methods.{col.column}",
            fix=f"use one of {', '.join(sorted(METHODS))}",
        )
    numeric_only = method.applies_to == ("numeric",)
    fits = col.reference_sorted is not None if numeric_only else col.type in method.applies_to
    if not fits:
        usable = sorted(m.name for m in METHODS.values() if col.type in m.applies_to)
        raise InvalidInputError(
            f"drift method {name!r} does not apply to {col.type} column {col.column!r}",
            field=f"methods.{col.column}",
            fix=f"use one of {', '.join(usable)}",
        )
    return method


def _threshold(method: Method, value: float | None, column: str) -> float:
    if value is None:
        return method.default_threshold
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not method.threshold_ok(float(value))
    ):
        high = "" if math.isinf(method.high) else f" and at most {method.high:g}"
        raise InvalidInputError(
            f"threshold {value!r} for column {column!r} is out of range for {method.name}",
            field=f"thresholds.{column}",
            fix=f"give a number above {method.low:g}{high}",
        )
    return float(value)


def _columns(
    reference: pd.DataFrame, current: pd.DataFrame, requested: Iterable[str] | None
) -> list[str]:
    for side, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError(
                f"the {side} table must be a pandas DataFrame, got {type(frame).__name__}",
                field=side,
                fix="load the table with pandas (read_csv, read_parquet) first",
            )
        if frame.empty:
            raise InvalidInputError(
                f"the {side} table has no rows", field=side, fix=f"give a {side} table with rows"
            )
    if requested is not None:
        names = [str(c) for c in requested]
        for name in names:
            for side, frame in (("reference", reference), ("current", current)):
                if name not in frame.columns:
                    raise InvalidInputError(
                        f"column {name!r} is not in the {side} table",
                        field="columns",
                        fix=f"name columns both tables have: {_some(reference, current)}",
                    )
        if not names:
            raise InvalidInputError(
                "no columns named", field="columns", fix="name at least one column, or omit it"
            )
        return names
    shared = set(current.columns)
    names = [c for c in reference.columns if c in shared]
    if not names:
        raise InvalidInputError(
            "the reference and current tables have no column in common",
            field="columns",
            fix="compare tables with the same column names",
        )
    return names


def _checked_types(types: Mapping[str, str], names: list[str]) -> dict[str, str]:
    types = _checked_keys(types, names, "column_types")
    for name, kind in types.items():
        if kind not in COLUMN_TYPES:
            raise InvalidInputError(
                f"unknown column type {kind!r} for column {name!r}",
                field=f"column_types.{name}",
                fix=f"use one of {', '.join(COLUMN_TYPES)}",
            )
    return types


def _checked_keys(values: Mapping[str, Any], names: list[str], field_name: str) -> dict[str, Any]:
    known = set(names)
    for key in values:
        if key not in known:
            raise InvalidInputError(
                f"{field_name} names column {key!r}, which is not compared",
                field=f"{field_name}.{key}",
                fix="name one of the compared columns",
            )
    return dict(values)


def _some(reference: pd.DataFrame, current: pd.DataFrame) -> str:
    shared = [str(c) for c in reference.columns if c in set(current.columns)]
    return ", ".join(shared[:10]) or "none in common"


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
