"""REST routes, mounted from the operations each client resource declares.

No route is written here by hand: each one is derived from its resource method's
``@operation`` (path, scope, parameters, return type), so a route cannot drift from the
Python method it exposes. This module adds only what HTTP needs around them: who the
caller is, how query items, form fields and uploads become the method's arguments, and
the order in which routes are matched.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field, create_model
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import compile_path

from stoa.client import KINDS, RESOURCES, LocalClient
from stoa.client._operation import Operation, Resource, operations
from stoa.core.errors import InvalidInputError
from stoa.core.names import safe_relpath, validate_name
from stoa.serve.server.gatekeeper import authenticate

_KEYWORD = inspect.Parameter.KEYWORD_ONLY
#: The kinds the registry routes take as their first path segment.
Kinds = StrEnum("Kinds", {cls.name: cls.name for cls in KINDS.values()})  # type: ignore[misc]
_BY_PLURAL = {cls.name: cls for cls in KINDS.values()}


class _KindConvertor(Convertor[str]):
    """Matches only a kind's plural, so ``/{kinds}/{ref}`` cannot swallow ``/runs/…``
    and the registry's routes, the most read, can be matched first."""

    regex = "|".join(sorted(_BY_PLURAL))

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("kind", _KindConvertor())


def scope(needed: str) -> Callable[..., LocalClient]:
    """Dependency: the server's client acting as the caller. The gatekeeper middleware
    has checked the token against ``needed`` before the body was read."""

    async def check(request: Request) -> LocalClient:
        # async: FastAPI would otherwise hop to a worker thread for a dictionary lookup.
        caller = request.scope.get("state", {}).get("stoa_caller")
        if caller is not None:
            return caller
        app = request.app
        header = request.headers.get("authorization", "")
        return authenticate(app.state.client, header, app.state.loopback, needed)

    return check


def _mount_order(
    resources: Sequence[type[Resource]],
) -> list[tuple[Operation, type[Resource] | None]]:
    """Every operation once, with its resource; the registry's ``/{kinds}/…`` ones
    (resource None) first, since registry reads are the most frequent requests and the
    router tries routes in order. ``/{kinds}`` matches only a kind's plural."""
    own: list[tuple[Operation, type[Resource] | None]] = []
    by_kind: dict[str, Operation] = {}
    for resource in resources:
        for op in operations(resource):
            if op.path.startswith("/{kinds}"):
                by_kind.setdefault(op.name, op)  # shared by the kinds: mounted once
            else:
                own.append((op, resource))
    return [(op, None) for op in by_kind.values()] + own


def route_scopes(
    resources: Sequence[type[Resource]] = RESOURCES, prefix: str = "/api/v1"
) -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path pattern, scope) in the order the router matches: what the
    gatekeeper checks before a body is read."""
    table = []
    for op, resource in _mount_order(resources):
        paths = [op.path] if resource else [op.path.replace("{kinds}", k) for k in _BY_PLURAL]
        table += [(op.method, compile_path(prefix + p)[0], op.scope) for p in paths]
    return table


def unknown_kind(path: str, prefix: str = "/api/v1") -> str | None:
    """The error for a path whose first segment names no resource and no kind (the
    router found no route), so that ``/api/v1/widgets`` says which kinds exist."""
    head = path.removeprefix(prefix + "/").split("/", 1)[0] if path.startswith(prefix) else ""
    known = {op.path.split("/")[1] for op, _ in _mount_order(RESOURCES)}
    if not head or head in known or head in _BY_PLURAL:
        return None
    kinds = [repr(k) for k in sorted(_BY_PLURAL)]
    return f"Input should be {', '.join(kinds[:-1])} or {kinds[-1]}"


def build_router(resources: Sequence[type[Resource]] = RESOURCES) -> APIRouter:
    """A route for every operation of ``resources``, in ``_mount_order``."""
    router = APIRouter()
    for op, resource in _mount_order(resources):
        _mount(router, op, resource)
    return router


def _mount(router: APIRouter, op: Operation, resource: type[Resource] | None) -> None:
    """Add ``op``'s route; ``resource`` is None when the path's ``{kinds}`` names it."""
    params = [
        inspect.Parameter("client", _KEYWORD, annotation=Annotated[Any, Depends(scope(op.scope))])
    ]
    params += [
        inspect.Parameter(name, _KEYWORD, annotation=Kinds if name == "kinds" else str)
        for name in op.path_params
    ]
    arguments = _UploadArguments(op) if op.upload else _arguments(op)
    params += arguments.parameters

    def endpoint(**received: Any) -> Any:
        client = received.pop("client")
        owner = resource or _BY_PLURAL[received.pop("kinds").value]
        uploads = arguments.take_uploads(received)
        values = arguments.values(received)
        target = owner(client)
        if op.guard is not None:
            op.guard(target, values)
        if op.upload is None or uploads is None:
            return _answer(op, op.fn(target, **values))
        with tempfile.TemporaryDirectory(prefix="stoa-upload-") as tmp:
            values[op.upload[0]] = save_uploads(*uploads, Path(tmp))
            return _answer(op, op.fn(target, **values))

    if op.method == "GET" and not op.raw:
        # A read runs on the event loop: handing a sub-millisecond query to a worker
        # thread and back cost more than the query (benchmarks/api_request_cost.py).
        # Downloads and writes still go to the thread pool; docs/decisions.md says why.
        on_thread = endpoint

        async def endpoint(**received: Any) -> Any:
            return on_thread(**received)

    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = op.name.lstrip("_")
    extra: dict[str, Any] = {}
    if op.raw:
        extra = {"response_class": Response,
                 "responses": {200: {"content": {"application/octet-stream": {}}}}}  # fmt: skip
    router.add_api_route(
        op.path.replace("{kinds}", "{kinds:kind}"),
        endpoint,
        methods=[op.method],
        status_code=op.status_code,
        response_model=_response_model(op),
        summary=op.name.strip("_").replace("_", " ").capitalize(),
        description=inspect.getdoc(op.fn) or "",
        **extra,
    )


def _answer(op: Operation, result: Any) -> Any:
    if op.raw:
        return result
    if op.status_code == 204:
        return Response(status_code=204)
    return {op.envelope: result} if op.envelope else result


def _response_model(op: Operation) -> Any:
    if op.raw or op.status_code == 204:
        return None
    if op.envelope:
        return create_model(f"{_title(op)}Out", **{op.envelope: (op.returns, ...)})
    return op.returns


def _title(op: Operation) -> str:
    owner = op.fn.__qualname__.split(".")[0]
    return owner + "".join(part.capitalize() for part in op.name.split("_"))


def _plain(hint: Any) -> Any:
    """The type under ``Annotated[…]`` markers."""
    return typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint


def _json_type(hint: Any) -> type | None:
    """``dict`` or ``list`` when a parameter holds a mapping or a list (sent as JSON text
    in a form, or as repeated items in a query); None for a scalar."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for member in typing.get_args(hint) if union else (hint,):
        origin = typing.get_origin(member) or member
        if origin in (dict, Mapping):
            return dict
        if origin in (list, Sequence):
            return list
    return None


class _Arguments:
    """How a request's parsed parameters become the method's keyword arguments."""

    def __init__(self) -> None:
        self.parameters: list[inspect.Parameter] = []
        self.convert: dict[str, Callable[[Any], Any]] = {}
        #: Parameter name -> attribute of the JSON body model.
        self.body: dict[str, str] = {}

    def take_uploads(self, received: dict[str, Any]) -> tuple[list[UploadFile], Any] | None:
        """The uploaded files and their relative paths, taken out of ``received``."""
        return None

    def values(self, received: dict[str, Any]) -> dict[str, Any]:
        body = received.pop("body", None)
        values = {name: getattr(body, attr) for name, attr in self.body.items()}
        values.update(received)
        for name, convert in self.convert.items():
            values[name] = convert(values[name])
        return values


def _arguments(op: Operation) -> _Arguments:
    """Query items for GET and DELETE; one JSON body for the rest."""
    arguments = _Arguments()
    if op.method not in ("GET", "DELETE"):
        if op.wire_params:
            fields: dict[str, Any] = {}
            for p in op.wire_params:
                # A name BaseModel already uses (``register``) gets another attribute; the
                # JSON key stays the parameter's name.
                attr = f"{p.name}_" if hasattr(BaseModel, p.name) else p.name
                default = ... if p.default is p.empty else p.default
                fields[attr] = (_plain(op.hints[p.name]), Field(default, alias=p.name))
                arguments.body[p.name] = attr
            model = create_model(f"{_title(op)}In", **fields)
            arguments.parameters.append(inspect.Parameter("body", _KEYWORD, annotation=model))
        return arguments
    for p in op.wire_params:
        wire, hint = op.wire(p.name), _plain(op.hints[p.name])
        alias = wire.name or p.name
        if wire.pairs:
            annotation: Any = Annotated[
                list[str], Query(alias=alias, description="KEY=VALUE, repeatable")
            ]
            arguments.convert[p.name] = lambda items, field=alias: parse_pairs(items, field)
            default: Any = []
        elif _json_type(hint) is list:
            annotation = Annotated[list[str], Query(alias=alias, description="repeatable")]
            default = []
        else:
            annotation, default = Annotated[hint, Query(alias=alias)], p.default
        arguments.parameters.append(
            inspect.Parameter(p.name, _KEYWORD, annotation=annotation, default=default)
        )
    return arguments


class _UploadArguments(_Arguments):
    """Multipart: the upload's files (and a folder's relative paths), other values as
    form fields, mappings and lists among them as JSON text."""

    def __init__(self, op: Operation):
        super().__init__()
        assert op.upload is not None
        self.target, self.spec = op.upload
        if self.spec.folders:
            self.parameters += [
                inspect.Parameter(
                    self.spec.field, _KEYWORD, annotation=Annotated[list[UploadFile], File()]
                ),
                inspect.Parameter(
                    "paths", _KEYWORD, annotation=Annotated[list[str] | None, Form()], default=None
                ),
            ]
        else:
            self.parameters.append(
                inspect.Parameter(
                    self.spec.field, _KEYWORD, annotation=Annotated[UploadFile, File()]
                )
            )
        for p in op.wire_params:
            if p.name == self.target:
                continue
            hint = _plain(op.hints[p.name])
            expected = _json_type(hint)
            if expected is not None:
                annotation: Any = Annotated[str | None, Form()]
                self.convert[p.name] = lambda raw, f=p.name, t=expected: json_field(raw, f, t)
                default = None
            else:
                annotation, default = Annotated[hint, Form()], p.default
            self.parameters.append(
                inspect.Parameter(p.name, _KEYWORD, annotation=annotation, default=default)
            )

    def take_uploads(self, received: dict[str, Any]) -> tuple[list[UploadFile], Any]:
        files = received.pop(self.spec.field)
        return (files if isinstance(files, list) else [files]), received.pop("paths", None)


def parse_pairs(items: list[str], field: str = "tag") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"{item!r} is not KEY=VALUE", field=field, fix="write the filter as key=value"
            )
        out[key] = value
    return out


def json_field(raw: str | None, field: str, expected: type) -> Any:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInputError("is not valid JSON", field=field, fix="send a JSON value") from None
    if not isinstance(value, expected):
        raise InvalidInputError(f"must be a JSON {expected.__name__}", field=field)
    return value


def _upload_name(filename: str | None) -> str:
    """The uploaded file's own base name, so messages name the user's file; never a path."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return validate_name(base)
    except InvalidInputError:
        return "artifact"


def save_uploads(files: list[UploadFile], paths: list[str] | None, dest: Path) -> Path:
    """Write uploads under ``dest``; relative paths are canonicalised before any write."""
    if not files:
        raise InvalidInputError("no file uploaded", field="files", fix="attach the artifact")
    if not paths:
        if len(files) != 1:
            raise InvalidInputError("several files need a 'paths' entry each", field="paths")
        target = dest / _upload_name(files[0].filename)
        with open(target, "wb") as out:
            shutil.copyfileobj(files[0].file, out)
        return target
    if len(paths) != len(files):
        raise InvalidInputError(
            f"{len(paths)} paths for {len(files)} files",
            field="paths",
            fix="send one path per file, in the same order",
        )
    folder = dest / "folder"
    rels = [safe_relpath(p, "paths") for p in paths]
    if len(set(rels)) != len(rels):
        raise InvalidInputError("the same path appears twice", field="paths")
    folders = {rel.rsplit("/", depth)[0] for rel in rels for depth in range(1, rel.count("/") + 1)}
    clash = sorted(folders & set(rels))
    if clash:
        raise InvalidInputError(
            f"{clash[0]!r} is both a file and a folder", field="paths", fix="rename one of them"
        )
    for rel, upload in zip(rels, files, strict=True):
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(upload.file, out)
    return folder
