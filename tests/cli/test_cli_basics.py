"""The conventions every command keeps (docs/cli.md): help, version, --json, empty
answers, times, and saying which home is in use."""

from __future__ import annotations

import re

from stoa import __version__
from stoa.core.settings import Settings
from tests.cli.test_cli import clean_env, ok_json, one_line_error, stoa  # noqa: F401 - fixture

ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00")
SOME_OTHER_TIME = re.compile(r"\d\d:\d\d:\d\d(?!\+00:00)(\.\d+)?(Z| |$)|T\d\d:\d\d")


def test_a_bare_group_prints_its_help_and_exits_0(stoa):  # noqa: F811
    for args in [(), ("models",), ("runs",)]:
        result = stoa(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Usage: stoa"), result.stdout
        assert "Commands:" in result.stdout and result.stderr == ""


def test_version_and_short_help_work_on_every_command(stoa):  # noqa: F811
    version = stoa("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"stoa {__version__}")
    for args in [("-h",), ("models", "-h"), ("models", "show", "-h"), ("runs", "list", "-h"),
                 ("kb", "query", "-h"), ("status", "-h")]:  # fmt: skip
        result = stoa(*args)
        assert result.returncode == 0 and "Usage: stoa" in result.stdout, (args, result.stderr)
        assert "-h, --help" in result.stdout


def test_help_shows_boolean_flags_as_flags(stoa):  # noqa: F811
    for args in [("models", "show"), ("runs", "list"), ("scan",), ("kb", "ingest"), ()]:
        text = stoa(*args, "--help").stdout
        assert "<bool>" not in text, (args, text)
    shown = stoa("models", "show", "--help").stdout
    assert re.search(r"^\s+--json\s+Print machine-readable JSON", shown, re.M), shown


def test_json_is_accepted_by_unalias_download_render_and_init(stoa, tmp_path, skops_file):  # noqa: F811
    initialised = ok_json(stoa("init", "--json"))
    assert initialised["home"] == str(tmp_path / "home") and initialised["created"] is True
    assert initialised["schema"] and initialised["blob_url"].endswith("blobs")
    assert ok_json(stoa("init", "--json"))["created"] is False

    ok_json(stoa("models", "register", "m", str(skops_file), "--license", "MIT", "--json"))
    ok_json(stoa("models", "alias", "m", "1", "champion", "--json"))
    removed = ok_json(stoa("models", "unalias", "m", "champion", "--json"))
    assert removed == {"kind": "model", "name": "m", "alias": "champion", "removed": True}

    out = tmp_path / "copy.skops"
    downloaded = ok_json(stoa("models", "download", "m@1", str(out), "--json"))
    assert (downloaded["ref"], downloaded["path"]) == ("m@1", str(out))
    assert downloaded["size"] == out.stat().st_size == skops_file.stat().st_size

    ok_json(stoa("prompts", "register", "hi", "--template", "Hi {{ who }}", "--json"))
    rendered = ok_json(stoa("prompts", "render", "hi", "--set", "who=Ada", "--json"))
    assert rendered == {"ref": "hi", "values": {"who": "Ada"}, "text": "Hi Ada"}


def test_empty_lists_print_one_line_and_json_stays_empty(stoa):  # noqa: F811
    for args, line in [
        (("models", "list"), "no models yet; register one with `stoa models register NAME PATH`"),
        (("prompts", "list"), "no prompts yet; register one with"),
        (("datasets", "list"), "no datasets yet; register one with"),
        (("runs", "list"), "no runs yet; record one with `stoa runs create NAME`"),
        (("runs", "list", "--status", "failed"), "no run matches these filters"),
        (("models", "search", "--tag", "team=x"), "no model version matches these filters"),
        (("tokens", "list"), "no tokens yet; create one with"),
    ]:
        result = stoa(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(line) and len(result.stdout.splitlines()) == 1, (
            args,
            result.stdout,
        )
        assert ok_json(stoa(*args, "--json")) == []


def test_human_output_shows_every_time_in_iso_8601_with_its_utc_offset(stoa, tmp_path):  # noqa: F811
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n")
    ok_json(stoa("datasets", "register", "d", str(csv), "--json"))
    run = ok_json(stoa("runs", "create", "fit", "--input", "d@1", "--json"))
    ok_json(stoa("tokens", "create", "ci", "--json"))
    wide = clean_env(STOA_HOME=str(tmp_path / "home"), COLUMNS="200")
    for args in [("datasets", "versions", "d"), ("datasets", "show", "d"), ("datasets", "list"),
                 ("runs", "list"), ("runs", "show", run["id"]), ("tokens", "list")]:  # fmt: skip
        result = stoa(*args, env=wide)
        assert result.returncode == 0, result.stderr
        assert ISO_WITH_OFFSET.search(result.stdout), (args, result.stdout)
        assert not SOME_OTHER_TIME.search(result.stdout), (args, result.stdout)


def test_a_new_home_is_announced_once_on_stderr(stoa, tmp_path):  # noqa: F811
    bare = clean_env()  # no STOA_HOME: the default ./.stoa in the working folder
    first = stoa("models", "list", env=bare)
    assert first.returncode == 0
    assert first.stderr.strip() == (
        f"note: created a new Stoa home at {tmp_path / '.stoa'} "
        "(choose another with --home or STOA_HOME)"
    )
    again = stoa("models", "list", env=bare)
    assert again.returncode == 0 and again.stderr == ""
    # A failing first command still says where its home went, and its error is one line.
    other = clean_env(STOA_HOME=str(tmp_path / "elsewhere"))
    failed = stoa("models", "show", "nope", env=other)
    one_line_error(failed, 2, "no model named 'nope'")
    assert failed.stderr.startswith(f"note: created a new Stoa home at {tmp_path / 'elsewhere'}")


def test_status_names_the_home_database_and_blobs_and_counts_what_they_hold(stoa, tmp_path):  # noqa: F811
    bare = clean_env()
    before = ok_json(stoa("status", "--json", env=bare))
    assert before["home"] == str(tmp_path / ".stoa") and before["home_exists"] is False
    assert before["counts"] is None and not (tmp_path / ".stoa").exists()  # status creates none
    assert "not created yet" in stoa("status", env=bare).stdout

    ok_json(stoa("prompts", "register", "p", "--template", "x", "--json", env=bare))
    after = ok_json(stoa("status", "--json", env=bare))
    assert after["database_url"] == f"sqlite:///{tmp_path / '.stoa' / 'stoa.db'}"
    assert after["blob_url"] == str(tmp_path / ".stoa" / "blobs")
    assert after["server_url"] is None
    assert after["counts"] == {
        "models": 0, "model_versions": 0, "prompts": 1, "prompt_versions": 1, "datasets": 0,
        "dataset_versions": 0, "runs": 0, "knowledge_bases": 0,
    }  # fmt: skip
    table = stoa("status", env=clean_env(COLUMNS="200")).stdout  # a long path wraps at 80
    assert "prompt versions" in table and str(tmp_path / ".stoa") in table


def test_status_masks_the_database_password_and_names_the_server():
    from stoa.cli import home

    where = home._where(Settings(home="h", database_url="postgresql://stoa:s3cret@db/stoa"))
    assert "s3cret" not in where["database_url"] and "***" in where["database_url"]
    remote = home._where(Settings(url="https://stoa.example", token="t"))
    assert remote["server_url"] == "https://stoa.example" and remote["database_url"] is None
