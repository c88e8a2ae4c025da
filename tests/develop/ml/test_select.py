"""Selection: ranking, Pareto front, constraint reasons, config and data errors, and
a real run end to end (CLI and REST) that registers its winner with lineage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.ml.data import DataSpec, prepare, split
from stoa.develop.ml.select import _rank, pareto_front, parse_config


def row(name: str, f1: float, p95: float, cost: float, size: float = 1.0) -> dict:
    return {"name": name, "kind": "k", "metrics": {"f1_macro": f1},
            "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 2}, "cost_per_1k": cost,
            "size_mb": size, "train_s": 1.0, "peak_mem_mb": 1.0}  # fmt: skip


def test_ranking_pareto_and_constraint_reasons():
    rows = [row("slow-best", 0.95, 50, 0.010), row("fast", 0.85, 2, 0.001),
            row("dominated", 0.80, 5, 0.002), row("cheap-mid", 0.90, 10, 0.0005)]  # fmt: skip
    _rank(rows, "f1_macro", {"max_p95_ms": 20, "min_f1_macro": 0.86})
    assert [r["name"] for r in rows] == ["slow-best", "cheap-mid", "fast", "dominated"]
    assert {r["name"] for r in rows if r["pareto"]} == {"slow-best", "fast", "cheap-mid"}
    assert pareto_front(rows, "f1_macro") == ["slow-best", "cheap-mid", "fast"]
    reasons = {r["name"]: r["rejected_because"] for r in rows}
    assert reasons["slow-best"] == ["p95_ms 50 > max_p95_ms 20"]
    assert reasons["fast"] == ["f1_macro 0.85 < min_f1_macro 0.86"]
    assert reasons["cheap-mid"] == []
    assert next(r["name"] for r in rows if r["meets_constraints"]) == "cheap-mid"


def test_none_qualifies_and_lower_is_better_metrics():
    rows = [row("a", 0.5, 30, 1.0), row("b", 0.6, 40, 2.0)]
    _rank(rows, "f1_macro", {"max_p95_ms": 10, "max_cost_per_1k": 0.5})
    assert not any(r["meets_constraints"] for r in rows)
    assert rows[1]["rejected_because"] == ["p95_ms 30 > max_p95_ms 10",
                                           "cost_per_1k 1 > max_cost_per_1k 0.5"]  # fmt: skip
    rmse = [
        dict(row("x", 0, 1, 1), metrics={"rmse": 3.0}),
        dict(row("y", 0, 1, 1), metrics={"rmse": 1.0}),
    ]
    _rank(rmse, "rmse", {})
    assert [r["name"] for r in rmse] == ["y", "x"]  # lower error ranks first


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        ({}, "data", "data is required"),
        ({"data": {"target": "y", "path": "a.csv", "dataset": "d@1"}},
         "data", "exactly one of data.path and data.dataset"),
        ({"data": {"path": "a.csv"}}, "data.target", "must name the label column"),
        ({"data": {"path": "a.csv", "target": "y", "colour": 1}}, "data.colour",
         "unknown key(s) in data"),
        ({"data": {"path": "a.csv", "target": "y"}, "candidates": []}, "candidates", "non-empty"),
        ({"data": {"path": "a.csv", "target": "y"},
          "candidates": [{"kind": "ridge"}, {"kind": "ridge"}]}, "candidates", "unique"),
        ({"data": {"path": "a.csv", "target": "y"}, "candidates": [{"name": "n"}]},
         "candidates.0.kind", "needs a kind"),
        ({"data": {"path": "a.csv", "target": "y"}, "candidates": [{"kind": "bert"}]},
         "candidates.0.kind", "unknown candidate kind 'bert'"),
        ({"data": {"path": "a.csv", "target": "y"}, "candidates": [{"kind": "ridge"}],
          "constraints": {"p95": 3}}, "constraints.p95", "min_ or max_"),
        ({"data": {"path": "a.csv", "target": "y"}, "candidates": [{"kind": "ridge"}]},
         "primary_metric", "required"),
        ({"data": {"path": "a.csv", "target": "y"}, "candidates": [{"kind": "ridge"}],
          "primary_metric": "f1"}, "primary_metric", "unknown primary_metric 'f1'"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_field(doc, field, message):
    with pytest.raises(InvalidInputError) as err:
        parse_config(doc)
    assert err.value.field == field and message in str(err.value)


def test_bad_data_names_column_and_rows():
    spec = DataSpec(target="label", text="body")
    frame = pd.DataFrame({"body": ["a", "b", None, "d"], "label": ["x", None, "y", "y"]})
    with pytest.raises(InvalidInputError, match=r"empty in 1 row\(s\): 3 \(file line numbers\)"):
        prepare(frame, spec, "t.csv", None)
    frame["label"] = ["x", "x", "y", "y"]
    with pytest.raises(InvalidInputError, match=r"non-text values in 1 row\(s\): 4"):
        prepare(frame, spec, "t.csv", None)
    with pytest.raises(InvalidInputError, match=r"target column 'intent' is not in t\.csv"):
        prepare(frame, DataSpec(target="intent", text="body"), "t.csv", None)
    one = pd.DataFrame({"body": ["a", "b"], "label": ["x", "x"]})
    with pytest.raises(InvalidInputError, match="single class"):
        prepare(one, spec, "t.csv", None)
    rare = pd.DataFrame({"body": list("abcde"), "label": ["x", "x", "y", "y", "z"]})
    data = prepare(rare, spec, "t.csv", None)
    with pytest.raises(InvalidInputError, match="class\\(es\\) z have a single example"):
        split(data, spec)


def test_splits_are_deterministic_and_stratified():
    frame = pd.DataFrame({"body": [f"t{i}" for i in range(100)],
                          "label": ["a"] * 80 + ["b"] * 20})  # fmt: skip
    spec = DataSpec(target="label", text="body", test_size=0.25, seed=3)
    data = prepare(frame, spec, "t.csv", None)
    first, second = split(data, spec), split(data, spec)
    assert first.x_test.texts == second.x_test.texts and first.method == "stratified"
    assert (first.y_test == "b").sum() == 5


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"tenure": rng.integers(1, 72, n), "charges": rng.normal(70, 20, n),
                          "contract": rng.choice(["m2m", "1y", "2y"], n)})  # fmt: skip
    logit = -1 + 0.03 * (frame.charges - 70) - 0.04 * (frame.tenure - 36)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    path = tmp_path_factory.mktemp("data") / "churn.csv"
    frame.to_csv(path, index=False)
    return path


def _config(path: str) -> dict:
    return {
        "data": {"path": path, "target": "churned", "split": {"test_size": 0.3, "seed": 7}},
        "primary_metric": "roc_auc_ovr",
        "constraints": {"max_p95_ms": 1000, "min_roc_auc_ovr": 0.5},
        "evaluation": {"bootstrap": 50},
        "candidates": [{"name": "lr", "kind": "logistic_regression"},
                       {"name": "llm", "kind": "xgboost", "params": {"n_estimators": 20}}],
    }  # fmt: skip


def test_select_end_to_end_registers_the_winner_with_lineage(stoa, tmp_path, churn_csv):
    config = tmp_path / "select.yaml"
    import yaml

    config.write_text(yaml.safe_dump(_config(str(churn_csv))))
    result = stoa("select", str(config), "--register", "churn", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    top = out["leaderboard"][0]
    assert set(top) >= {"name", "kind", "metrics", "latency_ms", "cost_per_1k", "size_mb",
                        "train_s", "pareto", "meets_constraints", "rejected_because"}  # fmt: skip
    assert set(top["latency_ms"]) >= {"p50", "p95", "p99"} and top["metrics"]["f1_macro"] > 0
    assert out["recommendation"] == top["name"] and out["run_id"]
    assert out["registered"]["alias"] == "churn@champion"
    from stoa.client import LocalClient

    client = LocalClient(home=tmp_path / "home")
    model = client.models.show("churn@champion")
    assert model.flavor == "candidate" and model.metadata["leaderboard_row"]["name"] == top["name"]
    loaded = client.models.load("churn@champion")
    assert loaded.kind == top["kind"]
    up = [n.ref for n in client.models.lineage("churn@champion").upstream]
    assert "churn@1" in up and top["run_id"] in up
    parent = client.runs.get(out["run_id"])
    assert parent.tags["recommendation"] == top["name"]
    children = client.runs.search(parent_id=out["run_id"])
    assert {c.info.name for c in children} == {"lr", "llm"}
    assert "latency_p95_ms" in children[0].metrics
    client.close()


def test_select_bad_input_from_the_cli(stoa, tmp_path):
    one = tmp_path / "x.yaml"
    one.write_text("data: [\n")
    from tests.cli.test_cli import one_line_error

    one_line_error(stoa("select", str(one)), 2, "config", "not valid YAML")
    one.write_text("data: {path: missing.csv, target: y}\nprimary_metric: f1_macro\n"
                   "candidates: [{kind: tfidf_linear}]\n")  # fmt: skip
    one_line_error(stoa("select", str(one)), 2, "data.path", "does not exist")
    one_line_error(stoa("select", str(tmp_path / "nope.yaml")), 2, "config", "cannot read")


def test_selections_over_rest_take_registered_datasets_only(api, churn_csv):
    from tests.serve.test_api import API, check_error, ok

    files = [("file", ("churn.csv", churn_csv.read_bytes()))]
    ok(api.post(f"{API}/datasets", data={"name": "churn"}, files=files), 201)
    config = _config("x")
    check_error(api.post(f"{API}/selections", json={"config": config}), 422, "config.data.path",
                message="registered datasets only")  # fmt: skip
    config["data"] = {**config["data"], "dataset": "churn@1"}
    del config["data"]["path"]
    config["candidates"] = config["candidates"][:1]
    out = ok(api.post(f"{API}/selections", json={"config": config, "register": "c"}))
    assert out["recommendation"] == "lr" and out["registered"]["alias"] == "c@champion"
    config["primary_metric"] = "bleu"
    check_error(api.post(f"{API}/selections", json={"config": config}), 422, "primary_metric")


def test_optuna_search_logs_every_trial_as_a_child_run(tmp_path, churn_csv):
    from stoa.client import LocalClient
    from stoa.develop.ml.select import numpy_safe, run_selection

    client = LocalClient(home=tmp_path / "home", actor="t")
    doc = _config(str(churn_csv))
    doc["candidates"] = [{"name": "lr", "kind": "logistic_regression",
                          "search": {"trials": 4, "space": {"C": {"low": 0.01, "high": 10.0,
                                                                  "log": True}}}}]  # fmt: skip
    result = numpy_safe(run_selection(client, parse_config(doc)))
    row = result["leaderboard"][0]
    assert row["search"]["trials"] == 4 and 0.01 <= row["search"]["best_params"]["C"] <= 10
    trials = client.runs.search(parent_id=row["run_id"])
    assert len(trials) == 4 and all("val_roc_auc_ovr" in t.metrics for t in trials)
    assert client.runs.get(row["run_id"]).params["best.C"]
    client.close()


@pytest.mark.parametrize(
    ("search", "field", "message"),
    [
        ({"trials": 3}, "search.space", "needs a space"),
        ({"trials": 0, "space": {"C": [1, 2]}}, "search.trials", "trials must be"),
        ({"space": {"C": {"low": 5, "high": 1}}}, "search.space.C", "needs low < high"),
        ({"space": {"C": {"low": 0, "high": 1, "log": True}}}, "search.space.C",
         "low > 0 on a log scale"),
        ({"space": {"C": "wide"}}, "search.space.C", "list of choices"),
    ],
)  # fmt: skip
def test_bad_search_spaces(search, field, message):
    doc = {"data": {"path": "a.csv", "target": "y"}, "primary_metric": "f1_macro",
           "candidates": [{"kind": "logistic_regression", "search": search}]}  # fmt: skip
    with pytest.raises(InvalidInputError, match=message) as err:
        parse_config(doc)
    assert err.value.field == f"candidates.0.{field}"


def test_a_crashing_candidate_is_reported_and_the_others_still_rank(
    tmp_path, churn_csv, monkeypatch
):
    from stoa.client import LocalClient
    from stoa.develop.ml.candidates import tabular
    from stoa.develop.ml.select import numpy_safe, run_selection

    def boom(self, x, y):
        raise MemoryError("out of memory while fitting")

    monkeypatch.setattr(tabular.XGBoostKind, "fit", boom)
    client = LocalClient(home=tmp_path / "home", actor="t")
    result = numpy_safe(run_selection(client, parse_config(_config(str(churn_csv)))))
    names = [r["name"] for r in result["leaderboard"]]
    assert names == ["lr", "llm"] and result["recommendation"] == "lr"
    failed = result["leaderboard"][1]
    assert failed["rejected_because"] == ["failed: MemoryError: out of memory while fitting"]
    runs = client.runs.search(parent_id=result["run_id"], name="llm")
    assert runs[0].info.status == "failed"
    client.close()


def test_the_whole_result_is_logged_as_selection_json_on_the_parent_run(tmp_path, churn_csv):
    from stoa.client import LocalClient
    from stoa.develop.ml.select import RESULT_ARTIFACT, numpy_safe, run_selection

    client = LocalClient(home=tmp_path / "home", actor="t")
    doc = _config(str(churn_csv))
    doc["candidates"] = doc["candidates"][:1]
    result = numpy_safe(run_selection(client, parse_config(doc)))
    path = client.runs.download_artifact(result["run_id"], RESULT_ARTIFACT, tmp_path / "s.json")
    logged = json.loads(path.read_text())
    assert logged["constraints"] == {"max_p95_ms": 1000.0, "min_roc_auc_ovr": 0.5}
    assert logged["primary_metric"] == "roc_auc_ovr" and logged["recommendation"] == "lr"
    assert logged["leaderboard"] == result["leaderboard"]
    assert logged["leaderboard"][0]["run_id"] in {
        r.info.id for r in client.runs.search(parent_id=result["run_id"])
    }
    assert [r.info.id for r in client.runs.search(tags={"kind": "selection"})] == [result["run_id"]]
    client.close()


def test_a_bad_candidate_fails_before_anything_trains(tmp_path, churn_csv):
    from stoa.client import LocalClient
    from stoa.develop.ml.select import run_selection

    doc = _config(str(churn_csv))
    doc["candidates"].append({"name": "text", "kind": "tfidf_linear"})
    client = LocalClient(home=tmp_path / "home", actor="t")
    with pytest.raises(InvalidInputError, match="candidate text: tfidf_linear takes text data"):
        run_selection(client, parse_config(doc))
    assert client.runs.search() == []  # no run was started
    client.close()


def test_metric_and_task_edge_cases():
    from stoa.develop.ml.data import _infer_task
    from stoa.develop.ml.evaluate import score

    classes = np.array(["a", "b", "c"])
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    y = np.array(["a", "b", "a", "b"])  # class c absent, as in many bootstrap resamples
    assert score("classification", "roc_auc_ovr", y, y, proba, classes) == 1.0
    rng = np.random.default_rng(0)
    assert _infer_task(pd.Series(rng.normal(size=40) * 3 + 10)) == "regression"
    assert _infer_task(pd.Series([0.0, 1.0, 2.0] * 10)) == "classification"
    rows = [row("a", 0.9, 1, 1)]
    rows[0]["throughput_rows_per_s"] = 500.0
    _rank(rows, "f1_macro", {"min_throughput_rows_per_s": 1000})
    assert rows[0]["rejected_because"] == [
        "throughput_rows_per_s 500 < min_throughput_rows_per_s 1000"
    ]
    doc = {"data": {"path": "a.csv", "target": "y"}, "primary_metric": "f1_macro",
           "candidates": [{"kind": "ridge"}], "measurement": {"single": 20}}  # fmt: skip
    with pytest.raises(InvalidInputError, match="at least 200"):
        parse_config(doc)


def _valid() -> dict:
    return {"data": {"path": "a.csv", "target": "y", "split": {"seed": 1}},
            "primary_metric": "f1_macro", "constraints": {"max_p95_ms": 20},
            "pricing": {"cpu_hour": 0.05}, "evaluation": {"bootstrap": 10},
            "measurement": {"single": 200},
            "candidates": [{"name": "lr", "kind": "logistic_regression", "params": {"C": 1.0},
                            "search": {"trials": 2, "space": {"C": {"low": 0.1, "high": 1}}}},
                           {"name": "zs", "kind": "zero_shot",
                            "labels": {"a": "about a"}}]}  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "field", "known"),
    [
        (lambda d: d.update(primary_metrc="f1_macro"), "primary_metrc", "'primary_metric'"),
        (lambda d: d["data"].update(traget="y"), "data.traget", "'target'"),
        (lambda d: d["data"]["split"].update(sed=1), "data.split.sed", "'seed'"),
        (lambda d: d["constraints"].update(max_p95=20), "constraints.max_p95", "'max_p95_ms'"),
        (lambda d: d["constraints"].update(min_f1=0.8), "constraints.min_f1", "'min_f1_macro'"),
        (lambda d: d["pricing"].update(cpu_hr=1), "pricing.cpu_hr", "'cpu_hour'"),
        (lambda d: d["evaluation"].update(bootstraps=5), "evaluation.bootstraps", "'bootstrap'"),
        (lambda d: d["measurement"].update(batches=5), "measurement.batches", "'batch'"),
        (lambda d: d["candidates"][0].update(serach={}), "candidates.0.serach", "'search'"),
        (lambda d: d["candidates"][1].update(temprature=1), "candidates.1.temprature",
         "'temperature'"),
        (lambda d: d["candidates"][0]["params"].update(c=2), "candidates.0.params.c", "'C'"),
        (lambda d: d["candidates"][0]["search"].update(trails=3), "candidates.0.search.trails",
         "'trials'"),
        (lambda d: d["candidates"][0]["search"]["space"].update(max_itr=[5]),
         "candidates.0.search.space.max_itr", "'max_iter'"),
        (lambda d: d["candidates"][0]["search"]["space"]["C"].update(lg=True),
         "candidates.0.search.space.C.lg", "'log'"),
    ],
)  # fmt: skip
def test_a_misspelled_key_is_refused_at_every_level_with_its_path_and_the_known_keys(
    edit, field, known
):
    parse_config(_valid())  # the unedited config is fine
    doc = _valid()
    edit(doc)
    with pytest.raises(InvalidInputError) as err:
        parse_config(doc)
    assert err.value.field == field
    assert field.rsplit(".", 1)[-1] in err.value.message
    assert f"did you mean {known}?" in err.value.fix and "known: " in err.value.fix


def test_a_constraint_of_the_other_task_is_refused_once_the_data_says_the_task(tmp_path, churn_csv):
    from stoa.client import LocalClient
    from stoa.develop.ml.select import run_selection

    doc = _config(str(churn_csv))
    doc["constraints"] = {"min_r2": 0.5}  # a regression metric; churn is classification
    config = parse_config(doc)  # the task is not known until the data is read
    client = LocalClient(home=tmp_path / "home", actor="t")
    with pytest.raises(InvalidInputError) as err:
        run_selection(client, config)
    assert err.value.field == "constraints.min_r2" and "f1_macro" in err.value.fix
    assert client.runs.search() == []
    doc["data"]["task"] = "classification"  # said up front, it is refused up front
    with pytest.raises(InvalidInputError, match="unknown constraint 'min_r2'"):
        parse_config(doc)
    client.close()


def test_the_progress_callback_hears_every_step_of_every_candidate_and_trial(tmp_path, churn_csv):
    from stoa.client import LocalClient
    from stoa.develop.ml.select import STEPS, run_selection

    doc = _config(str(churn_csv))
    doc["candidates"] = [
        {"name": "lr", "kind": "logistic_regression",
         "search": {"trials": 3, "space": {"C": {"low": 0.1, "high": 10.0, "log": True}}}},
        {"name": "xgb", "kind": "xgboost", "params": {"n_estimators": 5}},
    ]  # fmt: skip
    heard: list[tuple[str, int, int]] = []
    client = LocalClient(home=tmp_path / "home", actor="t")
    run_selection(client, parse_config(doc), progress=lambda *event: heard.append(event))
    client.close()
    steps = len(STEPS)
    assert heard == [
        ("lr", 0, steps), ("xgb", 0, steps),  # all shown up front
        ("lr: trials", 0, 3), ("lr: trials", 1, 3), ("lr: trials", 2, 3), ("lr: trials", 3, 3),
        *[("lr", k, steps) for k in range(1, steps + 1)],
        *[("xgb", k, steps) for k in range(1, steps + 1)],
    ]  # fmt: skip


def test_the_registered_winner_predicts_on_a_dataframe(tmp_path, churn_csv):
    """What a user has is the file they trained on: a DataFrame, target column included."""
    from stoa.client import LocalClient
    from stoa.develop.ml.select import numpy_safe, run_selection

    client = LocalClient(home=tmp_path / "home", actor="t")
    doc = _config(str(churn_csv))
    result = numpy_safe(run_selection(client, parse_config(doc), register="churn"))
    model = client.models.load(result["registered"]["ref"])
    frame = pd.read_csv(churn_csv)
    predicted = model.predict(frame)
    assert predicted.shape == (len(frame),) and set(predicted) <= {0, 1}
    proba = model.predict_proba(frame.drop(columns=["churned"]))
    assert proba.shape == (len(frame), 2) and np.allclose(proba.sum(axis=1), 1)
    assert model.predict(frame.iloc[0].to_dict())[0] == predicted[0]
    assert client.models.show(result["registered"]["ref"]).spec["columns"] == [
        "tenure", "charges", "contract"
    ]  # fmt: skip
    client.close()
