"""API tokens: shown once, stored as a SHA-256 of the secret, checked in constant time.

A token reads ``stoa_<id>_<secret>``. The secret has 256 bits of entropy, so a plain
SHA-256 is enough; a slow password hash would only slow every request down.
Scopes nest: ``admin`` implies ``write``, which implies ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select

from stoa.core.db import Database
from stoa.core.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from stoa.core.names import validate_name
from stoa.core.schema import AuditEvent, BrowserSession, Token, utcnow

SCOPES = ("read", "write", "admin")
_TOUCH = timedelta(minutes=1)
#: How long a dashboard sign-in lasts before the browser must sign in again.
SESSION_HOURS = 12
#: How long a "no tokens yet" answer is trusted before the database is asked again.
NO_TOKENS_RECHECK_S = 1.0
_IMPLIED = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}


class TokenInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class NewToken(TokenInfo):
    token: str  # the only time the secret is ever shown


def check_scopes(scopes: Iterable[str]) -> list[str]:
    scopes = sorted(set(scopes))
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise InvalidInputError(
            f"unknown or missing scope(s): {', '.join(bad) or 'none given'}",
            field="scopes",
            fix=f"use one or more of {', '.join(SCOPES)}",
        )
    return scopes


def effective_scopes(scopes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= _IMPLIED.get(scope, set())
    return out


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: Token) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        scopes=row.scopes.split(","),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class TokenStore:
    def __init__(self, db: Database):
        self.db = db
        self._enabled = False  # once True, always True: no need to ask the database again
        self._no_until = 0.0  # a "no" from the database holds until this monotonic time

    def create(self, name: str, scopes: Iterable[str], *, actor: str) -> NewToken:
        validate_name(name)
        scopes = check_scopes(scopes)
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.db.write() as session:
            row = Token(
                id=token_id, name=name, secret_sha256=_digest(secret), scopes=",".join(scopes)
            )
            session.add(row)
            session.add(
                AuditEvent(
                    actor=actor,
                    action="token:create",
                    subject=f"token:{token_id}",
                    detail={"name": name, "scopes": scopes},
                )
            )
            session.flush()
            self._enabled = True  # erring towards closed if the commit then fails
            return NewToken(**_info(row).model_dump(), token=f"stoa_{token_id}_{secret}")

    def list(self) -> list[TokenInfo]:
        with self.db.read() as session:
            return [_info(r) for r in session.scalars(select(Token).order_by(Token.created_at))]

    def revoke(self, token_id: str, *, actor: str) -> TokenInfo:
        with self.db.write() as session:
            row = session.get(Token, token_id)
            if row is None:
                raise NotFoundError(
                    f"no token {token_id!r}", field="id", fix="see `stoa tokens list`"
                )
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.add(
                    AuditEvent(
                        actor=actor, action="token:revoke", subject=f"token:{token_id}", detail={}
                    )
                )
            return _info(row)

    def any_active(self) -> bool:
        """Whether some token can still authenticate."""
        return self._exists(Token.revoked_at.is_(None))

    def auth_enabled(self) -> bool:
        """Whether tokens were ever set up; once they were, revoking them all locks the API
        rather than opening it again. A "yes" is final. Another process may create the
        first token, so a "no" is asked again after ``NO_TOKENS_RECHECK_S``: a query per
        request would cost a loopback server more than the read it guards. The first
        token created in this process counts at once."""
        if self._enabled:
            return True
        now = time.monotonic()
        if now < self._no_until:
            return False
        self._enabled = self._exists()
        self._no_until = now + NO_TOKENS_RECHECK_S
        return self._enabled

    def _exists(self, *where: Any) -> bool:
        with self.db.read() as session:
            return session.scalars(select(Token.id).where(*where).limit(1)).first() is not None

    def authenticate(self, token: str) -> TokenInfo:
        """The token's record, or AuthenticationError; revoked tokens never pass."""
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != "stoa" or not token_id or not secret:
            raise AuthenticationError(
                "malformed bearer token",
                field="Authorization",
                fix="send 'Authorization: Bearer stoa_<id>_<secret>'",
            )
        with self.db.read() as session:
            row = session.get(Token, token_id)
            if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
                raise AuthenticationError(
                    "unknown token",
                    field="Authorization",
                    fix="create one with `stoa tokens create`",
                )
            if row.revoked_at is not None:
                raise AuthenticationError(
                    "token was revoked",
                    field="Authorization",
                    fix="create a new token with `stoa tokens create`",
                )
            info = _info(row)
        now = utcnow()
        last = info.last_used_at
        if (
            last is None
            or now - (last if last.tzinfo else last.replace(tzinfo=now.tzinfo)) > _TOUCH
        ):
            # Touch at most once a minute, so that reads do not take the write lock.
            with self.db.write() as session:
                session.get(Token, token_id).last_used_at = now
        return info

    def open_session(self, token: str, hours: float = SESSION_HOURS) -> tuple[str, TokenInfo]:
        """A browser session for a valid token: a new random secret for the cookie, whose
        SHA-256 alone is stored. Expired sessions are pruned on the way."""
        info = self.authenticate(token)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.write() as session:
            session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
            session.add(
                BrowserSession(
                    id_sha256=_digest(secret),
                    token_id=info.id,
                    created_at=now,
                    expires_at=now + timedelta(hours=hours),
                )
            )
        return secret, info

    def session(self, secret: str) -> TokenInfo:
        """The token behind a browser session; it must be unexpired and its token not
        revoked, so revoking a token signs its browsers out."""
        with self.db.read() as session:
            row = session.get(BrowserSession, _digest(secret)) if secret else None
            if row is None or row.expires_at <= utcnow():
                raise AuthenticationError(
                    "your dashboard session has expired or was signed out",
                    field="session",
                    fix="sign in again with a token",
                )
            token = session.get(Token, row.token_id)
            if token is None or token.revoked_at is not None:
                raise AuthenticationError(
                    "the token this session signed in with was revoked",
                    field="session",
                    fix="sign in again with a valid token",
                )
            return _info(token)

    def close_session(self, secret: str) -> None:
        with self.db.write() as session:
            session.execute(
                delete(BrowserSession).where(BrowserSession.id_sha256 == _digest(secret))
            )


def require_scope(token: TokenInfo | None, scope: str) -> None:
    """None means the server runs open on loopback with no tokens configured."""
    if token is not None and scope not in effective_scopes(token.scopes):
        raise PermissionDeniedError(
            f"token {token.name!r} lacks the {scope!r} scope",
            field="scope",
            fix=f"use a token created with --scope {scope}",
        )
