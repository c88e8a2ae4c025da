"""Datasets in, splits out: load a file or registered dataset, validate it, split it.

Every refusal names the column and the first offending rows, because "the target has
NaN" is useless on a 200,000-row file without the row numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.ml.candidates.base import Inputs, Task

_SHOW_ROWS = 5
_MAX_CLASSES_FOR_AUTO = 50


@dataclass
class DataSpec:
    target: str
    path: Path | None = None
    dataset: str | None = None  # a registry ref, e.g. tickets@2
    text: str | None = None
    features: list[str] | None = None
    task: Task | None = None
    test_size: float = 0.2
    seed: int = 0
    split_column: str | None = None  # values "train"/"test" instead of a random split


@dataclass
class Dataset:
    inputs: Inputs
    y: np.ndarray
    task: Task
    columns: list[str]  # the feature columns, or [text]
    source: str  # the path or registry ref it came from
    dataset_ref: str | None  # the registered version, for lineage
    split_values: np.ndarray | None = None


@dataclass
class Split:
    x_train: Inputs
    y_train: np.ndarray
    x_test: Inputs
    y_test: np.ndarray
    method: str  # "stratified", "random" or "column:NAME"
    seed: int
    test_size: float

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "test_size": self.test_size,
                "train_rows": len(self.y_train), "test_rows": len(self.y_test)}  # fmt: skip


def read_table(path: Path) -> Any:
    """CSV, Parquet or JSONL by content-free suffix rules users expect; errors name the file."""
    import pandas as pd

    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist", field="data.path", fix="check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInputError(
            f"{path.name} could not be read: {exc}".splitlines()[0], field="data.path"
        ) from None
    raise InvalidInputError(
        f"{path.name}: unsupported file type {suffix!r}",
        field="data.path",
        fix="use .csv, .tsv, .parquet or .jsonl",
    )


def prepare(frame: Any, spec: DataSpec, source: str, dataset_ref: str | None) -> Dataset:
    """Validate columns and target, infer the task, and build the candidate inputs."""
    columns = list(frame.columns)
    if spec.target not in columns:
        raise InvalidInputError(
            f"target column {spec.target!r} is not in {source}",
            field="data.target",
            fix=f"choose one of {', '.join(map(str, columns[:20]))}",
        )
    target = frame[spec.target]
    missing = np.flatnonzero(target.isna().to_numpy())
    if missing.size:
        raise InvalidInputError(
            f"target {spec.target!r} is empty in {missing.size} row(s): {_rows(missing)}",
            field="data.target",
            fix="drop or fill those rows",
        )
    task = spec.task or _infer_task(target)
    if spec.text and spec.features:
        raise InvalidInputError("give text or features, not both", field="data")
    if spec.text:
        inputs, used = _text_inputs(frame, spec.text, source), [spec.text]
    else:
        used = spec.features or [c for c in columns if c not in (spec.target, spec.split_column)]
        absent = [c for c in used if c not in columns]
        if absent:
            raise InvalidInputError(
                f"feature column(s) {', '.join(map(repr, absent))} not in {source}",
                field="data.features",
            )
        if not used:
            raise InvalidInputError("no feature columns", field="data.features")
        inputs = Inputs("tabular", frame=frame[used].reset_index(drop=True))
    y = target.to_numpy()
    if task == "classification":
        y = _labels(target, spec.target)
    else:
        try:
            y = target.astype(float).to_numpy()
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"target {spec.target!r} is not numeric, so it cannot be regressed",
                field="data.target",
                fix="set task: classification",
            ) from None
    split_values = None
    if spec.split_column:
        if spec.split_column not in columns:
            raise InvalidInputError(
                f"split column {spec.split_column!r} is not in {source}", field="data.split.column"
            )
        split_values = frame[spec.split_column].astype(str).str.lower().to_numpy()
        bad = np.flatnonzero(~np.isin(split_values, ["train", "test"]))
        if bad.size:
            raise InvalidInputError(
                f"split column {spec.split_column!r} must hold train or test; rows {_rows(bad)}",
                field="data.split.column",
            )
    return Dataset(inputs, y, task, used, source, dataset_ref, split_values)


def split(data: Dataset, spec: DataSpec) -> Split:
    """Deterministic: the same seed gives the same rows; stratified for classification."""
    from sklearn.model_selection import train_test_split

    n = len(data.y)
    if data.split_values is not None:
        train = np.flatnonzero(data.split_values == "train")
        test = np.flatnonzero(data.split_values == "test")
        if not len(train) or not len(test):
            raise InvalidInputError(
                "the split column needs both train and test rows", field="data.split.column"
            )
        method = f"column:{spec.split_column}"
    else:
        if not 0 < spec.test_size < 1:
            raise InvalidInputError("test_size must be between 0 and 1", field="data.split")
        index = np.arange(n)
        stratify = data.y if data.task == "classification" else None
        if stratify is not None:
            _check_stratifiable(data.y, spec.test_size)
        train, test = train_test_split(
            index, test_size=spec.test_size, random_state=spec.seed, stratify=stratify
        )
        method = "stratified" if stratify is not None else "random"
    if data.task == "classification":
        unseen = sorted(set(map(str, data.y[test])) - set(map(str, data.y[train])))
        if unseen:
            raise InvalidInputError(
                f"class(es) {', '.join(unseen)} appear only in the test rows",
                field="data.split",
                fix="add training examples for them or change the split",
            )
    return Split(
        data.inputs.take(np.sort(train)), data.y[np.sort(train)],
        data.inputs.take(np.sort(test)), data.y[np.sort(test)],
        method, spec.seed, spec.test_size,
    )  # fmt: skip


def _infer_task(target: Any) -> Task:
    import pandas as pd

    if pd.api.types.is_float_dtype(target):
        whole = bool((target.dropna() % 1 == 0).all())
        if not whole or target.nunique() > _MAX_CLASSES_FOR_AUTO:
            return "regression"  # fractional values are measurements, not class ids
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        return "regression" if target.nunique() > _MAX_CLASSES_FOR_AUTO else "classification"
    return "classification"


def _labels(target: Any, name: str) -> np.ndarray:
    values = target.to_numpy()
    classes = np.unique(values.astype(str))
    if len(classes) < 2:
        raise InvalidInputError(
            f"target {name!r} has a single class ({classes[0] if len(classes) else 'none'}); "
            "a classifier needs at least two",
            field="data.target",
        )
    # Labels keep their type when they are all ints or all strings; mixed ones become str.
    kinds = {type(v) for v in values}
    return values if len(kinds) == 1 else values.astype(str)


def _check_stratifiable(y: np.ndarray, test_size: float) -> None:
    classes, counts = np.unique(y.astype(str), return_counts=True)
    lonely = [str(c) for c, k in zip(classes, counts, strict=True) if k < 2]
    if lonely:
        raise InvalidInputError(
            f"class(es) {', '.join(lonely[:10])} have a single example, so a stratified split "
            "cannot put them on both sides",
            field="data.target",
            fix="add examples, merge rare classes, or give a split column",
        )


def _text_inputs(frame: Any, column: str, source: str) -> Inputs:
    if column not in frame.columns:
        raise InvalidInputError(f"text column {column!r} is not in {source}", field="data.text")
    values = frame[column]
    not_text = np.flatnonzero(~values.map(lambda v: isinstance(v, str)).to_numpy())
    if not_text.size:
        raise InvalidInputError(
            f"text column {column!r} holds non-text values in {not_text.size} row(s): "
            f"{_rows(not_text)}",
            field="data.text",
            fix="fill empty texts or drop those rows",
        )
    return Inputs("text", texts=values.tolist(), column=column)


def _rows(index: np.ndarray) -> str:
    """Row numbers as a spreadsheet shows them: 1-based, after the header line."""
    shown = ", ".join(str(int(i) + 2) for i in index[:_SHOW_ROWS])
    more = f" and {index.size - _SHOW_ROWS} more" if index.size > _SHOW_ROWS else ""
    return f"{shown}{more} (file line numbers)"
