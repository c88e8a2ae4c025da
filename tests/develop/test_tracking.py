"""Run tracking on SQLite and PostgreSQL: logging, search, compare and every bad input."""

from __future__ import annotations

import math

import pytest

from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError


def test_a_run_logs_params_tags_metrics_environment_and_inputs(client, tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n")
    client.datasets.register("data", csv)
    with client.runs.start("train", inputs=["data@1"], params={"lr": 0.1}, tags={"t": "x"}) as run:
        run.log_param("depth", 3)
        run.set_tag("team", "ds")
        for step in range(2500):  # more than one flush
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 2500})
        run.log_metric("acc", 0.99, step=10_000)
    detail = client.runs.get(run.id)
    assert detail.info.status == "finished" and detail.info.ended_at is not None
    assert detail.params == {"lr": "0.1", "depth": "3"}
    assert detail.tags == {"t": "x", "team": "ds"}
    assert detail.metrics == {"loss": 1 / 2500, "acc": 0.99}  # highest step wins
    assert detail.environment["python"] and "numpy" in detail.environment["packages"]
    history = client.runs.metric_history(run.id, "loss")
    assert [p.step for p in history[:3]] == [0, 1, 2] and len(history) == 2500
    lineage = client.runs.lineage(run.id)
    assert [n.ref for n in lineage.upstream] == ["data@1"]


def test_failures_nesting_decorator_and_artifacts(client, tmp_path):
    with pytest.raises(RuntimeError), client.runs.start("boom") as failed:
        failed.log_metric("x", 1.0)
        raise RuntimeError("training diverged")
    detail = client.runs.get(failed.id)
    assert detail.info.status == "failed" and detail.metrics == {"x": 1.0}  # kept

    with client.runs.start("study") as study:
        with client.runs.start("trial-1", params={"lr": 0.1}) as trial:
            trial.log_metric("acc", 0.8)
        assert client.runs.get(trial.id).info.parent_id == study.id

    @client.runs.start("decorated", capture_environment=False)
    def train() -> str:
        from stoa.develop.active_run import active_run

        run = active_run()
        run.log_metric("acc", 0.5)
        (tmp_path / "report.txt").write_text("ok")
        run.log_artifact(tmp_path / "report.txt")
        return run.id

    first, second = train(), train()
    assert first != second
    artifact = client.runs.get(first).artifacts[0]
    assert artifact["path"] == "report.txt" and artifact["size"] == 2
    children = client.runs.search(parent_id=study.id)
    assert [r.info.name for r in children] == ["trial-1"]


def test_search_filters_orders_and_compares(client):
    ids = {}
    for i, (model, acc) in enumerate([("xgb", 0.9), ("xgb", 0.7), ("lr", 0.95), ("lr", 0.6)]):
        with client.runs.start(f"r{i}", params={"model": model}, tags={"i": i}) as run:
            run.log_metric("acc", acc)
        ids[i] = run.id
    best = client.runs.search(metrics=["acc>0.65"], order_by="-metrics.acc")
    assert [r.info.id for r in best] == [ids[2], ids[0], ids[1]]
    xgb = client.runs.search(params={"model": "xgb"}, metrics=["acc >= 0.9"])
    assert [r.info.id for r in xgb] == [ids[0]]
    assert [r.info.id for r in client.runs.search(tags={"i": "3"})] == [ids[3]]
    ordered = client.runs.search(order_by="params.model", limit=2)
    assert {r.params["model"] for r in ordered} == {"lr"}
    side = client.runs.compare([ids[3], ids[0]])
    assert [r.info.id for r in side] == [ids[3], ids[0]]


def test_bad_input_is_refused_and_nothing_is_half_written(client):
    with client.runs.start("r", params={"lr": 0.1}, capture_environment=False) as run:
        with pytest.raises(InvalidInputError, match="only finite values") as bad:
            run.log_metric("loss", math.nan)
        assert bad.value.field == "metrics.loss"
        with pytest.raises(InvalidInputError, match="must be a number"):
            run.log_metric("loss", "high")
        with pytest.raises(InvalidInputError, match="not a valid key"):
            run.log_metric("bad key!", 1.0)
        with pytest.raises(InvalidInputError, match="step of 'x' must be an integer"):
            run.log_metric("x", 1.0, step=1.5)
        with pytest.raises(InvalidInputError, match="milliseconds since the epoch"):
            run.log_metric("x", 1.0, timestamp=-1)
        # A batch with one bad point is refused whole: the good point before it is not stored.
        with pytest.raises(InvalidInputError):
            client.runs.log_batch(run.id, metrics=[("ok", 1.0), ("nan", math.inf)])
        assert client.runs.get(run.id).metrics == {}
        with pytest.raises(InvalidInputError, match="more than 10000 metric points"):
            client.runs.log_batch(run.id, metrics=[("m", 1.0, i) for i in range(10_001)])
        with pytest.raises(ConflictError, match=r"param 'lr' of run .* is already '0\.1'"):
            client.runs.log_batch(run.id, params={"lr": 0.2})
        client.runs.log_batch(run.id, params={"lr": 0.1})  # the same value again is fine
    with pytest.raises(ConflictError, match="only running runs take new values"):
        client.runs.log_batch(run.id, metrics=[("late", 1.0)])
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        client.runs.get("nope")
    with pytest.raises(NotFoundError):
        client.runs.log_batch("nope", metrics=[("m", 1.0)])
    with pytest.raises(InvalidInputError, match="not a final status"):
        client.runs.finish(run.id, "paused")
    with pytest.raises(InvalidInputError, match="is not a metric condition"):
        client.runs.search(metrics=["acc ~ 3"])
    with pytest.raises(InvalidInputError, match="is not a number"):
        client.runs.search(metrics=["acc > high"])
    with pytest.raises(InvalidInputError, match="cannot order by"):
        client.runs.search(order_by="size")
    with pytest.raises(InvalidInputError, match="limit must be"):
        client.runs.search(limit=0)
    with pytest.raises(NotFoundError, match="no run 'ghost'"):
        client.runs.create("child", parent_id="ghost", status="running")
    with pytest.raises(InvalidInputError, match="compare 1 to 100 runs"):
        client.runs.compare([])


def test_numpy_scalars_are_logged_as_numbers(sqlite_client):
    import numpy as np

    with sqlite_client.runs.start("np", capture_environment=False) as run:
        run.log_metric("f32", np.float32(0.5), step=np.int64(3))
        run.log_metric("i64", np.int64(7))
        with pytest.raises(InvalidInputError, match="must be a number, not bool"):
            run.log_metric("flag", np.bool_(True))
    assert sqlite_client.runs.get(run.id).metrics == {"f32": 0.5, "i64": 7.0}
    assert sqlite_client.runs.metric_history(run.id, "f32")[0].step == 3


def test_a_refused_flush_loses_nothing_and_the_run_still_ends(sqlite_client):
    refused = pytest.raises(ConflictError, match="param 'lr' is already '1', not '2'")
    with refused, sqlite_client.runs.start("p", params={"lr": 1}, capture_environment=False) as run:
        run.log_metric("loss", 0.5)
        run.log_param("lr", 2)  # refused at once, where the mistake is
    detail = sqlite_client.runs.get(run.id)
    assert detail.info.status == "failed" and detail.metrics == {"loss": 0.5}
    with pytest.raises(InvalidInputError, match="too large for a float"):
        run.log_metric("huge", 10**400)


@pytest.mark.parametrize("point", [None, 3, "acc", ["acc"], ["acc", 1.0, 0, 0, "extra"]])
def test_a_metric_point_of_the_wrong_shape_is_refused_by_name(sqlite_client, point):
    """Found by fuzzing the REST API: a point that was no list or object became a 500."""
    run = sqlite_client.runs.create("r", status="running")
    with pytest.raises(InvalidInputError, match="is not a metric point") as refused:
        sqlite_client.runs.log_batch(run.id, metrics=[("acc", 0.5, 0, 1), point])
    assert refused.value.field == "metrics"
    assert sqlite_client.runs.get(run.id).metrics == {}  # the good point was not half-written
