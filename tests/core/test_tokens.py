import time

from stoa.core import tokens as tokens_module
from stoa.core.db import Database
from stoa.core.tokens import TokenStore


def test_a_first_token_made_elsewhere_closes_the_api_within_the_recheck(db_url) -> None:
    """Two server processes share one database: a "no tokens" answer is trusted for
    NO_TOKENS_RECHECK_S only, so the other process locks the API soon after."""
    here, elsewhere = TokenStore(Database(db_url)), TokenStore(Database(db_url))
    assert here.auth_enabled() is False
    elsewhere.create("ci", ["read"], actor="test")
    assert elsewhere.auth_enabled() is True  # the process that made it knows at once
    deadline = time.monotonic() + tokens_module.NO_TOKENS_RECHECK_S + 0.5
    while not here.auth_enabled():
        assert time.monotonic() < deadline, "the other process never saw the first token"
        time.sleep(0.05)


def test_without_the_recheck_window_every_call_asks(db_url, monkeypatch) -> None:
    monkeypatch.setattr(tokens_module, "NO_TOKENS_RECHECK_S", 0.0)
    here, elsewhere = TokenStore(Database(db_url)), TokenStore(Database(db_url))
    assert here.auth_enabled() is False
    elsewhere.create("ci", ["read"], actor="test")
    assert here.auth_enabled() is True
