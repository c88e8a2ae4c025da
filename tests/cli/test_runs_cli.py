"""`stoa runs list/show/compare/history`: JSON shapes, tables and bad input."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import clean_env, ok_json, one_line_error, stoa  # noqa: F401 - fixture


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


def _seed_selection(tmp_path) -> tuple[str, list[str]]:
    """A parent run with four candidates, each logging many params and metrics, as
    `stoa select` does; returns the parent's id and the candidates' ids."""
    from stoa.client import LocalClient

    client = LocalClient(home=tmp_path / "home", actor="tester")
    with client.runs.start("select-intent", capture_environment=False) as parent:
        pass
    ids = []
    names = ["tfidf-logistic-regression-with-a-very-long-name", "minilm-knn", "zero-shot",
             "xgboost"]  # fmt: skip
    for i, name in enumerate(names):
        params = {"C": 10**i / 100, "max_iter": 500, "seed": 0, "penalty": "l2", "min_df": 2,
                  "ngram_range": "1,2", "solver": "lbfgs", "class_weight": "balanced"}  # fmt: skip
        metrics = {"accuracy": 0.912345678 - i / 100, "f1": 0.8812345 - i / 50,
                   "precision": 0.87654321, "recall": 0.8123, "latency_p50_ms": 0.123456 * (i + 1),
                   "latency_p95_ms": 1.23456e-3 * 10**i, "cost_per_1k_usd": 1.234e-7 * (i + 1),
                   "size_mb": 12.5 + i, "train_s": 3.14159 + i}  # fmt: skip
        with client.runs.start(name, parent=parent.id, params=params,
                               capture_environment=False) as run:  # fmt: skip
            run.log_metrics(metrics, step=0)
        ids.append(run.id)
    client.close()
    return parent.id, ids


def test_runs_tables_fit_80_columns_and_never_cut_a_number(stoa, tmp_path):  # noqa: F811
    parent, ids = _seed_selection(tmp_path)
    narrow = clean_env(STOA_HOME=str(tmp_path / "home"), COLUMNS="80")
    for args in [("runs", "list"), ("runs", "compare", *ids),
                 ("runs", "list", "--order-by", "-metrics.latency_p95_ms")]:  # fmt: skip
        result = stoa(*args, env=narrow)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, result.stdout
        assert "…" not in result.stdout, result.stdout
        assert "did not fit in 80 characters" in result.stderr and "--columns" in result.stderr
    listed = stoa("runs", "list", env=narrow).stdout
    assert "0.912346" in listed and "0.881235" in listed  # accuracy and f1, whole
    assert ids[0][:8] in listed and "with-a-very" in listed.replace("\n", "")
    by_latency = stoa("runs", "list", "--order-by", "-metrics.latency_p95_ms", env=narrow).stdout
    assert "1.23456" in by_latency  # the column the list is ordered by is shown first

    chosen = stoa("runs", "list", "--parent", parent, "--columns",
                  "name,status,metrics.f1,params.C", env=narrow)  # fmt: skip
    assert chosen.returncode == 0 and chosen.stderr == "", chosen.stderr
    header = chosen.stdout.splitlines()[1]
    assert [h.strip() for h in header.strip("┃").split("┃")] == [
        "name", "status", "metrics.f1", "params.C",
    ]  # fmt: skip
    assert "0.881235" in chosen.stdout and "10.0" in chosen.stdout
    assert max(len(line) for line in chosen.stdout.splitlines()) <= 80
    one_line_error(stoa("runs", "list", "--columns", "name,size"), 2, "columns", "'size'")


def test_runs_list_parent_lists_the_children_of_a_run(stoa, tmp_path):  # noqa: F811
    parent, ids = _seed_selection(tmp_path)
    children = json.loads(stoa("runs", "list", "--parent", parent, "--json").stdout)
    assert sorted(r["info"]["id"] for r in children) == sorted(ids)
    assert all(r["info"]["parent_id"] == parent for r in children)
    assert json.loads(stoa("runs", "list", "--parent", ids[0], "--json").stdout) == []


def test_a_short_run_id_is_accepted_wherever_a_run_id_is(stoa, tmp_path, skops_file):  # noqa: F811
    low, high = _seed(tmp_path)
    table = stoa("runs", "list").stdout
    short = next(word for word in table.split() if high.startswith(word) and len(word) >= 6)
    assert ok_json(stoa("runs", "show", short, "--json"))["info"]["id"] == high
    six = low[:6]
    assert [p["value"] for p in ok_json(stoa("runs", "history", six, "acc", "--json"))] == [
        0.6,
        0.61,
    ]
    compared = ok_json(stoa("runs", "compare", short, six, "--json"))
    assert [r["info"]["id"] for r in compared] == [high, low]
    registered = ok_json(stoa("models", "register", "m", str(skops_file), "--run", short, "--json"))
    assert registered["ref"] == "m@1"
    assert [n["ref"] for n in ok_json(stoa("runs", "lineage", short, "--json"))["downstream"]] == [
        "m@1"
    ]
    up = ok_json(stoa("models", "lineage", "m@1", "--json"))["upstream"]
    assert [(n["type"], n["ref"]) for n in up] == [("run", high)]
    one_line_error(stoa("runs", "show", high[:5]), 2, "run_id", "at least 6")
    one_line_error(stoa("runs", "show", "0" * 6 if not high.startswith("0" * 6) else "f" * 6), 2,
                   "no run")  # fmt: skip


def test_an_ambiguous_run_id_prefix_is_refused_naming_the_candidates(
    stoa,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    import uuid

    from stoa.client import LocalClient
    from stoa.core.errors import InvalidInputError
    from stoa.develop import tracking

    made = iter([uuid.UUID("abcdef01" + "0" * 24), uuid.UUID("abcdef02" + "0" * 24)])
    monkeypatch.setattr(tracking.uuid, "uuid4", lambda: next(made))
    client = LocalClient(home=tmp_path / "home", actor="tester")
    first = client.runs.create("train")
    second = client.runs.create("eval")
    monkeypatch.undo()
    try:
        with pytest.raises(InvalidInputError) as caught:
            client.runs.get("abcdef")
        assert caught.value.http_status == 422 and caught.value.field == "run_id"
        assert client.runs.get("abcdef02").info.id == second.id
    finally:
        client.close()
    line = one_line_error(stoa("runs", "show", "ABCDEF"), 2, "run_id", "ambiguous")
    assert f"{first.id[:12]} (train)" in line and f"{second.id[:12]} (eval)" in line
    assert ok_json(stoa("runs", "show", "abcdef01", "--json"))["info"]["name"] == "train"


def test_runs_create_records_a_finished_run_with_its_end_time(stoa):  # noqa: F811
    run = ok_json(stoa("runs", "create", "fit", "--json"))
    assert run["status"] == "finished" and run["ended_at"] == run["created_at"]
    shown = ok_json(stoa("runs", "show", run["id"], "--json"))["info"]
    assert shown["ended_at"] is not None and shown["status"] == "finished"


def test_runs_download_writes_a_verified_copy_of_an_artifact(stoa, tmp_path):  # noqa: F811
    from stoa.client import LocalClient

    report = tmp_path / "report.txt"
    report.write_text("f1 0.9\n")
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "a.csv").write_text("x\n1\n")
    (plots / "sub" / "b.txt").write_text("b")
    client = LocalClient(home=tmp_path / "home", actor="tester")
    with client.runs.start("fit", capture_environment=False) as run:
        run.log_artifact(report)
        run.log_artifact(plots, name="figures/plots")
    client.close()

    copy = tmp_path / "copy.txt"
    done = ok_json(stoa("runs", "download", run.id[:8], "report.txt", str(copy), "--json"))
    assert done == {"run_id": run.id, "name": "report.txt", "path": str(copy)}
    assert copy.read_text() == "f1 0.9\n"
    folder = tmp_path / "copied"
    assert stoa("runs", "download", run.id, "figures/plots", str(folder)).returncode == 0
    assert (folder / "sub" / "b.txt").read_text() == "b" and (folder / "a.csv").is_file()

    one_line_error(stoa("runs", "download", run.id, "report.txt", str(copy)), 2, "exists")
    one_line_error(stoa("runs", "download", run.id, "nope.txt", str(tmp_path / "n")), 2,
                   "name", "no artifact 'nope.txt'", "report.txt")  # fmt: skip
