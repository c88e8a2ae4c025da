"""Column types for drift, and each column cleaned into the shape its tests read.

Types follow Evidently's inference so that the test chosen for a column, and so its
decision, agree: floats are numeric; integers are categorical up to 10 distinct values
and numeric above; booleans and pandas categoricals are categorical; strings are text
when more than half the non-missing values are distinct and categorical otherwise; a
column of equal-length number lists or arrays is an embedding. A column of either
kind with at most two distinct values across both sides is reported as ``binary``.
Stoa infers from the reference (the baseline); Evidently infers from the current
data, so the two differ only when a column changes kind between the two tables.

Missing values (None, NaN, and +-inf in numeric columns) are dropped from each side
before testing, as Evidently does; the share dropped is reported per column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stoa.core.errors import InvalidInputError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
BINARY = "binary"
TEXT = "text"
EMBEDDING = "embedding"
COLUMN_TYPES = (NUMERIC, CATEGORICAL, BINARY, TEXT, EMBEDDING)

#: Integers with at most this many distinct values are categories (Evidently's limit).
INTEGER_CATEGORY_LIMIT = 10
#: Strings are free text when more than this share of the values are distinct.
TEXT_DISTINCT_SHARE = 0.5


def infer_column_type(values: pd.Series) -> str | None:
    """The drift type of a column, or None for what drift does not read (dates, empty)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_integer_dtype(dtype):
        return CATEGORICAL if values.nunique() <= INTEGER_CATEGORY_LIMIT else NUMERIC
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    present = values.dropna()
    if present.empty:
        return None
    first, last = present.iloc[0], present.iloc[-1]
    if isinstance(first, str) and isinstance(last, str):
        return TEXT if present.nunique() > len(present) * TEXT_DISTINCT_SHARE else CATEGORICAL
    if _is_vector(first) and _is_vector(last):
        return EMBEDDING
    return None


def _is_vector(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray) and len(value) > 0


@dataclass
class Counts:
    """A categorical column on both sides: its values (union, sorted where comparable)
    with the count of each in the reference and in the current table."""

    values: list[object]
    reference: np.ndarray
    current: np.ndarray

    @property
    def n_reference(self) -> int:
        return int(self.reference.sum())

    @property
    def n_current(self) -> int:
        return int(self.current.sum())


@dataclass
class Prepared:
    """One column cleaned for its tests: missing values dropped from each side."""

    column: str
    type: str
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float
    #: numeric: both sides sorted, float64
    reference_sorted: np.ndarray | None = None
    current_sorted: np.ndarray | None = None
    #: categorical and binary: the value counts of both sides
    counts: Counts | None = None
    #: text: the strings; embedding: the (rows, dimension) matrices
    reference_items: object = None
    current_items: object = None
    extra: dict[str, object] = field(default_factory=dict)

    def distinct(self) -> int:
        """Distinct values across both sides (what picks Evidently's test for a column)."""
        if self.counts is not None:
            return len(self.counts.values)
        assert self.reference_sorted is not None and self.current_sorted is not None
        return _distinct_sorted(self.reference_sorted, self.current_sorted)


def _distinct_sorted(a: np.ndarray, b: np.ndarray, *, cap: int = 5) -> int:
    """Distinct values across two sorted arrays, counted exactly up to ``cap + 1``:
    a column with more is tested as continuous, so the exact count above does not matter."""
    na = _distinct_in_sorted(a)
    nb = _distinct_in_sorted(b)
    if na > cap or nb > cap:
        return max(na, nb)
    return int(np.unique(np.concatenate([a, b])).size)


def _distinct_in_sorted(a: np.ndarray) -> int:
    return 0 if a.size == 0 else int(np.count_nonzero(a[1:] != a[:-1])) + 1


def value_counts(reference: pd.Series, current: pd.Series) -> Counts:
    """Counts of each non-missing value on both sides, over the union of values."""
    ref = reference.value_counts(dropna=True, sort=False)
    cur = current.value_counts(dropna=True, sort=False)
    both = pd.concat([ref.rename("r"), cur.rename("c")], axis=1).fillna(0)
    values = list(both.index)
    order = _sorted_order(values)
    r = both["r"].to_numpy(dtype=np.int64)[order]
    c = both["c"].to_numpy(dtype=np.int64)[order]
    return Counts([values[i] for i in order], r, c)


def _sorted_order(values: list[object]) -> np.ndarray:
    """A stable order for reports; values of mixed types keep their first-seen order."""
    try:
        return np.array(sorted(range(len(values)), key=values.__getitem__), dtype=np.intp)
    except TypeError:
        return np.arange(len(values))


def finite_sorted(values: pd.Series, column: str, side: str) -> np.ndarray:
    """The finite numbers of a column as sorted float64; a non-numeric one is refused."""
    if not (pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values)):
        raise InvalidInputError(
            f"column {column!r} is typed numeric but holds {values.dtype} values in the {side}",
            field=f"column_types.{column}",
            fix="type it categorical or text, or convert the column to numbers",
        )
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    array = array[np.isfinite(array)]
    array.sort(kind="quicksort")
    return array


def embedding_matrix(values: pd.Series, column: str, side: str) -> np.ndarray:
    """A column of equal-length number lists as a float64 matrix (rows, dimension)."""
    present = [v for v in values.to_numpy(dtype=object) if v is not None and _present(v)]
    if not present:
        return np.zeros((0, 0))
    lengths = {len(v) for v in present}
    if len(lengths) != 1:
        raise InvalidInputError(
            f"embedding column {column!r} mixes vector lengths {sorted(lengths)[:5]} in the {side}",
            field=f"{side}.{column}",
            fix="give every row a vector of the same length, from the same embedder",
        )
    try:
        return np.asarray(np.stack([np.asarray(v, dtype=np.float64) for v in present]))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"embedding column {column!r} holds values that are not numbers in the {side}",
            field=f"{side}.{column}",
            fix="store each row as a list or array of floats",
        ) from exc


def _present(value: object) -> bool:
    if isinstance(value, float):
        return not np.isnan(value)
    return _is_vector(value)


def text_values(values: pd.Series) -> list[str]:
    return [str(v) for v in values.dropna().to_numpy(dtype=object)]


def prepare(column: str, kind: str, reference: pd.Series, current: pd.Series) -> Prepared:
    """Clean one column for the tests of its type, counting what was dropped."""
    n_ref_rows, n_cur_rows = len(reference), len(current)
    if kind == NUMERIC:
        ref_sorted = finite_sorted(reference, column, "reference")
        cur_sorted = finite_sorted(current, column, "current")
        return Prepared(
            column, kind, ref_sorted.size, cur_sorted.size,
            _dropped(n_ref_rows, ref_sorted.size), _dropped(n_cur_rows, cur_sorted.size),
            reference_sorted=ref_sorted, current_sorted=cur_sorted,
        )  # fmt: skip
    if kind in (CATEGORICAL, BINARY):
        counts = value_counts(reference, current)
        return Prepared(
            column, kind, counts.n_reference, counts.n_current,
            _dropped(n_ref_rows, counts.n_reference), _dropped(n_cur_rows, counts.n_current),
            counts=counts,
        )  # fmt: skip
    if kind == TEXT:
        ref_texts, cur_texts = text_values(reference), text_values(current)
        return Prepared(
            column, kind, len(ref_texts), len(cur_texts),
            _dropped(n_ref_rows, len(ref_texts)), _dropped(n_cur_rows, len(cur_texts)),
            reference_items=ref_texts, current_items=cur_texts,
        )  # fmt: skip
    ref_matrix = embedding_matrix(reference, column, "reference")
    cur_matrix = embedding_matrix(current, column, "current")
    if ref_matrix.size and cur_matrix.size and ref_matrix.shape[1] != cur_matrix.shape[1]:
        raise InvalidInputError(
            f"embedding column {column!r} has vectors of length {ref_matrix.shape[1]} in the "
            f"reference but {cur_matrix.shape[1]} in the current table",
            field=f"current.{column}",
            fix="embed both tables with the same embedder",
        )
    return Prepared(
        column, kind, ref_matrix.shape[0], cur_matrix.shape[0],
        _dropped(n_ref_rows, ref_matrix.shape[0]), _dropped(n_cur_rows, cur_matrix.shape[0]),
        reference_items=ref_matrix, current_items=cur_matrix,
    )  # fmt: skip


def _dropped(rows: int, kept: int) -> float:
    return 0.0 if rows == 0 else (rows - kept) / rows
