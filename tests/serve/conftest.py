"""The REST API in process: FastAPI's TestClient over an app on the `settings` back-end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def app(settings):
    from stoa.serve.server import create_app

    app = create_app(settings, host="127.0.0.1")
    yield app
    app.state.client.close()


@pytest.fixture
def api(app) -> Iterator:
    """A TestClient that answers 500s like the real server instead of raising in the test."""
    from fastapi.testclient import TestClient

    # A loopback server answers only requests addressed to a loopback name.
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as http:
        yield http
