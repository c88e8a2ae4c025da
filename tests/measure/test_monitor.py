"""Monitoring an endpoint: drift of the last window against the one before, a logbook
window or a training table; metrics now against before; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.measure.monitor import Window, endpoint_drift, logbook_frame, monitor_report
from tests.measure.logbook_rows import feedback, prediction, write

NOW = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Hashing:
    """A cheap deterministic embedder: drift tests need vectors, not meaning."""

    def __init__(self) -> None:
        self.vectorizer = HashingVectorizer(n_features=128, alternate_sign=False, norm="l2")

    def embed(self, texts):
        return self.vectorizer.transform(list(texts)).toarray().astype(np.float32)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def _day(start: datetime, n: int, rng: np.random.Generator, shifted: bool) -> list[dict]:
    rows = []
    for i in range(n):
        hour = int(rng.normal(16 if shifted else 11, 2)) % 24
        channel = rng.choice(
            ["web", "app", "mail"], p=[0.2, 0.2, 0.6] if shifted else [0.5, 0.4, 0.1]
        )
        words = rng.choice(["refund", "invoice", "late", "parcel", "password", "login"], size=5)
        rows.append(prediction(
            "help", "a", start + timedelta(seconds=30 * i + 1),
            input={"text": " ".join(words), "hour": hour, "channel": str(channel)},
            output={"text": "answer " + words[0], "label": "billing"},
            latency_ms=float(rng.gamma(4, 10)),
        ))  # fmt: skip
    return rows


@pytest.fixture
def two_days(db: Database) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(7)
    first = _day(NOW - 2 * DAY, 400, rng, shifted=False)
    second = _day(NOW - DAY, 400, rng, shifted=True)
    events = [feedback(r, "click", True, r["ts"] + timedelta(minutes=1)) for r in first[:200]]
    events += [feedback(r, "click", True, r["ts"] + timedelta(minutes=1)) for r in second[:40]]
    write(db, first + second, events)
    return first, second


def test_the_logbook_becomes_a_table(db: Database, two_days) -> None:
    frame = logbook_frame(db, "help", Window(NOW - DAY, NOW))
    assert len(frame) == 400
    assert {"text", "hour", "channel", "output.text", "output.label", "latency_ms"} <= set(frame)


def test_a_shifted_day_drifts_where_it_shifted(db: Database, two_days) -> None:
    report = endpoint_drift(db, "help", window="24h", now=NOW, embedder=Hashing())
    assert report["reference"]["kind"] == "logbook" and report["reference"]["rows"] == 400
    columns = {c["column"]: c for c in report["drift"]["columns"]}
    assert columns["hour"]["drifted"] and columns["channel"]["drifted"]
    assert not columns["latency_ms"]["drifted"] and not columns["text"]["drifted"]
    assert columns["hour"]["test"] == "ks"  # 400 reference rows: the small-sample test
    # The day before against the one before that: nothing there, a clear error.
    with pytest.raises(InvalidInputError, match="no predictions of 'help' in the reference"):
        endpoint_drift(db, "help", window="24h", now=NOW - DAY, embedder=Hashing())


def test_a_logbook_window_and_a_table_as_references(db: Database, two_days, tmp_path) -> None:
    same = endpoint_drift(db, "help", window="24h", now=NOW, reference="logbook:-24h/now",
                          embedder=Hashing())  # fmt: skip
    assert same["drift"]["dataset"]["drifted_columns"] == 0
    rng = np.random.default_rng(1)
    import pandas as pd

    table = pd.DataFrame(
        {
            "hour": (rng.normal(16, 2, 500).astype(int)) % 24,
            "channel": rng.choice(["web", "app", "mail"], 500, p=[0.2, 0.2, 0.6]),
        }
    )
    table.to_csv(tmp_path / "train.csv", index=False)
    report = endpoint_drift(db, "help", now=NOW, reference=str(tmp_path / "train.csv"))
    assert report["reference"] == {"kind": "table", "source": str(tmp_path / "train.csv"),
                                   "rows": 500}  # fmt: skip
    assert sorted(c["column"] for c in report["drift"]["columns"]) == ["channel", "hour"]
    assert report["drift"]["dataset"]["drifted"] is False


def test_the_report_puts_metrics_beside_drift(db: Database, two_days) -> None:
    report = monitor_report(db, "help", now=NOW, embedder=Hashing())
    ctr = next(m for m in report["metrics"] if m["metric"] == "ctr")
    assert (ctr["current"], ctr["previous"]) == (pytest.approx(0.1), pytest.approx(0.5))
    assert report["drift"]["dataset"]["drifted_columns"] >= 2
    assert report["quality"] == []  # no label feedback yet


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("logbook:yesterday", "is not a window"),
        ("logbook:-1h/-2h", "ends before it starts"),
        ("logbook:soon/-1h", "neither an ISO time nor an offset"),
        ("missing.csv", "missing.csv does not exist"),
        ("trainset@1", "is not a file"),
    ],
)
def test_bad_references_are_clear(db: Database, two_days, reference: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        endpoint_drift(db, "help", now=NOW, reference=reference, embedder=Hashing())
    assert info.value.field == "reference"


def test_a_drift_rule_fires_on_the_shifted_day(db: Database, two_days) -> None:
    from stoa.measure.alerts import create_rules, evaluate, list_alerts
    from stoa.measure.monitor import drift_score
    from tests.measure.test_alerts import add_endpoint

    share, rows = drift_score(db, "help", window=DAY, now=NOW, columns=["hour", "channel"])
    assert (share, rows) == (1.0, 400)
    score, _ = drift_score(db, "help", window=DAY, now=NOW, column="latency_ms")
    assert score > 0.05  # its test's score: a KS p-value at 400 reference rows, no drift
    assert drift_score(db, "help", window=DAY, now=NOW + 9 * DAY) == (None, 0)
    add_endpoint(db, "help")
    spec = {"name": "inputs-drift", "endpoint": "help", "op": ">=", "threshold": 0.5,
            "signal": {"drift": {"columns": ["hour", "channel"]}}, "window": "24h",
            "min_samples": 20}  # fmt: skip
    create_rules(db, [], [spec])
    [moved] = evaluate(db, [], now=NOW)
    assert (moved["from"], moved["to"], moved["value"]) == ("ok", "firing", 1.0)
    assert list_alerts(db)[0]["rule"] == "inputs-drift"
