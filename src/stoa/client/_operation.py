"""Declare an operation once: its in-process body, its REST route and its HTTP call.

A resource method decorated with ``@operation`` runs its body when the client works on
local stores. Over HTTP the same call becomes the request the decorator declares, and
the answer is parsed into the method's return type. The server mounts the same
declaration as its route (``stoa.serve.server.routes``), so adding an operation means
writing one method and its test; no second or third copy exists to fall out of step.

Parameters travel by a fixed rule: names in the path fill the path, ``GET`` and
``DELETE`` send the rest as query items, an operation with an ``Upload`` parameter sends
multipart form fields (mappings and lists as JSON), and everything else is one JSON body.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from stoa.client._transport import Http, Local, Transport, seg
from stoa.core.blobs import build_manifest
from stoa.core.errors import InvalidInputError

Scope = Literal["read", "write", "admin"]
_PATH_PARAM = re.compile(r"{(\w+)(:path)?}")


@dataclass(frozen=True)
class Wire:
    """How a parameter travels when the plain rule does not fit: under another ``name``,
    or, with ``pairs``, a mapping as repeated ``NAME=KEY=VALUE`` query items."""

    name: str | None = None
    pairs: bool = False


@dataclass(frozen=True)
class Upload:
    """A local file (or, with ``folders``, a folder) sent as multipart ``field`` parts; the
    server saves them under a temporary folder and passes that path to the body."""

    field: str = "files"
    folders: bool = True


@dataclass
class Operation:
    """One declared operation; ``serve.server.routes`` reads these to mount routes."""

    fn: Callable[..., Any]
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    scope: Scope
    status: int | None = None
    #: Parameters that never travel, each with the message a remote call gets when it
    #: gives one, or None when it is simply dropped (a progress callback).
    local_only: Mapping[str, str | None] = field(default_factory=dict)
    #: Checks the server applies to a caller's values before the body runs: what is
    #: fine in process (a local path, a URL) but not from a remote caller.
    guard: Callable[[Any, dict[str, Any]], None] | None = None
    #: A bytes route: the body returns a starlette ``Response``.
    raw: bool = False
    #: The JSON key the result travels under, for a result that is not an object.
    envelope: str | None = None

    @property
    def name(self) -> str:
        return self.fn.__name__

    @functools.cached_property
    def hints(self) -> dict[str, Any]:
        return typing.get_type_hints(self.fn, include_extras=True)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @functools.cached_property
    def path_params(self) -> list[str]:
        return [m.group(1) for m in _PATH_PARAM.finditer(self.path)]

    @functools.cached_property
    def wire_params(self) -> list[inspect.Parameter]:
        """The parameters a caller sends, besides the path: in declaration order."""
        skip = {"self", *self.path_params, *self.local_only}
        return [p for p in self.signature.parameters.values() if p.name not in skip]

    @functools.cached_property
    def upload(self) -> tuple[str, Upload] | None:
        for param in self.wire_params:
            marker = metadata_of(self.hints.get(param.name), Upload)
            if marker is not None:
                return param.name, marker
        return None

    @functools.cached_property
    def returns(self) -> Any:
        return self.hints.get("return")

    @functools.cached_property
    def result(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.returns)

    @property
    def status_code(self) -> int:
        return self.status or (204 if self.returns is type(None) else 200)

    def wire(self, name: str) -> Wire:
        return metadata_of(self.hints.get(name), Wire) or Wire()


def metadata_of(hint: Any, kind: type) -> Any:
    """The ``Annotated[...]`` marker of type ``kind`` on ``hint``, if any."""
    for item in getattr(hint, "__metadata__", ()):
        if isinstance(item, kind):
            return item
    return None


def operation(
    method: Literal["GET", "POST", "PUT", "DELETE"],
    path: str,
    *,
    scope: Scope,
    status: int | None = None,
    local_only: Mapping[str, str | None] | None = None,
    guard: Callable[[Any, dict[str, Any]], None] | None = None,
    raw: bool = False,
    envelope: str | None = None,
    over_http: Callable[..., Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a resource method as ``METHOD /api/v1PATH`` needing ``scope``.

    ``over_http`` replaces the derived request for a remote client whose side of the work
    differs: reading local files before sending them, or verifying downloaded bytes.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(
            fn, method, path, scope, status, dict(local_only or {}), guard, raw, envelope
        )

        @functools.wraps(fn)
        def call(self: Resource, *args: Any, **kwargs: Any) -> Any:
            if isinstance(self._transport, Http):
                if over_http is not None:
                    return over_http(self, *args, **kwargs)
                return request(op, self, args, kwargs)
            return fn(self, *args, **kwargs)

        call.operation = op  # type: ignore[attr-defined]
        return call

    return wrap


def remote_variant(over_http: Callable[..., Any]) -> Callable[[Callable[..., Any]], Any]:
    """A method with no route of its own whose remote side differs (it calls other
    operations, after reading or before writing local files)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(self: Resource, *args: Any, **kwargs: Any) -> Any:
            chosen = over_http if isinstance(self._transport, Http) else fn
            return chosen(self, *args, **kwargs)

        return call

    return wrap


class Resource:
    """A noun's operations, bound to one client's transport; ``name`` is its attribute
    on the client and the first segment of its routes."""

    name: ClassVar[str]

    def __init__(self, client: Any):
        self._client = client
        self._transport: Transport = client._transport

    @property
    def _local(self) -> Local:
        assert isinstance(self._transport, Local), "a local body ran over HTTP"
        return self._transport

    @property
    def _http(self) -> Http:
        assert isinstance(self._transport, Http), "a remote variant ran in process"
        return self._transport


def operations(cls: type[Resource]) -> list[Operation]:
    """Every operation ``cls`` declares or inherits, base classes' first, each once."""
    found: dict[str, Operation] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            op = getattr(value, "operation", None)
            if isinstance(op, Operation):
                found[attr] = op
    return list(found.values())


def request(
    op: Operation, resource: Resource, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Make ``op``'s request over the resource's HTTP transport and parse the answer."""
    bound = op.signature.bind(resource, *args, **kwargs)
    values = {k: v for k, v in bound.arguments.items() if k != "self"}
    for name, why in op.local_only.items():
        given = values.pop(name, None)
        if why is not None and given not in (None, op.signature.parameters[name].default):
            raise InvalidInputError(why, field=name)
    path = op.path.replace("{kinds}", resource.name)
    for match in _PATH_PARAM.finditer(op.path):
        if match.group(1) == "kinds":
            continue
        value = str(values.pop(match.group(1)))
        text = "/".join(map(seg, value.split("/"))) if match.group(2) else seg(value)
        path = path.replace(match.group(0), text)
    http: Http = resource._http
    if op.upload is not None:
        response = _send_upload(http, op, path, values)
    elif op.method in ("GET", "DELETE"):
        response = http.call(op.method, path, params=_query(op, values))
    elif op.wire_params:
        body = {k: v for k, v in values.items() if v is not None}
        response = http.call(op.method, path, json=to_jsonable_python(body))
    else:
        response = http.call(op.method, path)
    if op.raw:
        return response.content
    if response.status_code == 204 or op.returns is type(None):
        return None
    data = response.json()
    return op.result.validate_python(data[op.envelope] if op.envelope else data)


def _query(op: Operation, values: dict[str, Any]) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for name, value in values.items():
        if value is None:
            continue
        wire = op.wire(name)
        key = wire.name or name
        if wire.pairs:
            items += [(key, f"{k}={v}") for k, v in value.items()]
        elif isinstance(value, list | tuple):
            items += [(key, v) for v in value]
        else:
            items.append((key, value))
    return items


def form_value(value: Any) -> str:
    """A multipart field: mappings and lists as JSON, booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(to_jsonable_python(value))
    return str(value)


def _send_upload(http: Http, op: Operation, route: str, values: dict[str, Any]) -> Any:
    """POST a file, or a folder as files plus their relative paths, with the other values."""
    assert op.upload is not None
    param, spec = op.upload
    path = Path(values.pop(param))
    form: dict[str, Any] = {k: form_value(v) for k, v in values.items() if v is not None}
    if path.is_dir() and spec.folders:
        rels = sorted(build_manifest(path)[0])
        handles = [open(path / rel, "rb") for rel in rels]  # noqa: SIM115 - closed below
        form["paths"] = rels
        files = [(spec.field, (Path(r).name, h)) for r, h in zip(rels, handles, strict=True)]
    elif path.is_file():
        handles = [open(path, "rb")]  # noqa: SIM115
        files = [(spec.field, (path.name, handles[0]))]
    else:
        what = "does not exist" if not path.exists() else "is not a file"
        raise InvalidInputError(f"{path} {what}", field=param)
    try:
        return http.call(op.method, route, data=form, files=files)
    finally:
        for handle in handles:
            handle.close()
