"""``llm_prompt``: the prompt it sends, its answers kept to the labels, its selection row
on a stated sample, and a save/load round trip on the real local model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stoa.client import LocalClient
from stoa.core.errors import InvalidInputError
from stoa.core.settings import Settings
from stoa.develop.llm.providers import forget_loaded, load_provider
from stoa.develop.ml.candidates import base
from tests.develop.llm.openai_server import Step, scripted_openai_app
from tests.servers import serve_in_thread

WORDS = {
    "billing": ["invoice", "charged twice", "payment failed", "receipt", "card declined"],
    "shipping": ["parcel late", "tracking number", "courier lost", "delivery date", "box"],
    "login": ["password reset", "cannot sign in", "two-factor code", "locked out", "login"],
}
TEXTS = [f"{w} please help {i}" for i in range(6) for words in WORDS.values() for w in words]
LABELS = np.array([label for _ in range(6) for label, words in WORDS.items() for _ in words])


@pytest.fixture(scope="module")
def server():
    app = scripted_openai_app([Step(reply="shipping")])
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture
def client(server, tmp_path):
    providers = {"scripted": {"kind": "openai", "url": f"{server[1]}/v1", "max_retries": 0,
                              "prices": {"tiny": {"prompt": 1.0, "completion": 2.0}}}}  # fmt: skip
    forget_loaded()
    c = LocalClient(settings=Settings(home=tmp_path / "home", providers=providers), actor="t")
    yield c
    c.close()
    forget_loaded()


def bound(client: LocalClient, **params) -> object:
    candidate = base.make(
        "llm_prompt", "classification", {"provider": "scripted", "model": "tiny", **params}
    )
    stores = client.stores
    candidate.bind(lambda spec: load_provider(spec, registry=stores.registry,
                                              settings=stores.settings))  # fmt: skip
    return candidate


def test_the_prompt_holds_the_labels_and_examples_from_the_training_split(client, server):
    app = server[0]
    app.state.script = [Step(reply="shipping")]
    described = {"billing": "money", "shipping": "parcels", "login": "access"}
    candidate = bound(client, shots=1, shot_selection="similar", labels=described)
    candidate.fit(TEXTS, LABELS)
    assert list(candidate.predict(["my parcel late again"])) == ["shipping"]
    sent = app.state.requests[-1]["body"]["messages"]
    assert sent[0]["role"] == "system"
    assert "- billing: money" in sent[0]["content"] and "- login: access" in sent[0]["content"]
    shots = sent[1:-1]
    assert [m["role"] for m in shots] == ["user", "assistant"] * 3  # one example per label
    assert {m["content"] for m in shots[1::2]} == {"billing", "shipping", "login"}
    assert all(m["content"] in TEXTS for m in shots[0::2])
    # the nearest example comes last, next to the input
    assert shots[-2]["content"].startswith("parcel late") and shots[-1]["content"] == "shipping"
    assert sent[-1] == {"role": "user", "content": "my parcel late again"}


def test_fixed_shots_are_the_same_for_every_input(client, server):
    app = server[0]
    candidate = bound(client, shots=2, shot_selection="fixed")
    candidate.fit(TEXTS, LABELS)
    candidate.predict(["first text", "an entirely different one"])
    first, second = (r["body"]["messages"][1:-1] for r in app.state.requests[-2:])
    assert first == second and len(first) == 2 * 2 * 3


def test_an_answer_outside_the_labels_is_counted_and_scored_as_the_majority(client, server):
    app = server[0]
    app.state.script = [Step(reply="I think it is about the weather")]
    candidate = bound(client, shots=0)
    labels = np.array(["billing"] * 5 + ["login"] * 3)
    candidate.fit(TEXTS[:8], labels)
    proba = candidate.predict_proba(["anything", "else"])
    assert proba.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert candidate.extras()["invalid_answers"] == 2
    app.state.script = [Step(reply="Login.")]  # snapped to the label
    assert list(candidate.predict(["x"])) == ["login"]
    assert candidate.extras()["invalid_answers"] == 2 and candidate.extras()["answers"] == 3


def test_an_unbound_candidate_says_how_to_bind_it(client, tmp_path):
    candidate = bound(client, shots=1, shot_selection="fixed")
    candidate.fit(TEXTS, LABELS)
    loaded = base.load(candidate.save(tmp_path / "saved"), candidate.spec())
    with pytest.raises(InvalidInputError, match="not bound to a provider") as caught:
        loaded.predict(["my invoice"])
    assert "bind" in caught.value.fix
    assert loaded.pool_texts_ == candidate.pool_texts_


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"shots": 99}, "params.shots", "shots must be an integer from 0 to 8"),
        ({"shot_selection": "best"}, "params.shot_selection", "is not known"),
        ({"sample": 0}, "params.sample", "sample must be a positive integer"),
        ({"labels": {"a": ""}}, "params.labels", "labels maps each label"),
        ({"temperature": 1}, "params.temperature", "unknown param"),
    ],
)
def test_bad_params_name_the_field(params, field, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        base.make("llm_prompt", "classification", params)
    assert caught.value.field == field


def test_a_selection_row_is_measured_on_a_stated_sample(client, server, tmp_path):
    from rich.console import Console

    from stoa.cli.select import leaderboard_table
    from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

    server[0].state.script = [Step(reply="billing")]
    path = tmp_path / "t.csv"
    pd.DataFrame({"body": TEXTS, "intent": LABELS}).to_csv(path, index=False)
    config = parse_config({
        "data": {"path": str(path), "target": "intent", "text": "body",
                 "split": {"test_size": 0.5, "seed": 1}},
        "primary_metric": "f1_macro",
        "evaluation": {"bootstrap": 20},
        "candidates": [
            {"name": "tfidf", "kind": "tfidf_linear"},
            {"name": "llm", "kind": "llm_prompt",
             "params": {"provider": "scripted", "model": "tiny", "sample": 12,
                        "latency_samples": 3}},
            {"name": "absent", "kind": "llm_prompt", "params": {"model": "nothing@champion"}},
        ],
    })  # fmt: skip
    result = run_selection(client, config)
    rows = {r["name"]: r for r in result["leaderboard"]}
    llm = rows["llm"]
    assert "skipped" not in llm and "failed" not in llm
    assert llm["sample"] == {"rows": 12, "of": 45, "latency_calls": 3}
    assert llm["metrics"]["f1_macro"] < rows["tfidf"]["metrics"]["f1_macro"]
    assert llm["interval"]["low"] <= llm["metrics"]["f1_macro"] <= llm["interval"]["high"]
    assert llm["latency_ms"]["p95"] > 0 and llm["size_mb"] > 0
    assert llm["cost_per_1k"] > 0 and llm["invalid_answers"] == 0 and llm["answers"] == 12
    assert "sample" not in rows["tfidf"]
    assert "could not be loaded" in rows["absent"]["skipped"]
    assert "nothing" in rows["absent"]["skipped"]
    console = Console(width=80, record=True)
    console.print(leaderboard_table(numpy_safe(result)))
    text = console.export_text()
    assert "* llm: quality on 12 of 45 test rows (seeded sample), latency from 3 calls" in text
    assert f"{llm['metrics']['f1_macro']:.4f}*" in text


# -- the real local model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    from stoa.develop.llm.local import packaged_gguf

    c = LocalClient(home=tmp_path_factory.mktemp("llm") / "home", actor="t")
    info = c.models.register("smollm2", packaged_gguf(), license="Apache-2.0")
    c.models.set_alias("smollm2", info.version, "champion")
    stores = c.stores
    yield lambda spec: load_provider(spec, registry=stores.registry, settings=stores.settings)
    c.close()


@pytest.mark.slow
def test_the_local_model_answers_within_the_labels_and_survives_save_load(local, tmp_path):
    candidate = base.make("llm_prompt", "classification",
                          {"shots": 1, "shot_selection": "fixed"}, seed=2)  # fmt: skip
    candidate.bind(local)
    candidate.fit(TEXTS, LABELS)
    rows = ["I was charged twice on my invoice", "I cannot sign in, password reset fails"]
    pred, proba = candidate.predict_with_proba(rows)
    assert set(pred) <= set(WORDS) and proba.shape == (2, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert candidate.spec()["model_ref"] == "smollm2@1"
    loaded = base.load(candidate.save(tmp_path / "saved"), candidate.spec())
    loaded.bind(local)
    again, again_proba = loaded.predict_with_proba(rows)
    assert list(again) == list(pred) and np.allclose(again_proba, proba, atol=1e-6)


def test_the_solution_runner_binds_a_loaded_candidate_to_its_stores(client, server, tmp_path):
    from stoa.develop.solution.runner import Environment

    server[0].state.script = [Step(reply="login")]
    candidate = bound(client, shots=1, shot_selection="fixed")
    candidate.fit(TEXTS, LABELS)
    loaded = base.load(candidate.save(tmp_path / "saved"), candidate.spec())
    stores = client.stores
    env = Environment(stores.registry, None, stores.settings)
    assert env._bound(loaded) is loaded
    assert list(loaded.predict(["I am locked out"])) == ["login"]
    assert server[0].state.requests[-1]["body"]["messages"][-1]["content"] == "I am locked out"
