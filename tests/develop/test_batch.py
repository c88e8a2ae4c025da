"""`client.batch.score`: every row of a table through a solution into one Parquet file,
the same as running each row alone, whatever the partitioning, with errors kept."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.develop import batch
from stoa.develop.solution.runner import run_solution

SPEC = """\
name: tiny
steps:
  - id: policy
    kind: rules
    rules:
      - when: input.text.contains("refund")
        reject: No refunds.
      - when: input.n > 5
        tag: big
  - id: answer
    kind: respond
    template: "{{ input.text }}:{{ input.n }}"
"""
ROWS = 10_000
#: Every row is compared except these, which measure one run (time, random trace ids).
VARYING = ["latency_ms", "trace"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """10,000 rows: most answer, every 1000th asks for a refund (rejected), and every
    997th has no ``n`` (the rule ``input.n > 5`` fails on null: an error row)."""
    rng = np.random.default_rng(7)
    n = pd.array(rng.integers(0, 10, ROWS), dtype="Int64")
    n[::997] = pd.NA
    text = [("a refund please" if i % 1000 == 3 else f"t{i}") for i in range(ROWS)]
    path = tmp_path_factory.mktemp("batch") / "rows.parquet"
    pd.DataFrame({"text": text, "n": n, "extra": rng.random(ROWS)}).to_parquet(path)
    return path


@pytest.fixture
def client(sqlite_client):
    sqlite_client.solutions.register(SPEC)
    return sqlite_client


def _frame(path):
    return pd.read_parquet(path).drop(columns=VARYING)


def test_ten_thousand_rows_match_running_each_row_alone(client, table, tmp_path):
    out = tmp_path / "scored.parquet"
    seen: list[tuple[int, int]] = []
    summary = client.batch.score(
        "tiny",
        str(table),
        out,
        input_columns=["text", "n"],
        progress=lambda d, t: seen.append((d, t)),
    )
    errors, rejected = len(range(0, ROWS, 997)), ROWS // 1000
    assert summary["rows"] == ROWS and summary["partitions"] == 10
    assert summary["by_status"] == {
        "error": errors,
        "ok": ROWS - errors - rejected,
        "rejected": rejected,
    }
    assert sum(summary["by_status"].values()) == ROWS
    assert summary["solution"] == "tiny@1" and summary["table"] == str(table)
    assert summary["seconds"] < 20 and summary["rows_per_s"] > 500
    assert seen[-1] == (ROWS, ROWS) and len(seen) == 10
    scored = pd.read_parquet(out)
    assert list(scored.columns) == list(batch.COLUMNS)
    assert scored["row"].tolist() == list(range(ROWS))
    records = pq.read_table(out).to_pylist()
    source = pd.read_parquet(table)
    env = client._transport.solutions
    for i in [0, 1, 3, 6, 997, 1003, 4242, ROWS - 1]:
        value = {
            "text": source["text"][i],
            "n": None if pd.isna(source["n"][i]) else int(source["n"][i]),
        }
        alone = run_solution(env, "tiny", value)
        got = records[i]
        assert got["status"] == alone.status
        assert json.loads(got["output"]) == alone.output
        assert (json.loads(got["error"]) if got["error"] else None) == alone.error
        assert list(got["path"]) == alone.path and list(got["tags"]) == alone.tags
        assert json.loads(got["input"]) == value
        assert json.loads(got["trace"])["spans"][0]["name"] == "solution tiny@1"
    assert (
        scored["status"][3] == "rejected"
        and json.loads(scored["output"][3])["text"] == "No refunds."
    )
    assert scored["status"][997] == "error" and "input.n > 5" in scored["error"][997]
    assert json.loads(scored["output"][6])["text"] == f"t6:{source['n'][6]}"


def test_partitioning_does_not_change_the_output(client, table, tmp_path):
    small = pd.read_parquet(table).iloc[:300]
    env = client._transport.solutions
    one, many = tmp_path / "one.parquet", tmp_path / "many.parquet"
    batch.score(env, "tiny", small, one, partition_rows=1000)
    summary = batch.score(env, "tiny", small, many, partition_rows=7)
    assert summary["partitions"] == 43
    pd.testing.assert_frame_equal(_frame(one), _frame(many))
    # a partition is a pure function of its rows: scored out of order, the same records
    rows = small.to_dict("records")
    later = batch.score_partition(env, "tiny", rows[280:], 280)
    assert [r["row"] for r in later] == list(range(280, 300))
    assert [r["output"] for r in later] == _frame(one)["output"].tolist()[280:]


def test_an_input_column_of_objects_text_and_junk(client, tmp_path):
    """Bad inputs become error rows with the reason; nothing is dropped."""
    rows = [{"input": {"text": "a", "n": 9}}, {"input": '{"text": "b", "n": 1}'},
            {"input": "plain"}, {"input": 5}, {"input": [1, 2]}]  # fmt: skip
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.parquet"
    summary = client.batch.score("tiny", str(path), out)
    assert summary["by_status"] == {"error": 3, "ok": 2} and summary["rows"] == 5
    scored = pq.read_table(out).to_pydict()
    assert json.loads(scored["output"][0]) == {"text": "a:9"} and list(scored["tags"][0]) == ["big"]
    assert json.loads(scored["output"][1]) == {"text": "b:1"}
    assert "input.n > 5" in scored["error"][2]  # plain text is {"text": …}: no n
    for i in (3, 4):
        assert scored["status"][i] == "error" and "must be a JSON object" in scored["error"][i]
        assert scored["output"][i] is None and scored["solution"][i] is None


def test_a_dataset_version_as_the_table(client, tmp_path):
    path = tmp_path / "tickets.csv"
    pd.DataFrame({"text": ["x", "refund now", "y"], "n": [1, 2, 8]}).to_csv(path, index=False)
    client.datasets.register("tickets", path)
    out = tmp_path / "o.parquet"
    summary = client.batch.score("tiny", "tickets@1", out)
    assert summary["table"] == "tickets@1"
    assert summary["by_status"] == {"ok": 2, "rejected": 1}
    outputs = [json.loads(o)["text"] for o in pd.read_parquet(out)["output"]]
    assert outputs == ["x:1", "No refunds.", "y:8"]


def test_a_failure_leaves_no_file(client, table, tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    out = folder / "o.parquet"
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            assert [p.suffix for p in folder.iterdir()] == [".part"]  # two partitions written
            raise OSError("disk full")
        return real(*args, **kwargs)

    real = batch.score_partition
    monkeypatch.setattr(batch, "score_partition", broken)
    with pytest.raises(OSError, match="disk full"):
        client.batch.score("tiny", str(table), out, partition_rows=100)
    assert list(folder.iterdir()) == []


def test_bad_inputs_are_refused_clearly(client, table, tmp_path):
    out = str(tmp_path / "o.parquet")
    cases = [
        (("ghost", str(table), out), {}, NotFoundError, "no solution named 'ghost'"),
        (("tiny", str(tmp_path / "nope.parquet"), out), {}, InvalidInputError, "does not exist"),
        (("tiny", str(tmp_path / "t.xlsx"), out), {}, InvalidInputError, "unsupported file type"),
        (("tiny", str(table), str(table)), {}, InvalidInputError, "already exists"),
        (("tiny", str(table), str(tmp_path / "o.csv")), {}, InvalidInputError, "not a .parquet"),
        (("tiny", str(table), out), {"input_columns": ["text", "nope"]}, InvalidInputError,
         "'nope' not in"),
        (("tiny", str(table), out), {"partition_rows": 0}, InvalidInputError, "partition_rows"),
    ]  # fmt: skip
    (tmp_path / "t.xlsx").write_text("x")
    empty = tmp_path / "empty.csv"
    empty.write_text("text,n\n")
    cases.append((("tiny", str(empty), out), {}, InvalidInputError, "has no rows"))
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            client.batch.score(*args, **kwargs)
        assert caught.value.field and (caught.value.fix or error is NotFoundError), message
    assert not (tmp_path / "o.parquet").exists()


def test_over_http_it_is_refused():
    from stoa.client import HttpClient

    with pytest.raises(InvalidInputError, match="runs where the data is; use a local client"):
        HttpClient("http://127.0.0.1:9").batch.score("tiny", "t.parquet", "o.parquet")
