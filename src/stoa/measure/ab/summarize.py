"""A table of per-unit outcomes reduced to per-variant sufficient statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stoa.core.errors import InvalidInputError
from stoa.measure.ab.spec import MetricSpec
from stoa.measure.ab.stats import MeanStats, ProportionStats, RatioStats, Stats


def summarize(
    frame: pd.DataFrame, variant_col: str, metrics: Sequence[MetricSpec]
) -> dict[str, dict[str, Stats]]:
    """``{variant: {metric: Stats}}`` from one row per unit.

    A unit whose value is missing (NaN) for a metric is left out of that metric only
    (a user who never rated counts for CTR but not for CSAT); so a metric's ``n`` can
    be below the variant's unit count.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"expected a pandas DataFrame, got {type(frame).__name__}",
            field="frame",
            fix="load the table with pandas first",
        )
    if variant_col not in frame.columns:
        raise InvalidInputError(
            f"no column {variant_col!r} in the table (columns: {_names(frame)})",
            field="variant",
            fix="name the column that holds each unit's variant",
        )
    if not metrics:
        raise InvalidInputError(
            "no metrics given", field="metrics", fix="name at least one metric column"
        )
    variants = frame[variant_col]
    if variants.isna().any():
        raise InvalidInputError(
            f"{int(variants.isna().sum())} rows have no variant in {variant_col!r}",
            field="variant",
            fix="drop rows without a variant, or fill them",
        )
    codes, names = pd.factorize(variants.astype(str), sort=True)
    out: dict[str, dict[str, Stats]] = {str(v): {} for v in names}
    for spec in metrics:
        columns = [_numeric(frame, c, spec) for c in spec.columns]
        present = np.ones(len(frame), dtype=bool)
        for values in columns:
            present &= ~np.isnan(values)
        code = codes[present]
        n = np.bincount(code, minlength=len(names))

        def sums(v: np.ndarray, code: np.ndarray = code, keep: np.ndarray = present) -> np.ndarray:
            return np.bincount(code, weights=v[keep], minlength=len(names))

        if spec.kind == "proportion":
            x = columns[0]
            bad = present & (x != 0) & (x != 1)
            if bad.any():
                raise InvalidInputError(
                    f"proportion metric {spec.name!r} has values other than 0 and 1 "
                    f"in column {spec.columns[0]!r} (e.g. {x[bad][0]!r})",
                    field=f"metrics.{spec.name}",
                    fix="use 0/1 (or true/false) per unit, or declare the metric as 'mean'",
                )
            s = sums(x)
            for i, name in enumerate(names):
                out[str(name)][spec.name] = ProportionStats(int(n[i]), float(s[i]))
        elif spec.kind == "mean":
            x = columns[0]
            s, s2 = sums(x), sums(x * x)
            for i, name in enumerate(names):
                out[str(name)][spec.name] = MeanStats(int(n[i]), float(s[i]), float(s2[i]))
        else:
            x, y = columns
            agg = [sums(x), sums(x * x), sums(y), sums(y * y), sums(x * y)]
            for i, name in enumerate(names):
                out[str(name)][spec.name] = RatioStats(int(n[i]), *(float(a[i]) for a in agg))
    return out


def _numeric(frame: pd.DataFrame, column: str, spec: MetricSpec) -> np.ndarray:
    if column not in frame.columns:
        raise InvalidInputError(
            f"metric {spec.name!r} reads column {column!r}, which the table does not have "
            f"(columns: {_names(frame)})",
            field=f"metrics.{spec.name}",
            fix="name an existing column",
        )
    series = frame[column]
    if series.dtype == bool or pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype(float)
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise InvalidInputError(
            f"column {column!r} of metric {spec.name!r} is not numeric "
            f"(dtype {series.dtype}, e.g. {series.dropna().iloc[0]!r})"
            if series.notna().any()
            else f"column {column!r} of metric {spec.name!r} has no values",
            field=f"metrics.{spec.name}",
            fix="pass numbers (0/1 for a proportion) per unit",
        )
    values = series.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        raise InvalidInputError(
            f"column {column!r} of metric {spec.name!r} holds infinite values",
            field=f"metrics.{spec.name}",
            fix="drop or cap infinite values",
        )
    return values


def _names(frame: pd.DataFrame) -> str:
    names = [str(c) for c in frame.columns[:12]]
    return ", ".join(names) + (", ..." if len(frame.columns) > 12 else "")
