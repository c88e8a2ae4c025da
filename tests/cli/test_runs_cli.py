"""`stoa runs list/show/compare/history`: JSON shapes, tables and bad input."""

from __future__ import annotations

import json

from tests.cli.test_cli import one_line_error, stoa  # noqa: F401 - the fixture


def _seed(tmp_path) -> list[str]:
    from stoa.client import LocalClient

    client = LocalClient(home=tmp_path / "home", actor="tester")
    ids = []
    for i, acc in enumerate([0.6, 0.9]):
        with client.runs.start("exp", params={"lr": i}, capture_environment=False) as run:
            run.log_metrics({"acc": acc}, step=0)
            run.log_metrics({"acc": acc + 0.01}, step=1)
        ids.append(run.id)
    client.close()
    return ids


def test_runs_list_show_compare_history(stoa, tmp_path):  # noqa: F811
    low, high = _seed(tmp_path)
    found = json.loads(stoa("runs", "list", "--metric", "acc>0.8", "--json").stdout)
    assert [r["info"]["id"] for r in found] == [high]
    ordered = json.loads(stoa("runs", "list", "--order-by", "metrics.acc", "--json").stdout)
    assert [r["info"]["id"] for r in ordered] == [low, high]
    by_param = json.loads(stoa("runs", "list", "--param", "lr=0", "--json").stdout)
    assert [r["info"]["id"] for r in by_param] == [low]
    shown = json.loads(stoa("runs", "show", high, "--json").stdout)
    assert shown["metrics"] == {"acc": 0.91} and shown["params"] == {"lr": "1"}
    compared = json.loads(stoa("runs", "compare", high, low, "--json").stdout)
    assert [r["info"]["id"] for r in compared] == [high, low]
    points = json.loads(stoa("runs", "history", low, "acc", "--json").stdout)
    assert [(p["step"], p["value"]) for p in points] == [(0, 0.6), (1, 0.61)]
    table = stoa("runs", "compare", high, low)
    assert table.returncode == 0 and "metrics.acc" in table.stdout


def test_runs_bad_input(stoa, tmp_path):  # noqa: F811
    _seed(tmp_path)
    one_line_error(stoa("runs", "list", "--metric", "acc ~ 1"), 2, "metrics", "metric condition")
    one_line_error(stoa("runs", "list", "--param", "lr"), 2, "param", "KEY=VALUE")
    one_line_error(stoa("runs", "list", "--order-by", "size"), 2, "order_by")
    one_line_error(stoa("runs", "list", "--status", "paused"), 2, "status")
    one_line_error(stoa("runs", "show", "nope"), 2, "run_id", "no run 'nope'")
    one_line_error(stoa("runs", "history", "nope", "acc"), 2, "run_id")
