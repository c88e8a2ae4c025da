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
    v1 = client.register_model("churn", skops_file, tags={"team": "risk"})
    v2 = client.register_model("churn", write_safetensors(tmp_path / "w"), tags={"team": "growth"})
    assert (v1.version, v2.version) == (1, 2) and v1.created and v2.created
    assert v1.status == "allowed" and v1.flavor == "sklearn" and v1.format == "skops"
    assert client.show("model", "churn").version == 2  # bare name: latest
    assert client.show("model", "churn@1").tags == {"team": "risk"}
    client.set_alias("model", "churn", 1, "champion")
    assert client.show("model", "churn@champion").version == 1
    assert client.show("model", "churn@1").aliases == ["champion"]
    assert [v.version for v in client.versions("model", "churn")] == [1, 2]
    series = client.list("model")
    assert [(s.name, s.latest_version, s.aliases) for s in series] == [
        ("churn", 2, {"champion": 1})
    ]


def test_registering_the_same_bytes_again_is_idempotent(client, skops_file, tmp_path):
    first = client.register_model("churn", skops_file)
    run = client.create_run("retrain")
    again = client.register_model("churn", skops_file, run_id=run.id, tags={"ignored": "yes"})
    assert (again.version, again.created, again.tags) == (1, False, {})
    assert client.show("model", "churn").version == 1
    assert client.lineage("model", "churn@1").upstream[0].ref == run.id  # lineage still recorded
    other = client.register_model("other", skops_file)  # another series gets its own version
    assert (other.version, other.created, other.sha256) == (1, True, first.sha256)


def test_unknown_references(client, skops_file):
    client.register_model("churn", skops_file)
    with pytest.raises(NotFoundError, match="no model named 'nope'") as info:
        client.show("model", "nope")
    assert info.value.field == "name"
    with pytest.raises(NotFoundError, match="has no version 9") as info:
        client.show("model", "churn@9")
    assert info.value.fix == "its versions run from 1 to 1"
    with pytest.raises(NotFoundError, match="has no alias 'prod'"):
        client.show("model", "churn@prod")
    with pytest.raises(NotFoundError):
        client.show("prompt", "churn")  # kinds do not share names


def test_tag_search(client, tmp_path):
    for team, stage in [("risk", "dev"), ("risk", "prod"), ("growth", "prod")]:
        path = write_safetensors(tmp_path / f"{team}-{stage}", len(stage))
        client.register_model(f"m-{team}", path, tags={"team": team, "stage": stage})
    assert {v.name for v in client.search("model", {"stage": "prod"})} == {"m-risk", "m-growth"}
    assert [v.ref for v in client.search("model", {"team": "risk", "stage": "prod"})] == [
        "m-risk@2"
    ]
    assert client.search("model", {"team": "nobody"}) == []
    assert len(client.search("model", {"team": "risk"}, name="m-risk")) == 2
    with pytest.raises(InvalidInputError, match="tag key"):
        client.search("model", {"": "x"})


def test_alias_moves_are_recorded(client, skops_file, tmp_path):
    client.register_model("m", skops_file)
    client.register_model("m", write_safetensors(tmp_path / "w"))
    client.set_alias("model", "m", 1, "champion")
    moved = client.set_alias("model", "m", 2, "champion")
    assert moved.version == 2 and moved.updated_by == "tester"
    client.delete_alias("model", "m", "champion")
    history = client.alias_history("model", "m")
    assert [(h.detail["from"], h.detail["to"]) for h in history] == [(None, 1), (1, 2), (2, None)]
    assert all(h.actor == "tester" and h.at.tzinfo is not None for h in history)
    with pytest.raises(NotFoundError):
        client.show("model", "m@champion")


def test_alias_refused_on_blocked_and_bad_alias(client, tmp_path, skops_file):
    from tests.artifacts import malicious_pickle

    bad = tmp_path / "m.pkl"
    bad.write_bytes(malicious_pickle())
    blocked = client.register_model("m", bad)
    assert blocked.status == "blocked"
    with pytest.raises(RefusedError, match="only allowed versions can carry an alias"):
        client.set_alias("model", "m", 1, "champion")
    client.register_model("m", skops_file)
    with pytest.raises(InvalidInputError, match="would read as a version"):
        client.set_alias("model", "m", 2, "7")
    with pytest.raises(NotFoundError):
        client.set_alias("model", "m", 5, "champion")


def test_archive(client, skops_file):
    client.register_model("m", skops_file)
    client.set_alias("model", "m", 1, "champion")
    with pytest.raises(ConflictError, match="alias"):
        client.archive("model", "m@1")
    client.delete_alias("model", "m", "champion")
    archived = client.archive("model", "m@1")
    assert archived.status == "archived"
    assert client.show("model", "m@1").status == "archived"  # still readable
    with pytest.raises(RefusedError, match="archived"):
        client.load_model("m@1")


def test_lineage_walks_both_ways(client, tmp_path, sk_model):
    data = client.register_dataset("customers", _csv(tmp_path))
    run = client.create_run("train-churn", inputs=[data.ref])
    model = client.log_model("churn", sk_model[0], run_id=run.id)
    up = client.lineage("model", model.ref)
    assert [(n.type, n.ref, n.depth) for n in up.upstream] == [
        ("run", run.id, 1),
        ("dataset", "customers@1", 2),
    ]
    down = client.lineage("dataset", "customers@1")
    assert [(n.type, n.ref) for n in down.downstream] == [("run", run.id), ("model", "churn@1")]
    assert client.lineage("run", run.id).downstream[0].ref == "churn@1"
    with pytest.raises(NotFoundError, match="no run"):
        client.register_model("churn", Path(__file__), run_id="missing")
    with pytest.raises(NotFoundError, match="no dataset named"):
        client.create_run("r", inputs=["nope@1"])
    # the refused registrations left no version behind
    assert client.show("model", "churn").version == 1


def test_bad_names_and_metadata_are_refused_before_anything_is_written(client, skops_file):
    for name in ["../etc", "bad name!", "a/b", "C:x", "x\x00y"]:
        with pytest.raises(InvalidInputError) as info:
            client.register_model(name, skops_file)
        assert info.value.field == "name"
    with pytest.raises(InvalidInputError, match="SPDX"):
        client.register_model("m", skops_file, license="not a licence!")
    with pytest.raises(InvalidInputError, match="unknown flavor"):
        client.register_model("m", skops_file, flavor="pytorch")
    with pytest.raises(InvalidInputError, match="is a sklearn save, not xgboost"):
        client.register_model("m", skops_file, flavor="xgboost")
    assert client.list("model") == []


def _register_many(args: tuple[str, str, str, int, int]) -> list[int]:
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    home, db_url, folder, count, worker_no = args
    client = LocalClient(settings=Settings(home=Path(home), database_url=db_url), actor="w")
    worker = Path(tempfile.mkdtemp(dir=folder))
    try:
        return [
            client.register_model(
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

    data = client.register_dataset("wide", _csv(tmp_path))
    for i in range(3):
        client.create_run(f"run-{i}", inputs=[data.ref])
    assert len(client.lineage("dataset", data.ref).downstream) == 3
    monkeypatch.setattr(registry, "MAX_LINEAGE_NODES", 2)
    assert len(client.lineage("dataset", data.ref).downstream) == 2
