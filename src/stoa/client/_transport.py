"""The two ways a resource reaches Stoa: the stores in this process, or a server over HTTP.

A resource method is written once; which of these two it runs over is decided when the
client is built, never by the method.
"""

from __future__ import annotations

import copy
import getpass
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from stoa.core import errors
from stoa.core.blobs import BlobStore
from stoa.core.db import Database
from stoa.core.errors import IntegrityError, StoaError, UnreachableError
from stoa.core.settings import Settings
from stoa.core.tokens import TokenStore
from stoa.govern.gate import Gate
from stoa.govern.registry import Registry
from stoa.govern.scan.policy import load_policy
from stoa.govern.scan.scan_gate import ScanGate
from stoa.govern.webhooks import parse_hooks


def default_actor() -> str:
    try:
        return os.environ.get("STOA_USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


class Local:
    """The stores named by ``Settings``, and who is acting on them."""

    def __init__(self, settings: Settings, *, gate: Gate | None = None, actor: str | None = None):
        self.settings = settings
        settings.resolved_home.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.resolved_database_url)
        self.blobs = BlobStore(settings.resolved_blob_url)
        self.hooks = parse_hooks(settings.webhooks)
        self.registry = Registry(self.db, self.blobs, self.hooks)
        self.tokens = TokenStore(self.db)
        self.gate: Gate = gate or ScanGate(load_policy(settings.scan_policy))
        self.actor = actor or default_actor()
        self._kbs_box: list[Any] = []  # shared by every acting_as view of these stores
        self._solutions_box: list[Any] = []
        self._serving_box: list[Any] = []

    @property
    def scan_gate(self) -> ScanGate:
        """The gate whose policy scans and pulls apply: the default one when a test or a
        plug-in installed a gate that is not the scanner."""
        return self.gate if isinstance(self.gate, ScanGate) else ScanGate()

    @property
    def kbs(self) -> Any:
        """Imported on first use: the CLI's other commands do not pay for NumPy and models."""
        if not self._kbs_box:
            from stoa.develop.rag.kb import KnowledgeBases

            self._kbs_box.append(
                KnowledgeBases(
                    self.db,
                    self.settings.resolved_home,
                    registry=self.registry,
                    embedders=self.settings.embedders,
                )
            )
        return self._kbs_box[0]

    @property
    def solutions(self) -> Any:
        """The solution runner's environment: its caches live as long as these stores."""
        if not self._solutions_box:
            from stoa.develop.llm.cache import GenerationCache
            from stoa.develop.solution.runner import Environment

            cache = GenerationCache(self.db)
            self._solutions_box.append(Environment(self.registry, self.kbs, self.settings, cache))
        return self._solutions_box[0]

    @property
    def serving(self) -> Any:
        """The data plane (endpoints, logbook, feedback), started on first use; a server
        starts it with the app and closes it, flushing the logbook, on shutdown."""
        if not self._serving_box or self._serving_box[0].closed:
            from stoa.serve.serving import Serving

            self._serving_box[:] = [Serving(self)]  # a server that stopped closed the last
        return self._serving_box[0]

    def acting_as(self, actor: str) -> Local:
        """The same stores, with changes recorded under ``actor`` (the server's callers)."""
        view = copy.copy(self)
        view.actor = actor
        return view

    def close(self) -> None:
        for serving in self._serving_box:
            serving.close()
        for kbs in self._kbs_box:
            kbs.close()
        self.db.dispose()


_ERRORS = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, StoaError)
}


class Http:
    """A Stoa server's ``/api/v1``; its error bodies become the same ``StoaError`` classes."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def unreachable(self, exc: httpx.TransportError) -> UnreachableError:
        """A connection that failed, as one clear error instead of httpx's."""
        return UnreachableError(
            f"cannot reach the Stoa server at {self.url}: {type(exc).__name__}: {exc}",
            field="url",
            fix="check --url / STOA_URL, and that `stoa server` is running there",
        )

    def fetch(self, path: str, sha256: str, dest: Path) -> Path:
        """Stream one file through a temporary name; ``dest`` only ever holds verified bytes."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".stoa-")
        try:
            with os.fdopen(fd, "wb") as out, self.http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise IntegrityError(f"download of {path} does not match its hash", field="sha256")
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                raise self.unreachable(exc) from None
            if isinstance(exc, httpx.RemoteProtocolError):
                # The server checks a large blob's hash while streaming it and breaks off
                # on a mismatch.
                raise IntegrityError(
                    f"the server broke off the download of {path}",
                    field="sha256",
                    fix="the stored copy may fail its hash check; see the server log",
                ) from None
            raise
        os.replace(tmp, dest)
        return dest


def seg(value: Any) -> str:
    """One URL path segment, quoted so that a reference can never add or remove levels."""
    text = quote(str(value), safe="@")
    return text.replace(".", "%2E") if text in (".", "..") else text


def error_from(response: httpx.Response) -> StoaError:
    try:
        body = response.json()["error"]
        cls = _ERRORS.get(body.get("code"), StoaError)
        return cls(body["message"], field=body.get("field"), fix=body.get("fix"))
    except (ValueError, KeyError, TypeError):
        return StoaError(f"server answered {response.status_code}: {response.text[:200]}")


Transport = Local | Http
