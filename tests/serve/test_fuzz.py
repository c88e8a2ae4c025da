"""Property-based fuzzing of every route from the OpenAPI schema, against a real uvicorn
server with token auth on: whatever a caller sends, the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from stoa.core.settings import Settings
from stoa.serve.server import create_app
from stoa.serve.server.routes import build_router
from tests.servers import serve_in_thread

pytestmark = pytest.mark.slow  # creating a knowledge base loads the real MiniLM

# The schema comes from the same router the server mounts; no store is needed for it.
_spec = FastAPI()
_spec.include_router(build_router(), prefix="/api/v1")
schema = schemathesis.openapi.from_dict(_spec.openapi())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    home = Path(tmp_path_factory.mktemp("fuzz")) / "home"
    app = create_app(Settings(home=home, max_upload_mb=4, max_json_mb=4))
    admin = app.state.client.tokens.create("fuzz", ["admin"]).token
    try:
        with serve_in_thread(app) as url:
            yield url, {"Authorization": f"Bearer {admin}"}
    finally:
        app.state.client.close()


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_5xx(case, server) -> None:
    url, auth = server
    response = case.call(base_url=url, headers=auth, timeout=60)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
