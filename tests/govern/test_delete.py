"""Hard delete for admins (issue 12, item 11): versions and knowledge bases go for good,
never while an alias points at them, and never taking anything else with them."""

from __future__ import annotations

import pytest

from stoa.core.errors import ConflictError, NotFoundError
from tests.artifacts import write_safetensors


def test_a_version_is_deleted_for_good_but_never_under_an_alias(client, tmp_path) -> None:
    data = client.datasets.register("d", _csv(tmp_path))
    run = client.runs.create("train", [data.ref])
    for value in (1.0, 2.0, 3.0):
        weights = write_safetensors(tmp_path / f"w{value}.safetensors", value)
        client.models.register("m", weights, license="MIT", run_id=run.id)
    client.models.set_alias("m", 2, "champion")
    with pytest.raises(ConflictError, match="carries the alias") as refused:
        client.models.delete("m@2")
    assert refused.value.field == "ref"
    gone = client.models.delete("m@3")
    assert gone.ref == "m@3"
    with pytest.raises(NotFoundError, match="has no version 3"):
        client.models.show("m@3")
    assert client.models.show("m").version == 2  # the newest that is left
    assert [n.ref for n in client.runs.lineage(run.id).downstream] == ["m@1", "m@2"]
    again = client.models.register("m", write_safetensors(tmp_path / "w4.safetensors", 4.0))
    assert again.version == 4  # a number is never given out twice


def test_deleted_bytes_go_at_gc_unless_another_version_shares_them(sqlite_client, tmp_path):
    import os
    import time
    from pathlib import Path

    weights = write_safetensors(tmp_path / "w.safetensors", 9.0)
    shared = sqlite_client.models.register("a", weights, license="MIT")
    sqlite_client.models.register("b", weights, license="MIT")
    alone = sqlite_client.models.register("c", write_safetensors(tmp_path / "c.safetensors", 8.0))
    sqlite_client.models.delete("a@1")
    sqlite_client.models.delete("c@1")
    old = time.time() - 7200
    for path in Path(sqlite_client.stores.blobs.root, "sha256").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    sqlite_client.admin.gc()
    assert sqlite_client.stores.blobs.exists(shared.sha256)  # b@1 still needs it
    assert not sqlite_client.stores.blobs.exists(alone.sha256)


def _csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    return path


def test_a_run_is_deleted_for_good_unless_something_came_from_it(client, tmp_path) -> None:
    data = client.datasets.register("d", _csv(tmp_path))
    with (
        client.runs.start("parent", inputs=[data.ref]) as parent,
        client.runs.start("child") as child,
    ):
        child.log_metric("acc", 0.5)
    producer = client.runs.create("producer")
    client.models.register("m", write_safetensors(tmp_path / "w.safetensors"), run_id=producer.id)
    with pytest.raises(ConflictError, match="has child runs") as refused:
        client.runs.delete(parent.id)
    assert refused.value.field == "run_id"
    with pytest.raises(ConflictError, match="lineage of a registered model"):
        client.runs.delete(producer.id)
    assert client.runs.delete(child.id[:8]).id == child.id  # a short id works too
    assert client.runs.delete(parent.id).name == "parent"
    with pytest.raises(NotFoundError, match="no run"):
        client.runs.get(parent.id)
    assert client.datasets.lineage(data.ref).downstream == []  # its input edge went too
    assert client.runs.get(producer.id).info.name == "producer"  # nothing else touched
