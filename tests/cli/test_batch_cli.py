"""`stoa batch score` as a user types it: a summary in JSON, the Parquet file, and
one-line errors with exit code 2."""

from __future__ import annotations

import json

import pandas as pd

from stoa.client import LocalClient
from stoa.core.settings import Settings
from tests.cli.test_cli import clean_env, ok_json, one_line_error, stoa  # noqa: F401 - fixture
from tests.develop.test_batch import SPEC


def test_score_writes_every_row_and_refuses_bad_input(stoa, tmp_path):  # noqa: F811
    with LocalClient(settings=Settings(home=tmp_path / "home")) as client:
        client.solutions.register(SPEC)
    frame = pd.DataFrame({"text": ["a", "refund me", "c"], "n": [9, 1, 2], "noise": [0, 0, 0]})
    frame.to_csv(tmp_path / "rows.csv", index=False)

    summary = ok_json(
        stoa("batch", "score", "tiny", "rows.csv", "--out", "scored.parquet",
             "--input-column", "text", "--input-column", "n", "--partition-rows", "2", "--json")
    )  # fmt: skip
    assert summary["rows"] == 3 and summary["by_status"] == {"ok": 2, "rejected": 1}
    assert summary["partitions"] == 2 and summary["out"].endswith("scored.parquet")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert [json.loads(o)["text"] for o in scored["output"]] == ["a:9", "No refunds.", "c:2"]
    assert json.loads(scored["input"][0]) == {"text": "a", "n": 9}  # no "noise"

    again = stoa("batch", "score", "tiny", "rows.csv", "--out", "scored.parquet")
    one_line_error(again, 2, "out", "already exists")
    missing = stoa(
        "batch", "score", "tiny", "rows.csv", "--out", "b.parquet", "--input-column", "x"
    )
    one_line_error(missing, 2, "input_columns", "'x' not in rows.csv")
    assert not (tmp_path / "b.parquet").exists()


def test_ray_options_need_ray(stoa, tmp_path):  # noqa: F811
    with LocalClient(settings=Settings(home=tmp_path / "home")) as client:
        client.solutions.register(SPEC)
    pd.DataFrame({"text": ["a"], "n": [1]}).to_csv(tmp_path / "rows.csv", index=False)
    workers = stoa("batch", "score", "tiny", "rows.csv", "--out", "o.parquet", "--workers", "2")
    one_line_error(workers, 2, "workers", "--workers needs --ray")
    address = stoa("batch", "score", "tiny", "rows.csv", "--out", "o.parquet", "--address", "auto")
    one_line_error(address, 2, "address", "--address needs --ray")
    ingest = stoa("kb", "ingest", "docs", "rows.csv", "--address", "auto")
    one_line_error(ingest, 2, "address", "--address needs --ray")
    evaluate = stoa("solutions", "eval", "tiny", "rows.csv", "--address", "auto")
    one_line_error(evaluate, 2, "address", "--address needs --ray")
    assert not (tmp_path / "o.parquet").exists()
