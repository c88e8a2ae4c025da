"""Stoa: govern, build, run and measure AI solutions.

The Python API users import lives here; everything else is an implementation detail.
"""

__version__ = "0.1.0"

from stoa.client import Client, HttpClient, LocalClient
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
from stoa.core.settings import Settings

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
]
