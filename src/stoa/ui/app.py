"""Mount the dashboard on the server's app: static assets, sign-in, and every page."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from stoa.core.errors import AuthenticationError
from stoa.ui.render import HERE, UiRoute, page
from stoa.ui.session import COOKIE, check_same_origin, sign_in, sign_out

#: The page modules under ``stoa.ui.pages``, in the order their routes are matched.
PAGES = ("overview", "registry", "runs", "selections", "kbs", "solutions", "endpoints", "scans",
         "experiments", "monitor", "queues", "alerts")  # fmt: skip

router = APIRouter(route_class=UiRoute, include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only a path inside the dashboard: never another site after signing in."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or "\\" in target:
        return "/ui"
    return target


@router.get("/login")
def login_form(request: Request, next_: str = Query("/ui", alias="next")) -> Response:
    return page(request, None, "login.html", next=_safe_next(next_), error=None)


@router.post("/login", dependencies=[Depends(check_same_origin)])
def login(
    request: Request, token: str = Form(""), next_: str = Form("/ui", alias="next")
) -> Response:
    try:
        secret, max_age = sign_in(request, token)
    except AuthenticationError as exc:
        return page(request, None, "login.html", status=401, next=_safe_next(next_),
                    error=f"{exc.message}: {exc.fix}")  # fmt: skip
    response = RedirectResponse(_safe_next(next_), status_code=303)
    response.set_cookie(COOKIE, secret, max_age=max_age, path="/ui", httponly=True, secure=True,
                        samesite="strict")  # fmt: skip
    return response


@router.post("/logout", dependencies=[Depends(check_same_origin)])
def logout(request: Request) -> Response:
    sign_out(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, secure=True, samesite="strict")
    return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard under ``/ui``; the app's ``state.client`` holds the stores."""
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(router, prefix="/ui")
    for name in PAGES:
        module = importlib.import_module(f"stoa.ui.pages.{name}")
        app.include_router(module.router, prefix="/ui")
