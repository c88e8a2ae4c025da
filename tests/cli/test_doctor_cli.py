"""`stoa doctor` on the command line: a table or JSON, exit 1 only when a check failed,
and never a traceback or a password."""

from __future__ import annotations

import json
import socket

from tests.cli.test_cli import clean_env, stoa  # noqa: F401 - fixture

SECRET = "not-for-your-terminal"


def test_a_new_home_is_warnings_only_and_exits_0(stoa, tmp_path):  # noqa: F811
    env = {k: v for k, v in clean_env(STOA_HOME=str(tmp_path / "home")).items()
           if k != "RAY_ADDRESS"}  # fmt: skip
    result = stoa("doctor", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["home"]["status"] == "warn" and rows["home"]["ok"] is True
    assert {"database", "blobs", "embeddings", "ray"} <= set(rows)
    assert not (tmp_path / "home").exists()


def test_an_unreachable_database_fails_with_exit_1_and_no_password(stoa, tmp_path):  # noqa: F811
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = clean_env(
        STOA_HOME=str(tmp_path / "home"),
        STOA_DATABASE_URL=f"postgresql://stoa:{SECRET}@127.0.0.1:{port}/stoa",
        COLUMNS="80",
    )
    result = stoa("doctor", "--ray", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = " ".join(result.stdout.split())
    for fragment in ("database", "fail", "cannot connect", "ray blobs", "warn"):
        assert fragment in text, result.stdout
