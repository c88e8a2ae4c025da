"""``client.endpoints`` and ``client.predictions`` in process and over HTTP, and the CLI
(``stoa endpoints …``, ``stoa predictions …``, ``stoa feedback``)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from typer.testing import CliRunner

from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from tests.artifacts import SUPPORT_SPEC, ticket_classifier
from tests.cli.test_cli import STOA, clean_env


@pytest.fixture(scope="module")
def classifier():
    return ticket_classifier()


@pytest.fixture
def stores(both, classifier):
    local, remote, http = both
    local.models.log("tickets", classifier)
    local.models.set_alias("tickets", 1, "champion")
    local.solutions.register(SUPPORT_SPEC)
    return local, remote, http.app.state.client


def test_control_plane_on_both_backends(client, classifier):
    client.models.log("tickets", classifier)
    client.models.set_alias("tickets", 1, "champion")
    made = client.endpoints.create(
        "tk", ["a=model:tickets@champion:90", "b=model:tickets@1:10"], options={"timeout_s": 5}
    )
    assert made.version == 1 and made.options["timeout_s"] == 5.0
    assert [(v.name, v.target, v.requested, v.share) for v in made.variants] == [
        ("a", "model:tickets@1", "model:tickets@champion", 0.9),
        ("b", "model:tickets@1", "model:tickets@1", 0.1),
    ]
    moved = client.endpoints.set_traffic("tk", weights={"a": 80, "b": 20}, note="canary")
    assert moved.version == 2 and [v.share for v in moved.variants] == [0.8, 0.2]
    assert [c.note for c in client.endpoints.show("tk").history] == ["canary", "created"]
    with pytest.raises(ConflictError, match="exists"):
        client.endpoints.create("tk", ["a=model:tickets@1:1"])
    with pytest.raises(InvalidInputError, match="no variant named 'c'"):
        client.endpoints.set_traffic("tk", weights={"c": 1})
    with pytest.raises(InvalidInputError, match="that is the current configuration"):
        client.endpoints.set_traffic("tk", weights={"a": 80})
    with pytest.raises(InvalidInputError, match="every live variant has weight 0"):
        client.endpoints.set_traffic("tk", weights={"a": 0, "b": 0})
    with pytest.raises(InvalidInputError, match="unknown option"):
        client.endpoints.set_traffic("tk", options={"speed": 1})
    with pytest.raises(NotFoundError):
        client.endpoints.create("nm", ["a=model:nope@1:1"])
    with pytest.raises(InvalidInputError, match="no weight or 'shadow'"):
        client.endpoints.create("x", ["a=support@1"])
    assert client.endpoints.archive("tk").archived is True
    assert client.endpoints.list() == []
    assert [e.name for e in client.endpoints.list(archived=True)] == ["tk"]
    with pytest.raises(ConflictError, match="archived"):
        client.endpoints.set_traffic("tk", weights={"a": 50})


@pytest.mark.parametrize("side", ["local", "http"])
def test_predict_feedback_and_the_logbook_through_the_client(stores, side, tmp_path):
    local, remote, server = stores
    client = local if side == "local" else remote
    client.endpoints.create("sup", ["a=support@1:50", "b=support@1:50", "s=support@1:shadow"])
    out = client.endpoints.predict("sup", {"text": "charged twice"}, unit_id="u1")
    assert out["output"]["text"] == "Routing your billing question."
    assert out["variant"] in ("a", "b")
    assert (
        client.endpoints.predict("sup", "charged twice", unit_id="u1")["variant"] == out["variant"]
    )
    forced = client.endpoints.predict("sup", "charged twice", variant="b")
    assert forced["variant"] == "b"
    fb = client.endpoints.feedback(
        {
            "prediction_id": out["prediction_id"],
            "kind": "rating",
            "value": 4,
            "idempotency_key": "k",
        }
    )
    assert fb["accepted"] == 1
    again = client.endpoints.feedback(
        [
            {
                "prediction_id": out["prediction_id"],
                "kind": "rating",
                "value": 4,
                "idempotency_key": "k",
            }
        ]
    )
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    with pytest.raises(InvalidInputError, match="a thumb takes"):
        client.endpoints.feedback(
            {"prediction_id": out["prediction_id"], "kind": "thumb", "value": 3}
        )
    with pytest.raises(NotFoundError, match="does not exist"):
        client.endpoints.predict("nope", "x")
    serving = (local if side == "local" else server).stores.serving  # whoever predicted
    serving.plane.shadow_pool.submit(lambda: None).result(10)
    serving.logbook.flush()

    shown = client.predictions.show(out["prediction_id"])
    assert shown["feedback"][0]["value"] == 4 and shown["unit_id"] == "u1"
    rows = client.predictions.list(endpoint="sup", mode="live")
    assert out["prediction_id"] in [r["id"] for r in rows]
    assert client.predictions.list(endpoint="sup", search="billing", limit=1)
    summary = {(r["variant"], r["mode"]): r for r in client.predictions.summary("sup")}
    assert sum(r["predictions"] for k, r in summary.items() if k[1] == "live") == 3
    assert client.predictions.series("sup", bucket_s=60)
    path = tmp_path / f"{side}.jsonl"
    assert client.predictions.export(path, endpoint="sup", mode="live") == 3
    assert len(path.read_text().splitlines()) == 3
    with pytest.raises(InvalidInputError, match="limit must be between 1 and 1000"):
        client.predictions.list(limit=0)


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, classifier, monkeypatch):
    """Invoke the CLI in process with a home of its own; the home has the model."""
    from stoa.cli.main import app
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    home = tmp_path / "home"
    local = LocalClient(settings=Settings(home=home))
    local.models.log("tickets", classifier)
    local.solutions.register(SUPPORT_SPEC.replace("tickets@champion", "tickets@1"))
    local.close()
    for key in [k for k in os.environ if k.startswith("STOA_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STOA_HOME", str(home))
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=True)

    return run


def test_cli_endpoints_and_predictions(cli, tmp_path):
    made = cli("endpoints", "create", "sup", "--variant", "a=support@1:90", "--variant",
               "b=support@1:10", "--option", "timeout_s=5", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["options"]["timeout_s"] == 5.0
    listed = cli("endpoints", "list")
    assert listed.exit_code == 0 and "sup" in listed.stdout and "a 90%" in listed.stdout
    moved = cli("endpoints", "set-traffic", "sup", "a=80", "b=20", "--yes", "--json")
    assert moved.exit_code == 0 and json.loads(moved.stdout)["version"] == 2, moved.output
    shown = cli("endpoints", "show", "sup")
    assert shown.exit_code == 0 and "v2" in shown.stdout and "history" in shown.stdout
    bad = cli("endpoints", "set-traffic", "sup", "a=lots", "--yes")
    assert isinstance(bad.exception, InvalidInputError) and "is not VARIANT=WEIGHT" in str(
        bad.exception
    )
    missing = cli("endpoints", "create", "x")
    assert isinstance(missing.exception, InvalidInputError)
    assert "give at least one --variant" in str(missing.exception)

    pred = cli("endpoints", "predict", "sup", "--input", '{"text": "charged twice"}', "--unit",
               "u1", "--json")  # fmt: skip
    assert pred.exit_code == 0, pred.output
    pid = json.loads(pred.stdout)["prediction_id"]
    fb = cli("feedback", pid, "thumb", "true", "--key", "k1", "--json")
    assert fb.exit_code == 0 and json.loads(fb.stdout)["accepted"] == 1, fb.output
    dup = cli("feedback", pid, "thumb", "true", "--key", "k1")
    assert dup.exit_code == 0 and "already recorded" in dup.stdout
    wrong = cli("feedback", pid, "rating", '"great"')
    assert isinstance(wrong.exception, InvalidInputError)
    assert "a rating takes a finite number" in str(wrong.exception)

    archived = cli("endpoints", "archive", "sup")
    assert archived.exit_code == 0 and "archived endpoint sup" in archived.stdout


def test_cli_predict_logs_the_prediction_before_the_process_exits(tmp_path, classifier):
    """A real `stoa` process: the prediction it printed must be in the logbook once it
    has exited (the CLI's own logbook is flushed on the way out)."""
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    home = tmp_path / "home"
    local = LocalClient(settings=Settings(home=home))
    local.models.log("tickets", classifier)
    local.endpoints.create("tk", ["a=model:tickets@1:100"])
    local.close()
    env = clean_env(STOA_HOME=str(home))

    def stoa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([STOA, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    pred = stoa("endpoints", "predict", "tk", "--input", "charged twice", "--json")
    assert pred.returncode == 0, pred.stderr
    pid = json.loads(pred.stdout)["prediction_id"]
    shown = stoa("predictions", "show", pid, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["output"] == {"prediction": "billing"}
    listed = stoa("predictions", "list", "--endpoint", "tk", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [pid]
    summary = stoa("predictions", "summary", "tk")
    assert summary.returncode == 0 and "a" in summary.stdout, summary.stderr
    out = tmp_path / "log.parquet"
    exported = stoa("predictions", "export", str(out), "--endpoint", "tk")
    assert exported.returncode == 0 and out.stat().st_size > 0, exported.stderr
    bad = stoa("feedback", pid, "thumb", "3")
    assert bad.returncode == 2 and "a thumb takes" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
