"""/api/v1/runs: the tracking store over HTTP, with the one error shape."""

from __future__ import annotations

from tests.serve.test_api import API, check_error, ok


def _run(api, **body):
    return ok(api.post(f"{API}/runs", json={"name": "train", "status": "running", **body}), 201)


def test_log_search_compare_and_history(api):
    run = _run(api, params={"lr": 0.1}, tags={"team": "ds"})
    points = [{"key": "acc", "value": v, "step": i} for i, v in enumerate([0.5, 0.7, 0.9])]
    assert api.post(f"{API}/runs/{run['id']}/batch", json={"metrics": points}).status_code == 204
    finished = ok(api.post(f"{API}/runs/{run['id']}/finish", json={}))
    assert finished["status"] == "finished" and finished["ended_at"]
    other = _run(api, params={"lr": 0.2})
    api.post(f"{API}/runs/{other['id']}/batch", json={"metrics": [{"key": "acc", "value": 0.4}]})

    found = ok(api.get(f"{API}/runs", params={"metric": "acc>0.8", "param": "lr=0.1"}))
    assert [r["info"]["id"] for r in found] == [run["id"]]
    assert found[0]["metrics"] == {"acc": 0.9} and found[0]["tags"] == {"team": "ds"}
    ordered = ok(api.get(f"{API}/runs", params={"order_by": "-metrics.acc"}))
    assert [r["info"]["id"] for r in ordered] == [run["id"], other["id"]]
    side = ok(api.get(f"{API}/runs/-/compare", params=[("ids", other["id"]), ("ids", run["id"])]))
    assert [r["params"]["lr"] for r in side] == ["0.2", "0.1"]
    history = ok(api.get(f"{API}/runs/{run['id']}/metrics/acc"))
    assert [(p["step"], p["value"]) for p in history] == [(0, 0.5), (1, 0.7), (2, 0.9)]


def test_runs_bad_input(api):
    run = _run(api, params={"lr": 0.1})
    batch = f"{API}/runs/{run['id']}/batch"
    check_error(api.post(batch, json={"metrics": [{"key": "acc", "value": "x"}]}), 422,
                "metrics.acc", message="must be a number")  # fmt: skip
    check_error(api.post(batch, json={"metrics": [{"key": "a b!", "value": 1}]}), 422,
                "metrics.key", message="not a valid key")  # fmt: skip
    check_error(api.post(batch, json={"params": {"lr": 0.3}}), 409, "params.lr",
                code="conflict", message="already '0.1'")  # fmt: skip
    check_error(api.get(f"{API}/runs", params={"metric": "acc ~ 1"}), 422, "metrics",
                message="not a metric condition")  # fmt: skip
    check_error(api.get(f"{API}/runs", params={"param": "novalue"}), 422, "param",
                message="KEY=VALUE")  # fmt: skip
    check_error(api.get(f"{API}/runs", params={"order_by": "bogus"}), 422, "order_by",
                message="cannot order by")  # fmt: skip
    check_error(api.get(f"{API}/runs", params={"limit": 0}), 422, "limit", message="1..10000")
    check_error(api.get(f"{API}/runs/nope"), 404, "run_id", code="not_found")
    check_error(api.post(f"{API}/runs/nope/batch", json={}), 404, "run_id", message="no run")
    check_error(api.post(f"{API}/runs", json={"name": "x", "status": "paused"}), 422, "status",
                message="running or finished")  # fmt: skip
    check_error(api.post(f"{API}/runs/{run['id']}/finish", json={"status": "paused"}), 422,
                "status", message="not a final status")  # fmt: skip
    ok(api.post(f"{API}/runs/{run['id']}/finish", json={"status": "failed"}))
    check_error(api.post(batch, json={"tags": {"a": "b"}}), 409, "run_id", code="conflict",
                message="only running runs")  # fmt: skip
    check_error(api.get(f"{API}/runs/-/compare"), 422, "run_ids", message="compare 1 to 100")
    check_error(api.get(f"{API}/runs/{run['id']}/metrics/bad key!"), 422, "key",
                message="not a valid key")  # fmt: skip
