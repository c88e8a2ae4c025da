"""Metric definitions and the per-unit outcomes every analysis reads, on SQLite and
PostgreSQL: attribution windows, units, shadows, value matches, ratios and quantiles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.measure.definitions import BUILTINS, MetricStore, parse_duration, parse_yaml
from stoa.measure.outcomes import load_feedback, load_predictions, unit_outcomes
from stoa.measure.signals import metric_value
from tests.measure.logbook_rows import feedback, prediction, write

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def day(db: Database) -> dict[str, dict]:
    """Unit u1 (variant a) twice, u2 (b) once, an anonymous request on b, a shadow."""
    p = {
        "a1": prediction("shop", "a", T0, unit_id="u1", latency_ms=100.0, cost_usd=0.002),
        "a2": prediction("shop", "a", T0 + H, unit_id="u1", latency_ms=300.0, cost_usd=0.004),
        "b1": prediction("shop", "b", T0 + H, unit_id="u2", latency_ms=50.0, status="error"),
        "b2": prediction("shop", "b", T0 + 2 * H, latency_ms=70.0),
        "sh": prediction("shop", "s", T0, unit_id="u1", mode="shadow"),
    }
    events = [
        feedback(p["a1"], "click", True, T0 + H),  # counts
        feedback(p["a1"], "click", True, T0 + 2 * H),  # a second click, one clicked prediction
        feedback(p["a2"], "click", True, T0 + 30 * H),  # after the 24 h window
        feedback(p["b1"], "click", True, T0 + 2 * H),
        feedback(p["b1"], "conversion", True, T0 + 3 * H),
        feedback(p["a1"], "rating", 4, T0 + H),
        feedback(p["a2"], "rating", 2, T0 + 2 * H),
        feedback(p["b2"], "thumb", 1, T0 + 3 * H),
        feedback(p["b1"], "thumb", -1, T0 + 3 * H),
        feedback(p["sh"], "click", True, T0 + H),  # a shadow's: never counted
        feedback(p["b2"], "judge.correctness", 0.25, T0 + 3 * H, source="judge"),
    ]
    write(db, p.values(), events)
    return p


def _outcomes(db: Database, names: list[str]):
    metrics = [BUILTINS[n] for n in names]
    kinds = set().union(*(m.feedback_kinds for m in metrics))
    preds = load_predictions(db, "shop")
    return unit_outcomes(preds, load_feedback(db, "shop", kinds), metrics)


def test_units_windows_and_shadows(db: Database, day: dict) -> None:
    out = _outcomes(db, ["ctr", "csat", "conversion_rate", "thumbs_up_rate", "error_rate"])
    frame = out.frame.set_index("unit")
    assert out.predictions == 4  # the shadow is not a prediction users saw
    assert sorted(frame.index) == sorted(["u1", "u2", day["b2"]["id"]])
    u1 = frame.loc["u1"]
    assert (u1["variant"], u1["predictions"]) == ("a", 2)
    assert (u1["ctr__num"], u1["ctr__den"]) == (1, 2)  # a2's click came after 24 h
    assert (u1["csat__num"], u1["csat__den"]) == (6, 2)
    u2 = frame.loc["u2"]
    assert (u2["conversion_rate__num"], u2["conversion_rate__den"]) == (1, 1)
    assert (u2["thumbs_up_rate__num"], u2["error_rate__num"]) == (0, 1)
    assert frame.loc[day["b2"]["id"], "thumbs_up_rate__num"] == 1


def test_quantile_metrics_keep_every_value(db: Database, day: dict) -> None:
    out = _outcomes(db, ["latency_p95", "cost_per_1k"])
    latencies = out.quantiles["latency_p95"]
    assert sorted(latencies["value"][latencies["variant"] == "a"]) == [100.0, 300.0]
    u1 = out.frame.set_index("unit").loc["u1"]
    assert u1["cost_per_1k__num"] == pytest.approx(6.0)


def test_signals_pool_variants_over_a_window(db: Database, day: dict) -> None:
    now = T0 + 3 * H + timedelta(minutes=1)
    ctr, n = metric_value(db, "shop", BUILTINS["ctr"], window=4 * H, now=now)
    assert (ctr, n) == (pytest.approx(2 / 4), 4)
    errors, _ = metric_value(db, "shop", BUILTINS["error_rate"], window=4 * H, now=now, variant="b")
    assert errors == pytest.approx(0.5)
    p95, _ = metric_value(db, "shop", BUILTINS["latency_p95"], window=4 * H, now=now)
    assert p95 == pytest.approx(np.quantile([100, 300, 50, 70], 0.95))
    judge = parse_yaml("name: judged\nkind: judge\ncriterion: correctness\n")[0]
    assert metric_value(db, "shop", judge, window=4 * H, now=now) == (pytest.approx(0.25), 1)
    # Feedback that came after `now` does not count at `now`.
    assert metric_value(db, "shop", judge, window=4 * H, now=T0 + 3 * H) == (None, 0)
    assert metric_value(db, "shop", BUILTINS["ctr"], window=H, now=T0 - H) == (None, 0)


def test_no_predictions_is_a_clear_error(db: Database) -> None:
    with pytest.raises(InvalidInputError, match="no live predictions"):
        unit_outcomes(load_predictions(db, "none"), load_feedback(db, "none", set()), [])


def test_definitions_are_versioned_and_builtins_reserved(db: Database) -> None:
    store = MetricStore(db)
    spec = parse_yaml("name: refunds\nkind: proportion\nevent: refund\ndirection: lower\n")[0]
    assert store.define(spec)["version"] == 1
    assert store.define(spec)["version"] == 1  # unchanged: nothing written
    spec2 = spec.model_copy(update={"window": "48h"})
    assert store.define(spec2)["version"] == 2
    assert store.get("refunds").window == "48h"
    assert store.get("refunds@1").window == "24h"
    names = [m["name"] for m in store.list()]
    assert names[: len(BUILTINS)] == list(BUILTINS) and names.count("refunds") == 1
    with pytest.raises(InvalidInputError, match="'ctr' is a built-in metric"):
        store.define(BUILTINS["ctr"])
    with pytest.raises(NotFoundError, match="no metric named 'nope'"):
        store.get("nope")


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("name: x\nkind: share\n", "metrics[0].kind", "'proportion', 'mean', 'ratio' or 'judge'"),
        ("name: Bad\nkind: mean\nevent: rating\n", "metrics[0].name", "lowercase letters"),
        ("name: x\nkind: ratio\nnumerator: {event: a}\n", "metrics[0]", "a ratio needs"),
        ("name: x\nkind: mean\n", "metrics[0]", "either an `event`"),
        ("name: x\nkind: judge\n", "metrics[0]", "names its `criterion`"),
        ("name: x\nkind: mean\nevent: r\nwindow: soon\n", "metrics[0].window", "not a duration"),
        ("name: x\nkind: mean\nevent: r\nfoo: 1\n", "metrics[0].foo", "Extra inputs"),
        ("name: [x\n", "metrics", "not valid YAML at line"),
        ("[]\n", "metrics", "no metric definitions"),
    ],
)
def test_bad_definitions_name_the_field(text: str, field: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_yaml(text)
    assert info.value.field == field
    assert message in info.value.message


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration(60) == timedelta(minutes=1)
    assert parse_duration("90") == timedelta(seconds=90)  # a bare number is seconds
    assert parse_duration("0", "for", allow_zero=True) == timedelta(0)
    assert parse_duration("0m", "for", allow_zero=True) == timedelta(0)
    with pytest.raises(InvalidInputError, match="not a duration"):
        parse_duration("-1m", "for", allow_zero=True)
    with pytest.raises(InvalidInputError, match="must be positive"):
        parse_duration("0s")
