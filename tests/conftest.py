"""Shared fixtures: every store test runs on real SQLite and real PostgreSQL.

PostgreSQL comes from ``STOA_TEST_POSTGRES_URL`` (``make test`` sets it to the local
server). Each test gets its own schema, dropped afterwards, so tests never share
state. When the variable is set but the server is down the tests fail, never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

POSTGRES_URL = os.environ.get("STOA_TEST_POSTGRES_URL")


def _pg_admin_url() -> str:
    assert POSTGRES_URL
    url = POSTGRES_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own."""
    if not POSTGRES_URL:
        pytest.skip("STOA_TEST_POSTGRES_URL is not set (make test sets it)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{_pg_admin_url()}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stoa.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(tmp_path: Path, db_url: str):
    from stoa.core.settings import Settings

    return Settings(home=tmp_path / "home", database_url=db_url)


@pytest.fixture
def client(settings) -> Iterator:
    from stoa.client import LocalClient

    c = LocalClient(settings=settings, actor="tester")
    yield c
    c.close()


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator:
    """For tests whose subject is not the database: SQLite only, to stay fast."""
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    c = LocalClient(settings=Settings(home=tmp_path / "home"), actor="tester")
    yield c
    c.close()


@pytest.fixture(scope="session")
def sk_model():
    """A real fitted scikit-learn model and the data to check its predictions."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return LogisticRegression().fit(x, y), x


@pytest.fixture(scope="session")
def skops_file(tmp_path_factory: pytest.TempPathFactory, sk_model) -> Path:
    import skops.io

    path = tmp_path_factory.mktemp("skops") / "model.skops"
    skops.io.dump(sk_model[0], path)
    return path


@pytest.fixture
def both(tmp_path: Path) -> Iterator:
    """A local client and an HTTP client over the real app, on the same home."""
    from fastapi.testclient import TestClient

    from stoa.client import HttpClient, LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server import create_app

    settings = Settings(home=tmp_path / "home")
    app = create_app(settings)
    local = LocalClient(settings=settings, actor="me")
    with TestClient(app, base_url="http://127.0.0.1") as http:
        remote = HttpClient("http://127.0.0.1")
        remote._transport.http = http  # the same wire, without a socket
        http.base_url = "http://127.0.0.1/api/v1"
        yield local, remote, http
    local.close()
    app.state.client.close()
