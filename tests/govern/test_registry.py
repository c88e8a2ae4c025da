"""The registry on both back-ends: numbering, refs, tags, aliases, archive, lineage."""

import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError, RefusedError
from tests.artifacts import write_safetensors


def _csv(tmp_path: Path, rows: int = 3) -> Path:
    path = tmp_path / f"data{rows}.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(rows)))
    return path


def test_versions_are_numbered_and_refs_resolve(client, skops_file, tmp_path):
    v1 = client.models.register("churn", skops_file, tags={"team": "risk"})
    v2 = client.models.register("churn", write_safetensors(tmp_path / "w"), tags={"team": "growth"})
    assert (v1.version, v2.version) == (1, 2) and v1.created and v2.created
    assert v1.status == "allowed" and v1.flavor == "sklearn" and v1.format == "skops"
    assert client.models.show("churn").version == 2  # bare name: latest
    assert client.models.show("churn@1").tags == {"team": "risk"}
    client.models.set_alias("churn", 1, "champion")
    assert client.models.show("churn@champion").version == 1
    assert client.models.show("churn@1").aliases == ["champion"]
    assert [v.version for v in client.models.versions("churn")] == [1, 2]
    series = client.models.list()
    assert [(s.name, s.latest_version, s.aliases) for s in series] == [
        ("churn", 2, {"champion": 1})
    ]


def test_registering_the_same_bytes_again_is_idempotent(client, skops_file, tmp_path):
    first = client.models.register("churn", skops_file)
    run = client.runs.create("retrain")
    again = client.models.register("churn", skops_file, run_id=run.id, tags={"ignored": "yes"})
    assert (again.version, again.created, again.tags) == (1, False, {})
    assert client.models.show("churn").version == 1
    assert client.models.lineage("churn@1").upstream[0].ref == run.id  # lineage still recorded
    other = client.models.register("other", skops_file)  # another series gets its own version
    assert (other.version, other.created, other.sha256) == (1, True, first.sha256)


def test_unknown_references(client, skops_file):
    client.models.register("churn", skops_file)
    with pytest.raises(NotFoundError, match="no model named 'nope'") as info:
        client.models.show("nope")
    assert info.value.field == "name"
    with pytest.raises(NotFoundError, match="has no version 9") as info:
        client.models.show("churn@9")
    assert info.value.fix == "its versions run from 1 to 1; deleted versions are gone for good"
    with pytest.raises(NotFoundError, match="has no alias 'prod'"):
        client.models.show("churn@prod")
    with pytest.raises(NotFoundError):
        client.prompts.show("churn")  # kinds do not share names


def test_tag_search(client, tmp_path):
    for team, stage in [("risk", "dev"), ("risk", "prod"), ("growth", "prod")]:
        path = write_safetensors(tmp_path / f"{team}-{stage}", len(stage))
        client.models.register(f"m-{team}", path, tags={"team": team, "stage": stage})
    assert {v.name for v in client.models.search({"stage": "prod"})} == {"m-risk", "m-growth"}
    assert [v.ref for v in client.models.search({"team": "risk", "stage": "prod"})] == ["m-risk@2"]
    assert client.models.search({"team": "nobody"}) == []
    assert len(client.models.search({"team": "risk"}, name="m-risk")) == 2
    with pytest.raises(InvalidInputError, match="tag key"):
        client.models.search({"": "x"})


def test_alias_moves_are_recorded(client, skops_file, tmp_path):
    client.models.register("m", skops_file)
    client.models.register("m", write_safetensors(tmp_path / "w"))
    client.models.set_alias("m", 1, "champion")
    moved = client.models.set_alias("m", 2, "champion")
    assert moved.version == 2 and moved.updated_by == "tester"
    client.models.delete_alias("m", "champion")
    history = client.models.alias_history("m")
    assert [(h.detail["from"], h.detail["to"]) for h in history] == [(None, 1), (1, 2), (2, None)]
    assert all(h.actor == "tester" and h.at.tzinfo is not None for h in history)
    with pytest.raises(NotFoundError):
        client.models.show("m@champion")


def test_alias_refused_on_blocked_and_bad_alias(client, tmp_path, skops_file):
    from tests.artifacts import malicious_pickle

    bad = tmp_path / "m.pkl"
    bad.write_bytes(malicious_pickle())
    blocked = client.models.register("m", bad)
    assert blocked.status == "blocked"
    with pytest.raises(RefusedError, match="only allowed versions can carry an alias"):
        client.models.set_alias("m", 1, "champion")
    client.models.register("m", skops_file)
    with pytest.raises(InvalidInputError, match="would read as a version"):
        client.models.set_alias("m", 2, "7")
    with pytest.raises(NotFoundError):
        client.models.set_alias("m", 5, "champion")


def test_archive(client, skops_file):
    client.models.register("m", skops_file)
    client.models.set_alias("m", 1, "champion")
    with pytest.raises(ConflictError, match="alias"):
        client.models.archive("m@1")
    client.models.delete_alias("m", "champion")
    archived = client.models.archive("m@1")
    assert archived.status == "archived"
    assert client.models.show("m@1").status == "archived"  # still readable
    with pytest.raises(RefusedError, match="archived"):
        client.models.load("m@1")


def test_lineage_walks_both_ways(client, tmp_path, sk_model):
    data = client.datasets.register("customers", _csv(tmp_path))
    run = client.runs.create("train-churn", inputs=[data.ref])
    model = client.models.log("churn", sk_model[0], run_id=run.id)
    up = client.models.lineage(model.ref)
    assert [(n.type, n.ref, n.depth) for n in up.upstream] == [
        ("run", run.id, 1),
        ("dataset", "customers@1", 2),
    ]
    down = client.datasets.lineage("customers@1")
    assert [(n.type, n.ref) for n in down.downstream] == [("run", run.id), ("model", "churn@1")]
    assert client.runs.lineage(run.id).downstream[0].ref == "churn@1"
    with pytest.raises(NotFoundError, match="no run"):
        weights = write_safetensors(tmp_path / "w.safetensors")
        client.models.register("churn", weights, run_id="missing")
    with pytest.raises(NotFoundError, match="no dataset named"):
        client.runs.create("r", inputs=["nope@1"])
    # the refused registrations left no version behind
    assert client.models.show("churn").version == 1


def test_bad_names_and_metadata_are_refused_before_anything_is_written(client, skops_file):
    for name in ["../etc", "bad name!", "a/b", "C:x", "x\x00y"]:
        with pytest.raises(InvalidInputError) as info:
            client.models.register(name, skops_file)
        assert info.value.field == "name"
    with pytest.raises(InvalidInputError, match="SPDX"):
        client.models.register("m", skops_file, license="not a licence!")
    with pytest.raises(InvalidInputError, match="unknown flavor"):
        client.models.register("m", skops_file, flavor="pytorch")
    with pytest.raises(InvalidInputError, match="is a sklearn save, not xgboost"):
        client.models.register("m", skops_file, flavor="xgboost")
    assert client.models.list() == []


def _register_many(args: tuple[str, str, str, int, int]) -> list[int]:
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    home, db_url, folder, count, worker_no = args
    client = LocalClient(settings=Settings(home=Path(home), database_url=db_url), actor="w")
    worker = Path(tempfile.mkdtemp(dir=folder))
    try:
        return [
            client.models.register(
                "contended", write_safetensors(worker / str(i), worker_no * 100 + i)
            ).version
            for i in range(count)
        ]
    finally:
        client.close()


def test_eight_concurrent_writers_get_gap_free_unique_versions(settings, tmp_path):
    from stoa.client import LocalClient

    LocalClient(settings=settings).close()  # migrate once, like `stoa init`
    jobs = [
        (str(settings.home), settings.resolved_database_url, str(tmp_path), 6, k) for k in range(8)
    ]
    with ProcessPoolExecutor(8) as pool:
        results = list(pool.map(_register_many, jobs))
    numbers = sorted(n for batch in results for n in batch)
    assert numbers == list(range(1, 49))
    for batch in results:
        assert batch == sorted(batch)


def test_lineage_walks_are_bounded(client, tmp_path, monkeypatch):
    from stoa.govern import registry

    data = client.datasets.register("wide", _csv(tmp_path))
    for i in range(3):
        client.runs.create(f"run-{i}", inputs=[data.ref])
    assert len(client.datasets.lineage(data.ref).downstream) == 3
    monkeypatch.setattr(registry, "MAX_LINEAGE_NODES", 2)
    assert len(client.datasets.lineage(data.ref).downstream) == 2
