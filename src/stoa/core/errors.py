"""One hierarchy for every error Stoa raises on purpose.

Each error names the *field* that was wrong and the *fix*, so the HTTP layer and
the CLI can translate it into a 4xx body or a one-line message in one place each.
"""

from __future__ import annotations

from typing import Any


class StoaError(Exception):
    """Base of every deliberate Stoa error."""

    code = "error"
    #: HTTP status the server answers with.
    http_status = 400
    #: CLI exit code: 2 for bad input, 1 for a refused operation.
    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.fix = fix

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field, "fix": self.fix}

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} ({self.fix})" if self.fix else text


class InvalidInputError(StoaError):
    """Input that can never succeed as given: a malformed name, a bad file, a bad value."""

    code = "invalid_input"
    http_status = 422


class NotFoundError(StoaError):
    """A reference that names nothing stored."""

    code = "not_found"
    http_status = 404


class ConflictError(StoaError):
    """The request is well-formed but clashes with what is stored."""

    code = "conflict"
    http_status = 409
    exit_code = 1


class RefusedError(StoaError):
    """A policy said no: a blocked model, a version that is not allowed to load."""

    code = "refused"
    http_status = 409
    exit_code = 1


class AuthenticationError(StoaError):
    """No valid bearer token."""

    code = "unauthenticated"
    http_status = 401


class PermissionDeniedError(StoaError):
    """A valid token without the scope the operation needs."""

    code = "forbidden"
    http_status = 403


class IntegrityError(StoaError):
    """Stored bytes no longer match their hash: the store was corrupted or tampered with."""

    code = "integrity"
    http_status = 500
    exit_code = 1


class UnreachableError(StoaError):
    """A Stoa server (or another configured service) did not answer at all."""

    code = "unreachable"
    http_status = 502
    exit_code = 1


class OverloadedError(StoaError):
    """The server cannot take the request now (a full logbook queue, a rate limit); the
    caller may retry after ``retry_after_s``. Nothing was recorded for it."""

    code = "overloaded"
    http_status = 503
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        fix: str | None = None,
        retry_after_s: float = 1.0,
    ):
        super().__init__(message, field=field, fix=fix)
        self.retry_after_s = retry_after_s


class RateLimitedError(OverloadedError):
    """A caller went over its request rate."""

    code = "rate_limited"
    http_status = 429


class TimedOutError(StoaError):
    """A step or a request ran past its time limit."""

    code = "timeout"
    http_status = 504
    exit_code = 1


class ConfigurationError(StoaError):
    """Settings that cannot work, such as a public bind address without tokens."""

    code = "configuration"
    http_status = 500


def yaml_problem(exc: Exception) -> str:
    """A YAML parser error on one line: what is wrong and where (PyYAML spreads it over five)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def from_validation(exc: Any, where: str, fix: str | None = None) -> InvalidInputError:
    """A pydantic ``ValidationError`` as one ``InvalidInputError``: its first error, the
    field named under ``where`` (``metric.window``), pydantic's "Value error, " prefix
    dropped, so a spec's error reads like every other bad input."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return InvalidInputError(message, field=f"{where}.{loc}" if loc else where, fix=fix)
