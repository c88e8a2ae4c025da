"""Rendering: one Jinja environment, the filters every page shares, and ``UiRoute``, which
turns a page's errors into pages instead of JSON.

A page function returns ``page(request, viewer, "template.html", **values)``. Errors it
raises (``StoaError`` or an HTTP error) become the error page with the right status; an
unauthenticated browser is sent to the sign-in form, remembering where it was going.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.exceptions import HTTPException

from stoa import __version__
from stoa.core.errors import AuthenticationError, StoaError
from stoa.ui.session import Viewer

HERE = Path(__file__).resolve().parent
env = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
)
templates = Jinja2Templates(env=env)
env.globals["version"] = __version__

#: The navigation bar: (label, path, the section a page names to be highlighted).
NAV = [
    ("Overview", "/ui", "overview"),
    ("Models", "/ui/models", "models"),
    ("Prompts", "/ui/prompts", "prompts"),
    ("Datasets", "/ui/datasets", "datasets"),
    ("Runs", "/ui/runs", "runs"),
    ("Selections", "/ui/selections", "selections"),
    ("Knowledge bases", "/ui/kbs", "kbs"),
    ("Solutions", "/ui/solutions", "solutions"),
    ("Endpoints", "/ui/endpoints", "endpoints"),
    ("Scans", "/ui/scans", "scans"),
    ("Review", "/ui/review", "review"),
    ("Review queues", "/ui/queues", "queues"),
    ("Alerts", "/ui/alerts", "alerts"),
]
env.globals["nav"] = NAV


def _when(value: datetime | str | None) -> str:
    """One time format everywhere, in UTC and saying so."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: Any, digits: int = 4) -> str:
    """A number short enough for a table cell, never cut: 4 significant digits."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(digits - 3, 1)}f}"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _json_script(value: Any) -> Markup:
    """Data for a chart, safe inside ``<script type="application/json">``."""
    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))  # escaped for a script element


env.filters.update(
    when=_when, num=_num, size=_size, json_script=_json_script, urlpart=lambda s: quote(str(s))
)


def attachment(response: Response, filename: str) -> Response:
    """Offer ``response`` as a download named ``filename`` (percent-encoded, so no
    character of a stored name can break the header)."""
    response.headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return response


def page(
    request: Request, viewer: Viewer | None, template: str, status: int = 200, **values: Any
) -> HTMLResponse:
    """A whole page, or only its ``#main`` block when htmx asks for a fragment."""
    values.setdefault("section", "")
    context = {"request": request, "viewer": viewer, **values}
    return templates.TemplateResponse(request, template, context, status_code=status)


def _error_page(request: Request, status: int, message: str, fix: str | None) -> Response:
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method == "GET" and not request.headers.get("hx-request"):
            return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
    return page(request, None, "error.html", status=status, message=message, fix=fix)


class UiRoute(APIRoute):
    """Errors inside a page render as the error page (or a redirect to sign in)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except AuthenticationError as exc:
                return _error_page(request, 401, exc.message, exc.fix)
            except StoaError as exc:
                return _error_page(request, exc.http_status, exc.message, exc.fix)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", [])[1:])
                message = f"{where}: {first.get('msg', 'invalid request')}".strip(": ")
                return _error_page(request, 422, message, "check the address or the form")
            except HTTPException as exc:
                return _error_page(request, exc.status_code, str(exc.detail), None)

        return guarded


def diff_lines(old: str, new: str, old_ref: str, new_ref: str) -> list[tuple[str, str]]:
    """A unified diff as (class, line) pairs for ``pre.diff``: prompt and solution pages."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_ref, new_ref, lineterm="")
    out = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out
