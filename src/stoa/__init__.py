"""Stoa: govern, develop, serve and measure AI solutions.

The Python API users import lives here; everything else is an implementation detail.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from stoa.core.errors import (
    AuthenticationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RefusedError,
    StoaError,
)

if TYPE_CHECKING:
    from stoa.client import Client, HttpClient, LocalClient, start_run
    from stoa.core.settings import Settings
    from stoa.develop.active_run import active_run

# Imported on first use: the clients pull in SQLAlchemy, httpx and pydantic-settings, which
# code that only scans files (stoa.govern.scan) or prints --help should not pay for.
_LAZY = {
    "Client": "stoa.client",
    "HttpClient": "stoa.client",
    "LocalClient": "stoa.client",
    "Settings": "stoa.core.settings",
    "start_run": "stoa.client",
    "active_run": "stoa.develop.active_run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stoa' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AuthenticationError",
    "Client",
    "ConflictError",
    "HttpClient",
    "IntegrityError",
    "InvalidInputError",
    "LocalClient",
    "NotFoundError",
    "PermissionDeniedError",
    "RefusedError",
    "Settings",
    "StoaError",
    "__version__",
    "active_run",
    "start_run",
]
