"""A table to analyse: a registered dataset version or a CSV/Parquet/JSONL file.

``stoa experiments analyze`` and ``stoa monitor drift`` take either, as GrowthBook and
Evidently take a warehouse query's result or a data frame: an experiment or a model that
ran outside Stoa is analysed with the same engine. A name that is an existing file, or
ends like one, is a path; anything else is a dataset reference (``name@3``, ``name``
for the latest, ``name@champion``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stoa.core.errors import InvalidInputError

SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".txt")
#: Downloads a dataset version to a file: ``(ref, destination) -> path``.
Fetch = Callable[[str, Path], Path]


def is_path(ref: str) -> bool:
    return Path(ref).exists() or ref.lower().endswith(SUFFIXES) or "/" in ref


def load_table(ref: str, fetch: Fetch | None, field: str = "table") -> tuple[Any, str]:
    """The table as a pandas frame, and what it was (the path, or the dataset ref)."""
    from stoa.develop.ml.data import read_table

    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInputError("name a table", field=field, fix="give a dataset ref or a path")
    if is_path(ref):
        try:
            return read_table(Path(ref)), ref
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, field=field, fix=exc.fix) from None
    if fetch is None:
        raise InvalidInputError(
            f"{ref!r} is not a file", field=field, fix="give a CSV, Parquet or JSONL path"
        )
    with tempfile.TemporaryDirectory(prefix="stoa-table-") as tmp:
        path = fetch(ref, Path(tmp))
        return read_table(path), ref


def dataset_fetcher(client: Any) -> Fetch:
    """Fetch through a client (local stores or a server alike)."""

    def fetch(ref: str, folder: Path) -> Path:
        info = client.datasets.show(ref)
        name = Path(info.metadata.get("filename") or f"data.{info.format or 'csv'}").name
        return Path(client.datasets.download(info.ref, folder / name))

    return fetch
