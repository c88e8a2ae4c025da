"""Reading the logbook: filters, search, show, export and summaries, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.serve.feedback import FeedbackWriter, parse_events
from stoa.serve.ids import new_id
from stoa.serve.logbook import Logbook
from stoa.serve.predictions import (
    counts_by_variant,
    export_predictions,
    get_prediction,
    list_predictions,
    series,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def logged(db: Database) -> dict[str, dict]:
    """Twelve predictions: variants a and b, a shadow of one, errors and a café."""
    book = Logbook(db, max_queue=100, batch_size=100, flush_ms=10, full_wait_ms=0)
    rows = {}
    for i in range(10):
        variant = "a" if i % 2 == 0 else "b"
        row = {
            "id": new_id(),
            "endpoint": "support",
            "config_version": 1,
            "variant": variant,
            "mode": "live",
            "target": f"solution:support@{1 if variant == 'a' else 2}",
            "unit_id": f"user-{i % 3}",
            "ts": T0 + timedelta(seconds=30 * i),
            "input": {"question": f"question number {i}"},
            "output": {"answer": f"answer {i}"},
            "status": "error" if i in (3, 5) else "ok",
            "latency_ms": float(10 * (i + 1)),
            "tokens": i,
            "cost_usd": 0.001 * i,
            "trace": {"steps": [{"id": "generate", "ms": i}]},
        }
        rows[f"p{i}"] = row
        book.record(row)
    rows["cafe"] = {
        **rows["p0"],
        "id": new_id(),
        "input": {"question": 'où est le "café"? 100%_sure'},
        "ts": T0 + timedelta(minutes=10),
    }
    book.record(rows["cafe"])
    rows["shadow"] = {
        **rows["p0"],
        "id": new_id(),
        "variant": "s",
        "mode": "shadow",
        "parent_id": rows["p0"]["id"],
        "ts": T0 + timedelta(seconds=1),
    }
    book.record(rows["shadow"])
    rows["other"] = {**rows["p1"], "id": new_id(), "endpoint": "churn"}
    book.record(rows["other"])
    book.close()
    return rows


def ids(found: list[dict]) -> list[str]:
    return [r["id"] for r in found]


def test_list_is_newest_first_without_traces(db, logged) -> None:
    found = list_predictions(db, endpoint="support")
    assert len(found) == 12
    assert ids(found) == sorted(ids(found), reverse=True)
    assert "trace" not in found[0] and found[0]["input"] is not None
    assert found[0]["ts"].tzinfo is not None


def test_list_with_traces(db, logged) -> None:
    (found,) = list_predictions(db, search="number 7", traces=True)
    assert found["trace"] == logged["p7"]["trace"]


def test_filters(db, logged) -> None:
    assert {r["variant"] for r in list_predictions(db, variant="b")} == {"b"}
    assert len(list_predictions(db, endpoint="support", variant="b")) == 5
    assert set(ids(list_predictions(db, status="error"))) == {
        logged["p3"]["id"],
        logged["p5"]["id"],
    }
    assert ids(list_predictions(db, mode="shadow")) == [logged["shadow"]["id"]]
    assert len(list_predictions(db, endpoint="support", unit_id="user-0")) == 6
    window = list_predictions(
        db, endpoint="support", since=T0 + timedelta(seconds=60), until=T0 + timedelta(minutes=2)
    )
    assert set(ids(window)) == {logged[f"p{i}"]["id"] for i in (2, 3)}
    naive = list_predictions(db, endpoint="support", since=datetime(2024, 5, 1, 12, 9))
    assert ids(naive) == [logged["cafe"]["id"]]


def test_paging_with_before_id(db, logged) -> None:
    everything = ids(list_predictions(db, limit=1000))
    first = list_predictions(db, limit=5)
    second = list_predictions(db, limit=5, before_id=first[-1]["id"])
    assert ids(first) + ids(second) == everything[:10]


def test_search_matches_input_or_output_text(db, logged) -> None:
    assert ids(list_predictions(db, search="number 7")) == [logged["p7"]["id"]]
    assert ids(list_predictions(db, search="ANSWER 4")) == [logged["p4"]["id"]]
    assert ids(list_predictions(db, search="café")) == [logged["cafe"]["id"]]
    assert ids(list_predictions(db, search='"café"')) == [logged["cafe"]["id"]]
    assert ids(list_predictions(db, search="100%_s")) == [logged["cafe"]["id"]]
    assert list_predictions(db, search="n%m") == []  # no wildcards: a literal percent
    assert list_predictions(db, search="nowhere at all") == []


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"status": "Broken status!"}, "status"),
        ({"mode": "canary"}, "mode"),
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_filters_are_refused(db, filters, field) -> None:
    with pytest.raises(InvalidInputError) as caught:
        list_predictions(db, **filters)
    assert caught.value.field == field


def test_show_has_trace_feedback_and_shadows(db, logged) -> None:
    pid = logged["p0"]["id"]
    writer = FeedbackWriter(db)
    writer.add(
        parse_events(
            [
                {"prediction_id": pid, "kind": "thumb", "value": "down"},
                {"prediction_id": pid, "kind": "label", "value": "wrong", "source": "human"},
            ]
        )
    )
    writer.close()
    shown = get_prediction(db, pid)
    assert shown["trace"] == logged["p0"]["trace"]
    assert shown["input"] == logged["p0"]["input"]
    assert [(f["kind"], f["value"], f["source"]) for f in shown["feedback"]] == [
        ("thumb", -1, "user"),
        ("label", "wrong", "human"),
    ]
    assert shown["shadows"] == [logged["shadow"]["id"]]
    assert get_prediction(db, logged["shadow"]["id"])["parent_id"] == pid
    with pytest.raises(NotFoundError) as caught:
        get_prediction(db, new_id())
    assert caught.value.field == "prediction_id"


def test_export_jsonl(db, logged, tmp_path: Path) -> None:
    path = tmp_path / "support.jsonl"
    assert export_predictions(db, path, format="jsonl", endpoint="support", variant="a") == 6
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in lines] == sorted(r["id"] for r in lines)  # oldest first
    by_id = {r["id"]: r for r in lines}
    p2 = logged["p2"]
    assert by_id[p2["id"]]["input"] == p2["input"]
    assert by_id[p2["id"]]["trace"] == p2["trace"]
    assert datetime.fromisoformat(by_id[p2["id"]]["ts"]) == p2["ts"]


def test_export_parquet_reads_back_the_same(db, logged, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "support.parquet"
    assert export_predictions(db, path, format="parquet", endpoint="support") == 12
    table = pq.read_table(path).to_pylist()
    assert len(table) == 12
    expected = {r["id"]: r for r in logged.values() if r["endpoint"] == "support"}
    for got in table:
        want = expected[got["id"]]
        assert json.loads(got["input"]) == want["input"]
        assert json.loads(got["output"]) == want["output"]
        assert json.loads(got["trace"]) == want["trace"]
        assert got["ts"] == want["ts"]
        assert (got["variant"], got["mode"], got["status"]) == (
            want["variant"],
            want["mode"],
            want["status"],
        )
        assert got["latency_ms"] == want["latency_ms"] and got["tokens"] == want["tokens"]
        assert got["error"] is None


def test_write_rows_takes_rows_read_over_http(tmp_path: Path) -> None:
    """The client's HTTP export pages through JSON, where times are ISO strings."""
    import pyarrow.parquet as pq

    from stoa.serve.predictions import write_rows

    row = {
        "id": new_id(),
        "endpoint": "support",
        "variant": "a",
        "mode": "live",
        "ts": T0.isoformat(),
        "input": {"q": 1},
        "output": None,
        "error": None,
        "trace": None,
        "status": "ok",
        "latency_ms": 2.0,
    }
    assert write_rows(tmp_path / "h.parquet", "parquet", iter([[dict(row)]])) == 1
    (got,) = pq.read_table(tmp_path / "h.parquet").to_pylist()
    assert got["ts"] == T0 and json.loads(got["input"]) == {"q": 1} and got["output"] is None
    assert write_rows(tmp_path / "h.jsonl", "jsonl", iter([[dict(row)]])) == 1
    assert json.loads((tmp_path / "h.jsonl").read_text())["ts"] == T0.isoformat()


def test_export_refuses_an_existing_path_and_bad_options(db, logged, tmp_path: Path) -> None:
    path = tmp_path / "there.jsonl"
    path.write_text("keep me")
    with pytest.raises(InvalidInputError) as caught:
        export_predictions(db, path, format="jsonl")
    assert caught.value.field == "path"
    assert path.read_text() == "keep me"
    with pytest.raises(InvalidInputError, match="format"):
        export_predictions(db, tmp_path / "x.csv", format="csv")
    with pytest.raises(InvalidInputError) as caught:
        export_predictions(db, tmp_path / "y.jsonl", format="jsonl", status="Weird!")
    assert caught.value.field == "status"
    assert not (tmp_path / "y.jsonl").exists()


def test_a_failed_export_leaves_no_file(db, logged, tmp_path: Path, monkeypatch) -> None:
    from stoa.serve import predictions

    def broken(*args, **kwargs):
        yield [dict(logged["p0"])]
        raise RuntimeError("the database went away")

    monkeypatch.setattr(predictions, "_chunks", broken)
    path = tmp_path / "half.jsonl"
    with pytest.raises(RuntimeError):
        export_predictions(db, path, format="jsonl")
    assert not path.exists()


def test_counts_by_variant(db, logged) -> None:
    writer = FeedbackWriter(db)
    writer.add(
        parse_events(
            [
                {"prediction_id": logged["p0"]["id"], "kind": "click"},
                {"prediction_id": logged["p2"]["id"], "kind": "click"},
                {"prediction_id": logged["p1"]["id"], "kind": "rating", "value": 4},
                {"prediction_id": logged["shadow"]["id"], "kind": "label", "value": "x"},
            ]
        )
    )
    writer.close()
    counts = {(r["variant"], r["mode"]): r for r in counts_by_variant(db, "support")}
    assert set(counts) == {("a", "live"), ("b", "live"), ("s", "shadow")}
    a, b = counts["a", "live"], counts["b", "live"]
    assert (a["predictions"], a["errors"], b["predictions"], b["errors"]) == (6, 0, 5, 2)
    # a: latencies 10, 30, 50, 70, 90 and 10 (the café copy of p0)
    assert a["p50_latency_ms"] == 30.0 and a["p95_latency_ms"] == 90.0
    assert a["feedback"] == {"click": 2} and b["feedback"] == {"rating": 1}
    assert counts["s", "shadow"]["feedback"] == {"label": 1}
    later = counts_by_variant(db, "support", since=T0 + timedelta(minutes=5))
    assert [(r["variant"], r["predictions"]) for r in later] == [("a", 1)]


def test_series_per_bucket_and_variant(db, logged) -> None:
    points = series(db, "support", bucket_s=60, since=T0, until=T0 + timedelta(hours=1))
    live_a = [p for p in points if p["variant"] == "a" and p["mode"] == "live"]
    assert [p["ts"] for p in live_a[:3]] == [
        T0,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    ]
    # minute 0 holds p0 (10 ms); p1 (b) is at 30 s
    assert (live_a[0]["requests"], live_a[0]["mean_latency_ms"]) == (1, 10.0)
    b1 = next(p for p in points if p["variant"] == "b" and p["ts"] == T0 + timedelta(minutes=1))
    assert (b1["requests"], b1["errors"], b1["p95_latency_ms"]) == (1, 1, 40.0)
    assert sum(p["requests"] for p in points) == 12
    with pytest.raises(InvalidInputError):
        series(db, "support", bucket_s=0)
    with pytest.raises(InvalidInputError, match="buckets"):
        series(db, "support", bucket_s=1, since=T0, until=T0 + timedelta(hours=1))
