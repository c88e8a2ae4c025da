from concurrent.futures import ProcessPoolExecutor

from sqlalchemy import inspect, text

from stoa.core.db import Database


def test_migrates_on_first_use_and_is_idempotent(db_url):
    db = Database(db_url)
    assert db.current_revision() == db.head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert {"series", "versions", "version_tags", "aliases", "tokens", "lineage_links"} <= tables
    Database(db_url).migrate()  # a second open does nothing and does not fail
    db.dispose()


def test_sqlite_pragmas(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_write_rolls_back_on_error(db_url):
    db = Database(db_url)
    try:
        with db.write() as session:
            session.execute(
                text(
                    "INSERT INTO series (kind, name, created_at, latest_version) "
                    "VALUES ('model', 'x', CURRENT_TIMESTAMP, 0)"
                )
            )
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM series")).scalar() == 0


def _open(url: str) -> str | None:
    db = Database(url)
    revision = db.current_revision()
    db.dispose()
    return revision


def test_concurrent_first_use_migrates_once(db_url):
    with ProcessPoolExecutor(4) as pool:
        revisions = list(pool.map(_open, [db_url] * 4))
    assert len(set(revisions)) == 1 and revisions[0] is not None


def test_schema_matches_the_models(db_url):
    """Migrations and ORM models must never drift: autogenerate finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from stoa.core.schema import Base

    db = Database(db_url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == []


def test_head_revision_constant_matches_the_migration_files(tmp_path):
    from stoa.core.db import HEAD_REVISION

    assert Database(f"sqlite:///{tmp_path / 'h.db'}").head_revision() == HEAD_REVISION


def test_unusable_databases_are_configuration_errors(tmp_path):
    import pytest

    from stoa.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="is not a database URL"):
        Database("nonsense")
    with pytest.raises(ConfigurationError, match="cannot use the database") as info:
        Database("postgresql://postgres@127.0.0.1:1/none")
    assert info.value.field == "database_url"
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Database(url)
    with Database(url, migrate=False).engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigurationError, match="newer than this Stoa knows"):
        Database(url)


def test_every_time_read_back_carries_its_utc_offset(client) -> None:
    """SQLite keeps no zone: knowledge-base and token times came back naive (issue 12)."""
    token = client.tokens.create("t", ["read"])
    [listed] = client.tokens.list()
    run = client.runs.create("r")
    times = [listed.created_at, client.runs.get(run.id).info.created_at, token.created_at]
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in times)
