"""Engine, sessions and migrate-on-first-use for SQLite and PostgreSQL.

SQLite runs in WAL mode with foreign keys and a busy timeout. Write transactions
start with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout
instead of failing when a read lock cannot be upgraded.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from stoa.core.errors import ConfigurationError

MIGRATIONS = Path(__file__).with_name("migrations")
#: The newest file in migrations/versions; tests check that the two agree.
HEAD_REVISION = "0011"
_SQLITE_BUSY_MS = 30_000
_PG_MIGRATION_LOCK = 0x5709A  # any constant shared by every Stoa process


def _normalise_url(url: str) -> str:
    """Send plain ``postgresql://`` URLs to psycopg 3, the driver Stoa depends on."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def masked(url: str) -> str:
    """The URL with its password hidden, for messages and `stoa init`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


_BY_DIALECT: dict[tuple[str, str], Any] = {}


def for_dialect(conn: Connection, name: str, build: Callable[[str, Any], Any]) -> Any:
    """A statement that differs between SQLite and PostgreSQL, built once per dialect.

    ``build`` gets the dialect's name and its ``insert`` (the one with ON CONFLICT).
    """
    dialect = conn.dialect.name
    key = (name, dialect)
    if key not in _BY_DIALECT:
        _BY_DIALECT[key] = build(dialect, pg_insert if dialect == "postgresql" else sqlite_insert)
    return _BY_DIALECT[key]


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"{url!r} is not a database URL",
            field="database_url",
            fix="use sqlite:///PATH or postgresql://USER@HOST/DB",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            # The busy timeout first: switching to WAL needs a lock, and without it a
            # process that opens the file while another migrates fails at once.
            cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
            _switch_to_wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            immediate = conn.get_execution_options().get("stoa_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r}",
        field="database_url",
        fix="use sqlite:///PATH or postgresql://USER@HOST/DB",
    )


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Switching a new file to WAL can answer "database is locked" at once, without the
    busy timeout, while another process is creating or switching the same file; it
    failed about one start in 40 when four began together on a loaded machine. Retry
    until the busy timeout would have expired."""
    deadline = time.monotonic() + _SQLITE_BUSY_MS / 1000
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


class Database:
    """The metadata store: open it once per process and share it."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = _normalise_url(url)
        self.engine = _make_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(stoa_write=True)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        if migrate:
            try:
                self.migrate()
            except OperationalError as exc:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise ConfigurationError(
                    f"cannot use the database at {masked(self.url)}: {reason}",
                    field="database_url",
                    fix="check that the server is running and the URL is right",
                ) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._write() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """``write()`` without an ORM session, for hot paths that run Core statements."""
        with self._write_engine.begin() as conn:
            yield conn

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def current_revision(self) -> str | None:
        """The schema revision stored in the database; None before the first migration."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def head_revision(self) -> str | None:
        """The newest migration shipped with this code."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def migrate(self) -> None:
        """Bring the schema to head; safe when many processes start at once.

        Checking costs one query against ``HEAD_REVISION``; Alembic itself is imported
        only when there is something to migrate, which keeps every CLI call fast.
        """
        head = HEAD_REVISION
        if self.current_revision() == head:
            return
        with self._migration_lock():
            if self.current_revision() == head:
                return
            from alembic import command

            self._refuse_newer_schema()
            with self.engine.begin() as conn:
                cfg = self._alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def _refuse_newer_schema(self) -> None:
        """A schema written by a newer Stoa must not be touched by this one."""
        from alembic.script import ScriptDirectory

        current = self.current_revision()
        known = {
            s.revision for s in ScriptDirectory.from_config(self._alembic_config()).walk_revisions()
        }
        if current is not None and current not in known:
            raise ConfigurationError(
                f"the database schema is at revision {current}, newer than this Stoa knows "
                f"(up to {HEAD_REVISION})",
                field="database_url",
                fix="upgrade Stoa, or point STOA_DATABASE_URL at another database",
            )

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_sqlite:
            database = make_url(self.url).database
            if not database or database == ":memory:":
                yield
                return
            with open(f"{database}.migrate-lock", "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()
