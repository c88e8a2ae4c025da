"""Build the FastAPI app: one error translator, one auth dependency, thin routes."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

import stoa.serve.server.dataplane as dataplane
from stoa import __version__
from stoa.client import RESOURCES, LocalClient
from stoa.client._operation import Resource
from stoa.core.errors import ConfigurationError, OverloadedError, StoaError
from stoa.core.settings import Settings
from stoa.govern.gc import sweep_temporaries
from stoa.govern.webhooks import Dispatcher
from stoa.measure.alerts import Scheduler, interval_from_env
from stoa.measure.background import Periodic
from stoa.measure.background import interval_from_env as every_from_env
from stoa.measure.judging import JudgePolicies
from stoa.serve.metrics import prepare_multiprocess
from stoa.serve.server.gatekeeper import FIX, MIB, Gatekeeper

log = logging.getLogger("stoa.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, client: LocalClient) -> None:
    """Refuse to serve beyond loopback unless token auth is configured."""
    if not is_loopback(host) and not client.stores.tokens.any_active():
        raise ConfigurationError(
            f"refusing to bind to {host} without token auth: anyone who can reach it "
            "could read and change the registry",
            field="host",
            fix="create a token with `stoa tokens create NAME --scope admin`, or bind to 127.0.0.1",
        )


_HOST_HEADER = re.compile(
    r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::\d{1,5})?$"
)


def host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``),
    or "" when it is not the ``host[:port]`` that RFC 9110 allows: ``127.0.0.1:80@evil``
    must not pass for loopback."""
    found = _HOST_HEADER.match(header)
    if found is not None:
        return found.group("ip6") or found.group("name")
    try:  # a bare IPv6 address ("::1"), as some clients send it
        return str(ipaddress.IPv6Address(header))
    except ValueError:
        return ""


class LoopbackHostOnly:
    """On a loopback bind, answer only requests addressed to a loopback name.

    A web page can point its own DNS name at 127.0.0.1 (DNS rebinding) and so reach a
    server that runs open on loopback; such requests carry that page's name as Host.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            raw = headers.get(b"host", b"").decode("latin-1")
            host = host_of(raw)
            if not is_loopback(host):
                response = _error(
                    400, "invalid_input", f"host {raw[:100]!r} is not this loopback server",
                    "Host", "address the server as 127.0.0.1, ::1 or localhost",
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error(
    status: int, code: str, message: str, field: str | None = None, fix: str | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field, "fix": fix}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    settings: Settings | None = None,
    *,
    host: str = "127.0.0.1",
    client: LocalClient | None = None,
    resources: Sequence[type[Resource]] = RESOURCES,
    default_endpoint: str | None = None,
) -> FastAPI:
    """The app over ``client`` (or the stores ``settings`` name), with a route for every
    operation of ``resources`` and the data plane; ``default_endpoint`` answers MLflow's
    ``/invocations`` (``stoa serve``)."""
    from stoa.serve.server.routes import build_router, route_scopes, unknown_kind
    from stoa.ui.app import mount_dashboard

    client = client or LocalClient(settings=settings or Settings())
    limits = client.stores.settings
    sweep_temporaries(client.stores.blobs)  # what a crashed upload left behind
    check_bind(host, client)
    every_s = interval_from_env()  # a bad value stops the start here, in one line
    judges_every_s = every_from_env("STOA_JUDGES_EVERY_S", 30.0)

    # Swagger UI and ReDoc from assets shipped in a package, never from a CDN: /docs
    # works offline.
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Deliver webhooks from the outbox while the server runs; start the data plane,
        and on shutdown let running predictions end and write every logged one. Alert
        rules are evaluated (STOA_ALERTS_EVERY_S) and online judges run (STOA_JUDGES_EVERY_S)
        on their schedules beside them."""
        dispatcher = None
        if client.stores.hooks:
            dispatcher = Dispatcher(client.stores.db, client.stores.hooks)
            dispatcher.start()
        alerts = Scheduler(client.stores.db, client.stores.hooks, every_s) if every_s else None
        if alerts is not None:
            alerts.start()
        judges = None
        if judges_every_s:
            policies = JudgePolicies(client.stores.db)
            judges = Periodic(
                "judges", judges_every_s, lambda _: policies.run(client.stores.solutions)
            )
            judges.start()
        serving = client.stores.serving
        serving.warm_in_background()
        yield
        for job in (alerts, judges):
            if job is not None:
                job.stop()
        serving.close()
        if dispatcher is not None:
            dispatcher.stop()

    app = FastAPIOffline(
        lifespan=lifespan,
        title="Stoa",
        version=__version__,
        description="Govern, develop, serve and measure AI solutions.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.client = client
    app.state.loopback = is_loopback(host)
    app.state.default_endpoint = default_endpoint
    app.add_middleware(
        Gatekeeper,
        routes=route_scopes(resources) + dataplane.scopes(),
        max_upload=limits.max_upload_mb * MIB,
        max_json=limits.max_json_mb * MIB,
        error=_error,
    )
    if app.state.loopback:  # added last, so it runs first: a wrong Host reads nothing
        app.add_middleware(LoopbackHostOnly)

    @app.exception_handler(StoaError)
    async def _stoa_error(_: Request, exc: StoaError) -> JSONResponse:
        response = _error(exc.http_status, exc.code, exc.message, exc.field, exc.fix)
        if isinstance(exc, OverloadedError):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        prediction_id = getattr(exc, "prediction_id", None)  # a failed or late prediction
        if prediction_id is not None:
            response.headers[dataplane.PREDICTION_HEADER] = prediction_id
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # its loc is a character offset, not a field
            return _error(422, "invalid_input", "is not valid JSON", "body", "send a JSON body")
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path", "form")]
        return _error(
            422,
            "invalid_input",
            first.get("msg", "invalid request"),
            ".".join(loc) or None,
            "see /docs for the expected request",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route matched the URL
            wrong_kind = unknown_kind(request.url.path)
            if wrong_kind:
                return _error(422, "invalid_input", wrong_kind, "kinds", "see /docs for the routes")
            return _error(
                404,
                "not_found",
                f"no route for {request.method} {request.url.path}",
                "url",
                "see /docs for the routes; a reference is NAME, NAME@VERSION or NAME@ALIAS",
            )
        if exc.status_code == 413:  # a body the gatekeeper stopped while it streamed in
            return _error(413, "too_large", str(exc.detail), "body", FIX)
        if exc.status_code == 405:
            return _error(
                405, "method_not_allowed", f"{request.method} is not allowed on "
                f"{request.url.path}", "method", "see /docs for the routes",
            )  # fmt: skip
        code = "not_found" if exc.status_code == 404 else "http_error"
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(DataError)
    async def _data_error(_: Request, exc: DataError) -> JSONResponse:
        # A value the database refused that no check caught first: still the caller's input.
        first = str(exc.orig or exc).strip().splitlines()[0]
        return _error(422, "invalid_input", f"the database refused a value: {first}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "internal", f"internal error ({type(exc).__name__}); see the server log")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)

    app.include_router(build_router(resources), prefix="/api/v1")
    app.include_router(dataplane.build_dataplane_router())
    mount_dashboard(app)
    return app


#: What uvicorn imports in each of several worker processes (``stoa server --workers``).
WORKER_APP = "stoa.serve.server.app:app_for_worker"
_WORKER_HOST = "STOA_SERVER_HOST"
_WORKER_ENDPOINT = "STOA_DEFAULT_ENDPOINT"


def worker_environment(
    settings: Settings, host: str, default_endpoint: str | None = None
) -> dict[str, str]:
    """What a process that builds the app afresh (a uvicorn worker, a Ray Serve replica)
    needs to find the same stores and bind rule: the settings resolved here, so a
    relative home or the default SQLite file name the same place everywhere."""
    values = {"STOA_HOME": str(settings.resolved_home), _WORKER_HOST: host,
              "STOA_DATABASE_URL": settings.resolved_database_url,
              "STOA_BLOB_URL": settings.resolved_blob_url}  # fmt: skip
    if settings.scan_policy is not None:
        values["STOA_SCAN_POLICY"] = str(settings.scan_policy)
    if default_endpoint is not None:
        values[_WORKER_ENDPOINT] = default_endpoint
    return values


def configure_workers(settings: Settings, host: str, default_endpoint: str | None = None) -> None:
    """Put the settings and bind address where every worker process reads them: uvicorn
    imports ``WORKER_APP`` afresh in each, so they travel in the environment."""
    os.environ.update(worker_environment(settings, host, default_endpoint))
    prepare_multiprocess(settings.resolved_home)  # /metrics adds up every worker


def app_for_worker() -> FastAPI:
    return create_app(
        Settings(),
        host=os.environ.get(_WORKER_HOST, "127.0.0.1"),
        default_endpoint=os.environ.get(_WORKER_ENDPOINT),
    )
