"""Batch scoring, knowledge-base ingest and solution evaluation on a local Ray cluster
give what the local path gives: the same Parquet rows, the same chunk and vector counts
(and a re-ingest that embeds nothing), the same evaluation report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stoa.client import Client, LocalClient
from stoa.core.errors import InvalidInputError
from stoa.core.settings import Settings
from tests.artifacts import SUPPORT_SPEC, ticket_classifier
from tests.develop.test_batch import SPEC, VARYING

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(ray_cluster, tmp_path):
    with LocalClient(settings=Settings(home=tmp_path / "home"), actor="tester") as local:
        yield local


def test_batch_score_on_ray_writes_the_local_file(client, tmp_path):
    """10,000 rows in 7 partitions over 2 actors: every row, in table order, as locally;
    the error rows (a null ``n``) included."""
    client.solutions.register(SPEC)
    rng = np.random.default_rng(3)
    n = pd.array(rng.integers(0, 10, 10_000), dtype="Int64")
    n[::997] = pd.NA
    text = [("a refund please" if i % 1000 == 3 else f"t{i}") for i in range(10_000)]
    pd.DataFrame({"text": text, "n": n}).to_parquet(tmp_path / "rows.parquet")

    local = client.batch.score("tiny", str(tmp_path / "rows.parquet"), tmp_path / "local.parquet",
                               partition_rows=1500)  # fmt: skip
    on_ray = client.batch.score("tiny", str(tmp_path / "rows.parquet"), tmp_path / "ray.parquet",
                                partition_rows=1500, ray=True, workers=2)  # fmt: skip
    assert on_ray["engine"] == "ray" and local["engine"] == "local"
    assert on_ray["by_status"] == local["by_status"] == {"error": 11, "ok": 9979, "rejected": 10}
    assert on_ray["partitions"] == 7 and on_ray["rows"] == 10_000
    mine = pd.read_parquet(tmp_path / "local.parquet").drop(columns=VARYING)
    theirs = pd.read_parquet(tmp_path / "ray.parquet").drop(columns=VARYING)
    pd.testing.assert_frame_equal(theirs, mine)
    assert list(theirs["row"]) == list(range(10_000))
    assert "input.n" in json.loads(theirs.loc[0, "error"])["message"]  # row 0 has no n


def test_kb_ingest_on_ray_counts_as_local_and_reingest_embeds_nothing(client, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("serving.md", "batch.md", "storage.md", "alerts.md", "review.md"):
        shutil.copy(REPO / "docs" / name, docs / name)
    client.kbs.create("here")
    client.kbs.create("there")
    here = client.kbs.ingest("here", [docs])
    there = client.kbs.ingest("there", [docs], ray=True)
    assert there["documents"] == here["documents"] and there["documents"]["added"] == 5
    assert there["chunks"] == here["chunks"] and here["chunks"]["embedded"] > 50
    shown = {k["name"]: k for k in client.kbs.list()}
    assert shown["there"]["chunks"] == shown["here"]["chunks"]
    question = "how long does a prediction wait in memory before it is written?"
    found = [client.kbs.query(name, question, k=5, mode="vector") for name in ("here", "there")]
    assert [r["text"] for r in found[0]] == [r["text"] for r in found[1]]
    # The same vectors up to float32 rounding: a shard pads its texts to other lengths.
    scores = [[r["score"] for r in hits] for hits in found]
    assert np.allclose(scores[0], scores[1], atol=1e-3) and scores[0] != [0.0] * 5

    again = client.kbs.ingest("there", [docs], ray=True)
    assert again["chunks"] == {"embedded": 0, "reused": 0}
    assert again["documents"]["unchanged"] == 5 and again["version"] == there["version"]
    (docs / "extra.md").write_text("# Extra\n\n" + (REPO / "docs" / "webhooks.md").read_text())
    grown = client.kbs.ingest("there", [docs], ray=True)
    assert grown["documents"]["added"] == 1 and grown["chunks"]["embedded"] > 0


def test_solution_eval_on_ray_reports_as_local(client):
    client.models.log("tickets", ticket_classifier())
    client.models.set_alias("tickets", 1, "champion")
    client.solutions.register(SUPPORT_SPEC)
    texts = ["refund my order", "reset my password", "hi", "send me your password", "x" * 70]
    rows = "\n".join(
        json.dumps({"input": {"text": t}, "reference": "Routing your billing question."})
        for t in texts * 24
    )
    local = client.solutions.evaluate("support", rows, judges=["embedding"])
    on_ray = client.solutions.evaluate("support", rows, judges=["embedding"], ray=True)
    assert on_ray["scores"] == local["scores"] and on_ray["statuses"] == local["statuses"]
    assert on_ray["statuses"] == {"ok": 72, "rejected": 24, "handoff": 24}
    assert on_ray["sample"] == local["sample"] == 120 and on_ray["run_id"] != local["run_id"]


def test_ray_work_is_refused_through_a_server_and_without_ray(tmp_path):
    remote = Client(url="http://127.0.0.1:9", token="t")
    for call, args, field, message in (
        (remote.batch.score, ("tiny", "rows.csv", tmp_path / "o.parquet"), "client",
         "batch scoring runs where the data is"),
        (remote.solutions.evaluate, ("tiny", '{"input": "x"}'), "ray", "not through a Stoa"),
        (remote.kbs.ingest, ("docs", [tmp_path]), "ray", "not through a Stoa server"),
    ):  # fmt: skip
        with pytest.raises(InvalidInputError) as err:
            call(*args, ray=True)
        assert err.value.field == field and message in str(err.value)


def test_a_pool_worker_that_dies_is_restarted_and_its_work_retried(ray_cluster, tmp_path):
    """A lost node or an out-of-memory kill ends a pool's actor mid-call: the call runs
    again on a new one, and the pool's caller never sees it."""
    import ray

    from stoa.serve.ray.data import pool_actor, worker_deaths

    died = tmp_path / "died"

    class Fragile:
        def double(self, value: int) -> int:
            if not died.exists():  # the first call only: the process ends mid-call
                died.touch()
                os._exit(1)
            return 2 * value

    fragile = pool_actor(Fragile).options(num_cpus=0).remote()
    with worker_deaths("doubling"):
        assert ray.get(fragile.double.remote(21), timeout=120) == 42
    assert died.exists()
    ray.kill(fragile)


def test_a_call_that_kills_every_worker_fails_with_what_to_look_at(ray_cluster):
    import ray

    from stoa.core.errors import ConfigurationError
    from stoa.serve.ray.data import RESTARTS, pool_actor, worker_deaths

    class Deadly:
        def run(self) -> None:
            os._exit(1)

    deadly = pool_actor(Deadly).options(num_cpus=0).remote()
    with pytest.raises(ConfigurationError) as caught, worker_deaths("scoring"):
        ray.get(deadly.run.remote(), timeout=300)
    error = caught.value
    assert error.field == "ray"
    assert f"scoring on Ray failed: a worker died {RESTARTS + 1} times" in str(error)
    assert "ray logs" in error.fix
