"""One declaration per operation: its body in process, its HTTP call and its route.

A resource written only in this test (a new noun, as a later issue would add one) is
mounted by the server and called through both transports, and every operation of
every shipped resource is checked to have exactly its declared route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi.testclient import TestClient

from stoa.client import RESOURCES, HttpClient, LocalClient
from stoa.client._operation import Resource, Upload, Wire, operation, operations
from stoa.client._transport import Http
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.core.settings import Settings
from stoa.serve.server import create_app


class Notes(Resource):
    """A toy noun: everything a real resource module declares, in one place."""

    name = "notes"

    @operation("POST", "/notes/{book}", scope="write", status=201)
    def add(self, book: str, text: str, *, tags: dict[str, str] | None = None) -> dict[str, Any]:
        store = self._local.settings.resolved_home / f"{book}.txt"
        if not text.strip():
            raise InvalidInputError("a note needs text", field="text")
        with open(store, "a", encoding="utf-8") as out:
            out.write(f"{text}\t{sorted((tags or {}).items())}\n")
        return {"book": book, "actor": self._local.actor, "tags": tags or {}}

    @operation("GET", "/notes/{book}", scope="read")
    def find(
        self,
        book: str,
        tags: Annotated[dict[str, str] | None, Wire("tag", pairs=True)] = None,
        limit: int = 10,
    ) -> list[str]:
        store = self._local.settings.resolved_home / f"{book}.txt"
        if not store.exists():
            raise NotFoundError(f"no book {book!r}", field="book")
        wanted = str(sorted((tags or {}).items()))
        lines = store.read_text(encoding="utf-8").splitlines()
        return [line.split("\t")[0] for line in lines if line.endswith(wanted)][:limit]

    @operation("POST", "/notes/{book}/count", scope="read", envelope="count",
               local_only={"hook": "hooks run only in process"})  # fmt: skip
    def count(self, book: str, hook: Any = None) -> int:
        return len(self.find(book, limit=1000))

    @operation("POST", "/notes/{book}/attach", scope="write")
    def attach(self, book: str, path: Annotated[Path | str, Upload()], label: str) -> None:
        target = self._local.settings.resolved_home / f"{book}-{label}"
        target.write_bytes(Path(path).read_bytes())


@pytest.fixture
def both(tmp_path: Path):
    """The toy resource over the local stores, and over HTTP through the real app."""
    settings = Settings(home=tmp_path / "home")
    app = create_app(settings, resources=(*RESOURCES, Notes))  # mounted before /{kinds}
    local = LocalClient(settings=settings, actor="me")
    with TestClient(app, base_url="http://127.0.0.1") as http:
        remote = HttpClient("http://127.0.0.1")
        assert isinstance(remote._transport, Http)
        remote._transport.http = http  # the same wire, without a socket
        http.base_url = "http://127.0.0.1/api/v1"
        yield Notes(local), Notes(remote)
    local.close()
    app.state.client.close()


def test_a_new_resource_is_one_class_and_works_over_both_transports(both, tmp_path) -> None:
    local, remote = both
    assert local.add("b", "first", tags={"k": "v"})["actor"] == "me"
    made = remote.add("b", "second", tags={"k": "v"})
    assert made == {"book": "b", "actor": "anonymous", "tags": {"k": "v"}}  # the caller's name
    assert local.find("b", {"k": "v"}) == remote.find("b", {"k": "v"}) == ["first", "second"]
    assert remote.find("b", {"k": "v"}, limit=1) == ["first"]
    assert local.count("b") == remote.count("b") == 0  # untagged notes only
    file = tmp_path / "upload.bin"
    file.write_bytes(b"\x00\x01")
    assert remote.attach("b", file, "raw") is None
    assert (tmp_path / "home" / "b-raw").read_bytes() == b"\x00\x01"


def test_the_toy_resource_refuses_bad_input_the_same_way_on_both_sides(both, tmp_path) -> None:
    local, remote = both
    for side in (local, remote):
        with pytest.raises(InvalidInputError, match="a note needs text") as error:
            side.add("b", "  ")
        assert error.value.field == "text"
        with pytest.raises(NotFoundError, match="no book 'nope'"):
            side.find("nope")
    with pytest.raises(InvalidInputError, match="hooks run only in process"):
        remote.count("b", hook=print)
    with pytest.raises(InvalidInputError, match="does not exist") as missing:
        remote.attach("b", tmp_path / "absent", "x")
    assert missing.value.field == "path"


def test_every_operation_has_exactly_its_declared_route(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path / "home"))
    spec = app.openapi()["paths"]
    declared = {
        (f"/api/v1{op.path}".replace("{path:path}", "{path}"), op.method.lower())
        for resource in RESOURCES
        for op in operations(resource)
    }
    served = {(path, method) for path, methods in spec.items() for method in methods}
    served = {(p, m) for p, m in served if p.startswith("/api/v1")}
    assert served == declared
    app.state.client.close()


def test_the_flat_names_of_stoa_0_1_still_work(sqlite_client, skops_file: Path) -> None:
    info = sqlite_client.register_model("m", skops_file)
    assert sqlite_client.show("model", "m@1").sha256 == info.sha256
    assert sqlite_client.set_alias("model", "m", 1, "champion").version == 1
    assert [s.name for s in sqlite_client.list("model")] == ["m"]
    run = sqlite_client.create_run("r", [])
    assert sqlite_client.lineage("run", run.id).start.type == "run"
    with pytest.raises(InvalidInputError, match="unknown kind 'widget'"):
        sqlite_client.show("widget", "m")
    with pytest.raises(AttributeError, match="no attribute 'log_widget'"):
        sqlite_client.log_widget  # noqa: B018
