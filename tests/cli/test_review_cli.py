"""`stoa review` as users run it, and `client.reviews` over HTTP with token identity."""

from __future__ import annotations

import json
import subprocess

import pytest

from stoa.client import LocalClient
from stoa.core.settings import Settings
from tests.cli.test_cli import STOA, clean_env, ok_json, one_line_error
from tests.measure.review_rows import add_endpoint, add_feedback, add_predictions


@pytest.fixture
def stoa(tmp_path):
    """`stoa ARGS` in a subprocess on a home in tmp_path (as tests/cli/test_cli.py)."""
    env = clean_env(STOA_HOME=str(tmp_path / "home"))

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [STOA, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        return result

    return run


def test_review_story(stoa, tmp_path) -> None:
    with LocalClient(settings=Settings(home=tmp_path / "home")) as client:
        db = client.stores.db
        add_endpoint(db)
        ids = add_predictions(db, [{} for _ in range(3)])
        add_feedback(db, [(pid, "judge.correctness", 1.0, "judge") for pid in ids])
    spec = tmp_path / "spec.yaml"
    spec.write_text("rules:\n  - random: 1.0\nlabels: [correct, partially, wrong]\n")
    made = ok_json(stoa("review", "queues", "create", "q", "-e", "support", "--spec", str(spec),
                        "--json"))  # fmt: skip
    assert made["spec"]["criterion"] == "correctness"
    assert "q" in stoa("review", "queues", "list").stdout
    item = ok_json(stoa("review", "next", "q", "--reviewer", "ann", "--json"))
    assert item["prediction_id"] == ids[0] and item["claimed_by"] == "ann"
    shown = stoa("review", "next", "q", "--reviewer", "ann")
    assert shown.returncode == 0 and f"stoa review label {item['id']}" in shown.stdout
    one_line_error(stoa("review", "label", str(item["id"]), "great", "--reviewer", "ann"), 2,
                   "unknown label 'great'", "correct, partially, wrong")  # fmt: skip
    one_line_error(stoa("review", "label", str(item["id"]), "wrong", "--reviewer", "bob"), 1,
                   "claimed by ann")  # fmt: skip
    done = ok_json(stoa("review", "label", str(item["id"]), "correct", "--correction", "fine",
                        "--reviewer", "ann", "--json"))  # fmt: skip
    assert done["label"] == "correct"
    one_line_error(stoa("review", "stats", "nope"), 2, "no review queue")
    stats = ok_json(stoa("review", "stats", "q", "--json"))
    assert (stats["done"], stats["by_label"]["correct"]) == (1, 1)
    report = ok_json(stoa("review", "agreement", "support", "--json"))
    assert report["n"] == 1 and not report["verdict"]["replace"]
    assert "too few items" in stoa("review", "agreement", "support").stdout
    one_line_error(stoa("review", "queues", "create", "r", "-e", "support", "--spec",
                        "{rules: [{random: 2}]}"), 2, "spec.rules[0].random")  # fmt: skip


def test_over_http_the_token_is_the_reviewer(both) -> None:
    local, remote, _http = both
    add_endpoint(local.stores.db)
    ids = add_predictions(local.stores.db, [{}, {}])
    remote.reviews.create_queue("q", "support", {"rules": [{"random": 1.0}]})
    item = remote.reviews.next("q", reviewer="ann")
    assert item["prediction_id"] == ids[0] and item["claimed_by"] == "ann"  # open server
    labelled = remote.reviews.label(item["id"], "partially", reviewer="ann")
    assert labelled["status"] == "done"
    assert remote.reviews.stats("q")["by_label"]["partially"] == 1
    assert json.dumps(remote.reviews.agreement("support", min_items=1)["confusion"])
    # a token's name is the reviewer, whatever the caller says
    held = local.acting_as("token:rev").reviews.next("q", reviewer="ann")
    assert held["prediction_id"] == ids[1] and held["claimed_by"] == "token:rev"
