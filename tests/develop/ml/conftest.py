"""Fixtures shared with the CLI and API tests."""

from tests.cli.test_cli import stoa  # noqa: F401
from tests.serve.conftest import api, app  # noqa: F401
