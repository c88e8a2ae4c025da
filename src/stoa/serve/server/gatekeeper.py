"""Who is calling, and how much they may send, decided before a body byte is read.

FastAPI parses a request's body before it runs the route's dependencies, so a scope
check there comes after an anonymous caller has already made the server read (and,
for an upload, write) a body of any size. This middleware finds the operation a
request is for, checks the caller's token and scope against it, and counts the body
as it streams in, against the limit for its kind: multipart uploads and JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stoa.client import LocalClient
from stoa.core.errors import AuthenticationError, StoaError
from stoa.core.tokens import require_scope

MIB = 1024 * 1024
FIX = "send less, or raise STOA_MAX_UPLOAD_MB / STOA_MAX_JSON_MB on the server"


class BodyTooLarge(HTTPException):
    """Raised while a body streams in; FastAPI passes HTTP errors through its parser."""

    def __init__(self, limit: int, what: str):
        super().__init__(413, f"the {what} is over the server's limit of {limit // MIB} MiB")
        self.limit = limit


def authenticate(client: LocalClient, header: str, loopback: bool, needed: str) -> LocalClient:
    """The server's client acting as the caller, once the token has ``needed``.

    Everything a request changes is recorded under the token's name; with no tokens on
    loopback the caller is "anonymous".
    """
    tokens = client.stores.tokens
    if loopback and not tokens.auth_enabled():
        # An open loopback server: any header is ignored, since clients such as the
        # OpenAI SDK always send one (its api_key) and there is nothing to check it against.
        return client.acting_as("anonymous")
    if not header:
        raise AuthenticationError(
            "a bearer token is required",
            field="Authorization",
            fix="send 'Authorization: Bearer <token>' (the CLI: --token or STOA_TOKEN)",
        )
    kind, _, value = header.partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise AuthenticationError(
            "expected a Bearer token",
            field="Authorization",
            fix="send 'Authorization: Bearer <token>'",
        )
    token = tokens.authenticate(value.strip())
    require_scope(token, needed)
    return client.acting_as(f"token:{token.name}")


class Gatekeeper:
    """Authenticate against the route's scope, then let at most the limit through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[tuple[str, re.Pattern[str], str]],
        max_upload: int,
        max_json: int,
        error: Any,
    ):
        self.app = app
        self.routes = routes
        self.max_upload = max_upload
        self.max_json = max_json
        self.error = error  # the app's one error shape

    def _needed(self, method: str, path: str) -> str | None:
        for route_method, pattern, needed in self.routes:
            if route_method == method and pattern.match(path):
                return needed
        return None  # no operation: the router answers 404 or 405

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = self._needed(scope["method"], scope["path"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if needed is not None:
            app = scope["app"]
            try:
                caller = authenticate(
                    app.state.client, headers.get("authorization", ""), app.state.loopback, needed
                )
            except StoaError as exc:
                response = self.error(exc.http_status, exc.code, exc.message, exc.field, exc.fix)
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["stoa_caller"] = caller
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit, what = (self.max_upload, "upload") if multipart else (self.max_json, "body")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            too_large = BodyTooLarge(limit, what)
            response = self.error(413, "too_large", too_large.detail, "body", FIX)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit, what)
            return message

        await self.app(scope, counted, send)
