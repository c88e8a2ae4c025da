"""The `stoa` console script as users run it: a subprocess with its own STOA_HOME.

Exit codes: 0 done; 1 refused (a blocked model, a conflict); 2 usage error or bad input,
with exactly one line on stderr and never a traceback. Each invocation costs about a
second of imports, so each test groups the commands of one story.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stoa.client import LocalClient
from stoa.core.settings import Settings
from tests.artifacts import malicious_pickle, write_safetensors

_VENV_STOA = Path(sys.executable).parent / "stoa"
STOA = str(_VENV_STOA) if _VENV_STOA.exists() else shutil.which("stoa")


def clean_env(**settings: str) -> dict[str, str]:
    """The caller's environment without any STOA_* variable, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOA_")}
    env.update(STOA_USER="tester", **settings)
    return env


@pytest.fixture
def stoa(tmp_path):
    """Run `stoa ARGS` with STOA_HOME in tmp_path (or the given env) from tmp_path."""
    home_env = clean_env(STOA_HOME=str(tmp_path / "home"))

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [STOA, *args],
            env=env or home_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        return result

    return run


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


#: The one line besides an error that stderr may hold: the first command on a new home.
NEW_HOME_NOTE = "note: created a new Stoa home at "


def one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [x for x in result.stderr.strip().splitlines() if not x.startswith(NEW_HOME_NOTE)]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_models_register_show_alias_archive_and_download(stoa, tmp_path, skops_file):
    init = stoa("init")
    assert init.returncode == 0, init.stderr
    assert "Stoa home" in init.stdout and (tmp_path / "home" / "stoa.db").is_file()

    first = ok_json(
        stoa(
            "models",
            "register",
            "churn",
            str(skops_file),
            "--flavor",
            "sklearn",
            "--license",
            "MIT",
            "--tag",
            "team=risk",
            "--json",
        )
    )
    assert (first["name"], first["version"], first["status"]) == ("churn", 1, "allowed")
    assert first["sha256"] == sha256(skops_file)
    assert (first["flavor"], first["license"], first["tags"]) == (
        "sklearn",
        "MIT",
        {"team": "risk"},
    )
    w2 = write_safetensors(tmp_path / "w2.safetensors", 2.0)
    w3 = write_safetensors(tmp_path / "w3.safetensors", 3.0)
    second = ok_json(stoa("models", "register", "churn", str(w2), "--json"))
    assert (second["version"], second["sha256"], second["status"]) == (2, sha256(w2), "allowed")
    third = ok_json(stoa("models", "register", "churn", str(w3), "--tag", "team=growth", "--json"))
    assert third["version"] == 3

    alias = ok_json(stoa("models", "alias", "churn", "1", "champion", "--json"))
    assert (alias["alias"], alias["version"]) == ("champion", 1)

    assert ok_json(stoa("models", "show", "churn", "--json"))["version"] == 3
    assert ok_json(stoa("models", "show", "churn@3", "--json"))["sha256"] == sha256(w3)
    champion = ok_json(stoa("models", "show", "churn@champion", "--json"))
    assert (champion["version"], champion["aliases"]) == (1, ["champion"])

    [series] = ok_json(stoa("models", "list", "--json"))
    assert (series["name"], series["latest_version"], series["aliases"]) == (
        "churn",
        3,
        {"champion": 1},
    )
    assert [v["ref"] for v in ok_json(stoa("models", "versions", "churn", "--json"))] == [
        "churn@1",
        "churn@2",
        "churn@3",
    ]
    found = ok_json(stoa("models", "search", "--tag", "team=risk", "--json"))
    assert [v["ref"] for v in found] == ["churn@1"]

    # Archiving the alias target is a refused operation: exit 1, one line naming the alias.
    one_line_error(stoa("models", "archive", "churn@1", "--json"), 1, "champion")
    assert ok_json(stoa("models", "archive", "churn@2", "--json"))["status"] == "archived"
    history = ok_json(stoa("models", "aliases", "churn", "--json"))
    assert [(h["detail"]["alias"], h["detail"]["to"], h["actor"]) for h in history] == [
        ("champion", 1, "tester")
    ]

    out = tmp_path / "downloaded.skops"
    done = stoa("models", "download", "churn@champion", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == skops_file.read_bytes()

    table = stoa("models", "show", "churn@2")  # without --json: a table for people
    assert table.returncode == 0 and "churn@2" in table.stdout and "archived" in table.stdout


def test_refused_operations_exit_1(stoa, tmp_path):
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(malicious_pickle())
    blocked = stoa("models", "register", "risky", str(pkl), "--json")
    assert blocked.returncode == 1, blocked.stderr
    info = json.loads(blocked.stdout)  # the refusal still prints what was recorded
    assert (info["name"], info["version"], info["status"]) == ("risky", 1, "blocked")
    assert info["sha256"] == sha256(pkl) and info["findings"][0]["code"] == "pickle-global"

    out = tmp_path / "risky.pkl"
    one_line_error(stoa("models", "download", "risky", str(out)), 1, "blocked")
    assert not out.exists()
    one_line_error(stoa("models", "alias", "risky", "1", "prod"), 1, "blocked", "version")


def test_bad_input_exits_2_with_one_line(stoa, tmp_path, skops_file):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    for args, fragments in [
        (["models", "show", "bad name!", "--json"], ["ref", "is not a valid name"]),
        (["datasets", "register", "../etc", str(csv), "--json"], ["name", "looks like a path"]),
        (["models", "register", "churn", "missing.skops"], ["path", "does not exist"]),
        (["models", "show", "nope", "--json"], ["no model named 'nope'"]),
        (["models", "show", "nope@0"], ["versions run from 1"]),
        (["models", "alias", "churn", "1", "123"], ["alias", "is a number"]),
        (
            ["models", "register", "m", str(skops_file), "--license", "no way!"],
            ["license", "SPDX"],
        ),
        (
            ["models", "register", "m", str(skops_file), "--metadata", "{x"],
            ["metadata", "not valid JSON"],
        ),
        (["models", "search", "--tag", "nokv"], ["tag", "KEY=VALUE"]),
        (["tokens", "create", "t", "--scope", "root"], ["scopes", "root"]),
        (["models", "frobnicate"], ["No such command"]),
        (["models", "register"], ["Missing argument"]),
        (["models", "alias", "churn", "one", "champion"], ["'version'", "valid integer"]),
    ]:
        one_line_error(stoa(*args), 2, *fragments)

    home = tmp_path / "home"
    local = LocalClient(settings=Settings(home=home, database_url=None, blob_url=None))
    try:  # none of it stored anything
        assert local.models.list() == [] and local.datasets.list() == []
        assert local.tokens.list() == []
    finally:
        local.close()


def test_datasets_and_prompts(stoa, tmp_path):
    csv = tmp_path / "sales.csv"
    csv.write_text("region,amount\nnorth,10\nsouth,20\n")
    data = ok_json(stoa("datasets", "register", "sales", str(csv), "--tag", "src=crm", "--json"))
    assert (data["name"], data["version"], data["status"]) == ("sales", 1, "allowed")
    assert data["sha256"] == sha256(csv) and data["spec"]["rows"] == 2
    assert [s["name"] for s in ok_json(stoa("datasets", "list", "--json"))] == ["sales"]
    assert ok_json(stoa("datasets", "show", "sales", "--json"))["format"] == "csv"
    assert [v["version"] for v in ok_json(stoa("datasets", "versions", "sales", "--json"))] == [1]
    assert ok_json(stoa("datasets", "archive", "sales@1", "--json"))["status"] == "archived"

    first = ok_json(
        stoa(
            "prompts",
            "register",
            "greet",
            "--template",
            "Hello {{ name }}",
            "--var",
            "name",
            "--json",
        )
    )
    assert (first["name"], first["version"], first["status"]) == ("greet", 1, "allowed")
    template = tmp_path / "greet.j2"
    template.write_text("Hi {{ name }}, from {{ place }}")
    second = ok_json(stoa("prompts", "register", "greet", str(template), "--json"))
    assert second["version"] == 2 and second["sha256"] == sha256(template)

    rendered = stoa("prompts", "render", "greet@1", "--set", "name=Ada")
    assert rendered.returncode == 0 and rendered.stdout.strip() == "Hello Ada"
    extra = stoa("prompts", "render", "greet@1", "--set", "name=Ada", "--set", "mood=glad")
    assert extra.returncode == 0 and extra.stdout.strip() == "Hello Ada"
    assert "warning: mood is not a variable of greet@1, so it was not used" in extra.stderr
    missing = stoa("prompts", "render", "greet@1")
    assert missing.returncode == 2 and "missing value(s) for name" in missing.stderr
    [series] = ok_json(stoa("prompts", "list", "--json"))
    assert (series["name"], series["latest_version"]) == ("greet", 2)
    assert ok_json(stoa("prompts", "show", "greet", "--json"))["spec"]["variables"] == [
        "name",
        "place",
    ]
    assert len(ok_json(stoa("prompts", "versions", "greet", "--json"))) == 2
    assert ok_json(stoa("prompts", "archive", "greet@1", "--json"))["status"] == "archived"


def test_tokens_create_list_revoke(stoa):
    created = ok_json(stoa("tokens", "create", "ci", "--scope", "write", "--json"))
    assert created["token"].startswith(f"stoa_{created['id']}_") and created["scopes"] == ["write"]
    [listed] = ok_json(stoa("tokens", "list", "--json"))
    assert (listed["id"], listed["name"], listed["revoked_at"]) == (created["id"], "ci", None)
    assert "token" not in listed
    revoked = ok_json(stoa("tokens", "revoke", created["id"], "--json"))
    assert revoked["id"] == created["id"] and revoked["revoked_at"]
    one_line_error(stoa("tokens", "revoke", "nope"), 2, "no token 'nope'")


def test_home_and_database_url_options_match_the_variables(stoa, tmp_path, postgres_url):
    bare = clean_env()  # no STOA_HOME: the options alone must say where the stores are
    one, two = tmp_path / "one", tmp_path / "two"
    made = ok_json(
        stoa("--home", str(one), "prompts", "register", "p", "--template", "hi", "--json", env=bare)
    )
    assert made["ref"] == "p@1" and (one / "stoa.db").is_file()
    seen = ok_json(stoa("prompts", "list", "--json", env=clean_env(STOA_HOME=str(one))))
    assert [s["name"] for s in seen] == ["p"]
    # The option wins over the variable.
    other = clean_env(STOA_HOME=str(two))
    assert [
        s["name"] for s in ok_json(stoa("--home", str(one), "prompts", "list", "--json", env=other))
    ] == ["p"]
    assert not (tmp_path / ".stoa").exists()

    on_pg = ok_json(
        stoa(
            "--home",
            str(two),
            "--database-url",
            postgres_url,
            "prompts",
            "register",
            "q",
            "--template",
            "x",
            "--json",
            env=bare,
        )
    )
    assert on_pg["ref"] == "q@1" and not (two / "stoa.db").exists()
    pg_env = clean_env(STOA_HOME=str(two), STOA_DATABASE_URL=postgres_url)
    assert ok_json(stoa("prompts", "show", "q", "--json", env=pg_env))["sha256"] == on_pg["sha256"]


def test_runs_link_datasets_to_models(stoa, tmp_path, skops_file):
    csv = tmp_path / "train.csv"
    csv.write_text("x,y\n1,0\n2,1\n")
    ok_json(stoa("datasets", "register", "train", str(csv), "--json"))
    run = ok_json(stoa("runs", "create", "fit", "--input", "train@1", "--json"))
    model = stoa("models", "register", "m", str(skops_file), "--run-id", run["id"], "--json")
    assert ok_json(model)["version"] == 1
    lineage = ok_json(stoa("runs", "lineage", run["id"], "--json"))
    assert [n["ref"] for n in lineage["upstream"]] == ["train@1"]
    assert [n["ref"] for n in lineage["downstream"]] == ["m@1"]
    one_line_error(stoa("runs", "create", "fit", "--input", "nope@1"), 2, "no dataset named")
    bad = tmp_path / "latin1.j2"
    bad.write_bytes("caf\xe9 {{ x }}".encode("latin-1"))
    one_line_error(stoa("prompts", "register", "p", str(bad)), 2, "is not UTF-8 text")
    broken = clean_env(STOA_HOME=str(tmp_path / "h2"), STOA_DATABASE_URL="nonsense")
    one_line_error(stoa("models", "list", env=broken), 2, "database_url", "not a database URL")
