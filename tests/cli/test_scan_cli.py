"""`stoa scan`: exit codes 0/1/2, JSON and SARIF reports, and every bad input."""

from __future__ import annotations

import json
import pickle

from tests.artifacts import malicious_pickle
from tests.cli.test_cli import one_line_error, stoa  # noqa: F401 - the fixture


def test_scan_exit_codes_json_and_sarif(stoa, tmp_path):  # noqa: F811
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    evil = tmp_path / "weights.bin"
    evil.write_bytes(malicious_pickle())

    result = stoa("scan", str(clean), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["policy_version"].startswith("stoa-default/")
    [file] = report["files"]
    assert (file["format"], file["verdict"], file["reason"]) == ("pickle", "allowed", "clean")

    sarif = tmp_path / "out.sarif"
    result = stoa("scan", str(clean), str(evil), "--json", "--sarif", str(sarif))
    assert result.returncode == 1
    files = json.loads(result.stdout)["files"]
    assert [f["verdict"] for f in files] == ["allowed", "blocked"]
    finding = files[1]["findings"][0]
    assert set(finding) >= {"rule", "severity", "message", "location"}
    assert finding["location"] == {"path": str(evil), "offset": 2, "opcode": "GLOBAL"}
    assert "1 of 2 blocked" in result.stderr
    doc = json.loads(sarif.read_text())
    assert doc["version"] == "2.1.0" and doc["runs"][0]["tool"]["driver"]["name"] == "stoa-scan"
    [res] = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "pickle-global"]
    assert res["level"] == "error" and "os.system" in res["message"]["text"]
    assert res["locations"][0]["physicalLocation"]["region"] == {"byteOffset": 2}

    table = stoa("scan", str(evil))
    assert table.returncode == 1 and "os.system" in table.stdout and "blocked" in table.stdout
    assert "[critical]" in table.stdout  # severities are text, not Rich markup


def test_scan_licence_policy(stoa, tmp_path):  # noqa: F811
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.pkl").write_bytes(pickle.dumps([1, 2]))
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# A model\n")
    result = stoa("scan", str(folder), "--json")
    assert result.returncode == 1
    [file] = json.loads(result.stdout)["files"]
    assert (file["reason"], file["license"]) == ("license", "CC-BY-NC-4.0")
    assert file["findings"][-1]["rule"] == "license-review"
    allowed = stoa("scan", str(folder / "weights.pkl"), "--license", "MIT", "--json")
    assert allowed.returncode == 0
    unknown = stoa("scan", str(folder / "weights.pkl"), "--require-license", "--json")
    assert json.loads(unknown.stdout)["files"][0]["reason"] == "license"


def test_scan_bad_input_exits_2_with_one_line(stoa, tmp_path):  # noqa: F811
    one_line_error(stoa("scan", str(tmp_path / "nope.pkl")), 2, "paths", "does not exist")
    target = tmp_path / "x.pkl"
    target.write_bytes(pickle.dumps(1))
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("version: v\npickle:\n  allow:\n    os: ['sys*']\n")
    one_line_error(stoa("scan", str(target), "--policy", str(bad_policy)), 2, "wildcards")
    one_line_error(
        stoa("scan", str(target), "--policy", str(tmp_path / "none.yaml")), 2, "cannot read"
    )
    one_line_error(stoa("scan", str(target), "--license", "not a licence!"), 2, "SPDX")
    one_line_error(
        stoa("scan", str(target), "--sarif", str(tmp_path / "no" / "dir" / "x.sarif")),
        2,
        "cannot write",
    )
    assert stoa("scan").returncode == 2  # no path at all: usage error


def test_hashes_on_request_and_the_deny_list_blocks_inside_folders(stoa, tmp_path):  # noqa: F811
    import hashlib

    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / "weights.pkl"
    weights.write_bytes(pickle.dumps([1, 2, 3]))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    plain = json.loads(stoa("scan", str(weights), "--json").stdout)["files"][0]
    assert plain["sha256"] is None
    hashed = json.loads(stoa("scan", str(weights), "--hash", "--json").stdout)["files"][0]
    assert hashed["sha256"] == digest
    policy = tmp_path / "deny.yaml"
    policy.write_text(f"version: deny/1\ndeny_sha256: [{digest}]\n")
    result = stoa("scan", str(folder), "--policy", str(policy), "--json")
    assert result.returncode == 1
    [finding] = [
        f for f in json.loads(result.stdout)["files"][0]["findings"] if f["rule"] == "deny-hash"
    ]
    assert digest in finding["message"] and finding["location"]["path"].endswith("weights.pkl")
