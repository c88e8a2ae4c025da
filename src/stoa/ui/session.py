"""Who is looking: a browser signs in with a token once and holds a session cookie.

The cookie carries a random secret (never the token, never in a URL); the database keeps
only its SHA-256 (``TokenStore.open_session``). It is ``HttpOnly`` (scripts cannot read
it), ``Secure`` (browsers send it over HTTPS, and to loopback, which they treat as
secure) and ``SameSite=Strict``. Every state-changing request must also come from the
dashboard's own origin (``check_same_origin``), since a loopback server with no tokens
has no cookie to protect it from a page on another site posting a form to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Request

from stoa.client import LocalClient
from stoa.core.errors import AuthenticationError, PermissionDeniedError
from stoa.core.tokens import SCOPES, SESSION_HOURS, effective_scopes

COOKIE = "stoa_session"


@dataclass(frozen=True)
class Viewer:
    """The signed-in caller: the client acting as them, and what their token allows."""

    client: LocalClient
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    #: False on an open loopback server, where there is nothing to sign out of.
    signed_in: bool = True

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.can(scope):
            raise PermissionDeniedError(
                f"{self.name} lacks the {scope!r} scope this action needs",
                field="scope",
                fix=f"sign in with a token created with --scope {scope}",
            )


def viewer(request: Request) -> Viewer:
    """The caller of a dashboard request, or AuthenticationError (the page then sends the
    browser to the sign-in form)."""
    client: LocalClient = request.app.state.client
    tokens = client.stores.tokens
    if request.app.state.loopback and not tokens.auth_enabled():
        return Viewer(client.acting_as("anonymous"), "anonymous", frozenset(SCOPES), False)
    secret = request.cookies.get(COOKIE, "")
    if not secret:
        raise AuthenticationError(
            "sign in to see the dashboard", field="session", fix="sign in with a token"
        )
    token = tokens.session(secret)
    return Viewer(
        client.acting_as(f"token:{token.name}"),
        token.name,
        frozenset(effective_scopes(token.scopes)),
    )


def sign_in(request: Request, token: str) -> tuple[str, int]:
    """A new session secret for ``token`` and how many seconds its cookie lives."""
    client: LocalClient = request.app.state.client
    secret, _ = client.stores.tokens.open_session(token.strip())
    return secret, int(SESSION_HOURS * 3600)


def sign_out(request: Request) -> None:
    secret = request.cookies.get(COOKIE, "")
    if secret:
        request.app.state.client.stores.tokens.close_session(secret)


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request that a page on another origin could have sent.

    Browsers send ``Origin`` on every POST (and ``Sec-Fetch-Site`` with it); a request
    with neither did not come from a browser form, so it gets the same answer.
    """
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.netloc == host and parts.scheme in ("http", "https"):
            return
    elif request.headers.get("sec-fetch-site") == "same-origin":
        return
    raise PermissionDeniedError(
        "this action must be sent from the dashboard's own pages",
        field="origin",
        fix="use the button on the page; requests from other sites are refused",
    )
