"""The drift report: types, the dataset-level decision, the JSON shape, and every bad input
answered with an InvalidInputError that names the field and the fix."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stoa.core.errors import InvalidInputError
from stoa.measure.drift import compare, infer_column_type

COLUMN_KEYS = {
    "column", "type", "test", "score", "threshold", "drifted", "stattest_kind",
    "n_reference", "n_current", "missing_reference", "missing_current", "distribution",
    "secondary",
}  # fmt: skip
DATASET_KEYS = {"drifted_columns", "columns", "share", "drift_share_threshold", "drifted"}


def _tables(rows: int = 2_000, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four columns, of which two (``moved``, ``levels``) shift."""
    rng = np.random.default_rng(seed)

    def table(shift: float) -> pd.DataFrame:
        return pd.DataFrame({
            "steady": rng.normal(0, 1, rows),
            "moved": rng.normal(shift, 1, rows),
            "levels": rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rows,
                                 p=_levels(26, 1.0 + shift)),
            "flag": rng.random(rows) < 0.2,
        })  # fmt: skip

    return table(0.0), table(1.0)


def _levels(count: int, skew: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** skew
    return weights / weights.sum()


def test_inferred_types_follow_evidentlys_rules() -> None:
    frame = pd.DataFrame({
        "floats": [0.5, 1.5] * 10,
        "few_ints": list(range(10)) * 2,
        "many_ints": list(range(20)),
        "bools": [True, False] * 10,
        "labels": ["a", "b"] * 10,
        "texts": [f"message number {i}" for i in range(20)],
        "vectors": [[0.1 * i, 0.2] for i in range(20)],
        "dates": pd.date_range("2026-01-01", periods=20),
    })  # fmt: skip
    kinds = {name: infer_column_type(frame[name]) for name in frame.columns}
    assert kinds == {
        "floats": "numeric", "few_ints": "categorical", "many_ints": "numeric",
        "bools": "categorical", "labels": "categorical", "texts": "text",
        "vectors": "embedding", "dates": None,
    }  # fmt: skip


def test_dataset_drifts_when_the_share_reaches_the_threshold() -> None:
    ref, cur = _tables()
    report = compare(ref, cur)
    drifted = {c.column for c in report.columns if c.drifted}
    assert drifted == {"moved", "levels"}
    assert report.share == 0.5 and report.drifted  # 2 of 4 meets 0.5 (>=, as Evidently)
    assert not compare(ref, cur, drift_share=0.75).drifted
    assert compare(ref, cur, columns=["moved", "flag"], drift_share=0.5).drifted


def test_to_dict_is_json_with_stable_keys() -> None:
    ref, cur = _tables()
    body = json.loads(json.dumps(compare(ref, cur).to_dict(), allow_nan=False))
    assert set(body) == {"dataset", "columns", "skipped"}
    assert set(body["dataset"]) == DATASET_KEYS
    assert body["dataset"] == {
        "drifted_columns": 2, "columns": 4, "share": 0.5,
        "drift_share_threshold": 0.5, "drifted": True,
    }  # fmt: skip
    for col in body["columns"]:
        assert set(col) == COLUMN_KEYS
    by_name = {c["column"]: c for c in body["columns"]}
    hist = by_name["moved"]["distribution"]
    assert hist["kind"] == "histogram" and len(hist["edges"]) == 31
    assert sum(hist["reference"]) == pytest.approx(1.0) and sum(hist["current"]) == pytest.approx(1)
    cats = by_name["levels"]["distribution"]
    assert cats["kind"] == "categories" and cats["categories"][-1] == "other"
    assert len(cats["categories"]) == 21 and sum(cats["current"]) == pytest.approx(1.0)
    assert by_name["flag"]["type"] == "binary"
    assert by_name["flag"]["distribution"]["categories"] == ["False", "True"]


def test_column_types_override_inference() -> None:
    ref = pd.DataFrame({"code": np.arange(3_000) % 7})
    cur = pd.DataFrame({"code": (np.arange(3_000) + 3) % 7})
    assert compare(ref, cur).column("code").check.test == "jensenshannon"
    forced = compare(ref, cur, column_types={"code": "numeric"}).column("code")
    assert forced.type == "numeric" and forced.check.test == "wasserstein"


def test_per_column_methods_and_thresholds() -> None:
    ref, cur = _tables()
    report = compare(
        ref, cur,
        methods={"moved": "psi", "steady": "ks"},
        thresholds={"moved": 5.0, "steady": 1e-9},
    )  # fmt: skip
    moved, steady = report.column("moved").check, report.column("steady").check
    assert (moved.test, moved.threshold, moved.drifted) == ("psi", 5.0, False)
    assert (steady.test, steady.threshold, steady.drifted) == ("ks", 1e-9, False)


def test_undecidable_columns_are_skipped_with_a_reason() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "when": pd.date_range("2026-01-01", periods=3),
                        "empty": [np.nan] * 3})  # fmt: skip
    cur = pd.DataFrame({"x": [1.0, 2.5, 3.0], "when": pd.date_range("2026-02-01", periods=3),
                        "empty": [1.0, 2.0, 3.0]})  # fmt: skip
    report = compare(ref, cur)
    assert [c.column for c in report.columns] == ["x"]
    assert [s["column"] for s in report.skipped] == ["when", "empty"]
    assert "reference" in report.skipped[1]["reason"]


def _raises(field: str, words: str, call) -> InvalidInputError:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as info:
        call()
    error = info.value
    assert error.field == field and error.fix, (error.field, error.fix)
    assert words in error.message, error.message
    assert error.http_status == 422 and error.exit_code == 2
    return error


def test_bad_inputs_name_the_field_and_the_fix() -> None:
    ref, cur = _tables(rows=50)
    _raises(
        "columns",
        "no column in common",
        lambda: compare(ref, cur.rename(columns=lambda c: c + "_x")),
    )
    _raises(
        "columns",
        "'nope' is not in the reference",
        lambda: compare(ref, cur, columns=["steady", "nope"]),
    )
    _raises(
        "columns",
        "'moved' is not in the current",
        lambda: compare(ref, cur.drop(columns="moved"), columns=["moved"]),
    )
    _raises("reference", "no rows", lambda: compare(ref.iloc[:0], cur))
    _raises("current", "no rows", lambda: compare(ref, cur.iloc[:0]))
    _raises(
        "methods.moved",
        "unknown drift method 'kolmogorov'",
        lambda: compare(ref, cur, methods={"moved": "kolmogorov"}),
    )
    _raises(
        "methods.levels",
        "does not apply to categorical",
        lambda: compare(ref, cur, methods={"levels": "ks"}),
    )
    _raises(
        "thresholds.moved", "out of range", lambda: compare(ref, cur, thresholds={"moved": 1.5})
    )
    _raises(
        "thresholds.steady",
        "out of range",
        lambda: compare(ref, cur, methods={"steady": "wasserstein"}, thresholds={"steady": -0.1}),
    )
    _raises(
        "thresholds.ghost", "not compared", lambda: compare(ref, cur, thresholds={"ghost": 0.1})
    )
    _raises(
        "column_types.steady",
        "unknown column type",
        lambda: compare(ref, cur, column_types={"steady": "float"}),
    )
    _raises(
        "column_types.levels",
        "typed numeric",
        lambda: compare(ref, cur, column_types={"levels": "numeric"}),
    )
    _raises("drift_share", "drift_share", lambda: compare(ref, cur, drift_share=0))
    _raises("drift_share", "drift_share", lambda: compare(ref, cur, drift_share=1.5))  # fmt: skip


def test_mismatched_embedding_lengths_are_refused() -> None:
    ref = pd.DataFrame({"v": [[0.1, 0.2, 0.3]] * 4})
    cur = pd.DataFrame({"v": [[0.1, 0.2]] * 4})
    _raises("current.v", "length 3 in the reference but 2", lambda: compare(ref, cur))
    ragged = pd.DataFrame({"v": [[0.1, 0.2, 0.3], [0.1, 0.2]] * 2})
    _raises("reference.v", "mixes vector lengths", lambda: compare(ragged, ref))
