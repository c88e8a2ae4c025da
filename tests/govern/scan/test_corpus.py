"""The scanner against the generated corpus: every malicious file blocked for the right reason,
every benign file (real libraries, real formats) allowed.

The corpus is written once per module into a temporary folder (see ``corpus.py``). Scans use the
default policy with licences allowed, so that a licence decision never stands in for, or hides,
a security verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stoa.govern.scan import scan_paths
from stoa.govern.scan.findings import FileReport
from stoa.govern.scan.policy import Policy, load_policy
from tests.govern.scan import corpus
from tests.govern.scan.corpus import CaseInfo

REASONS = {"malicious", "parse-error", "budget", "unknown-format"}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text("version: corpus-test\nlicenses:\n  default: allow\n")
    return load_policy(path)


@pytest.fixture(scope="module")
def malicious(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaseInfo]:
    return corpus.malicious_corpus(tmp_path_factory.mktemp("malicious"))


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return corpus.benign_corpus(tmp_path_factory.mktemp("benign"))


def scan_one(path: Path, policy: Policy) -> FileReport:
    report = scan_paths([path], policy=policy)
    assert len(report.files) == 1, f"one file scanned, got {len(report.files)}"
    return report.files[0]


def explain(result: FileReport) -> str:
    lines = [f"verdict={result.verdict} reason={result.reason} format={result.format}"]
    lines += [f"  {f.reason:<14} {f.rule}: {f.message}" for f in result.findings]
    return "\n".join(lines)


# Case id -> why it is a known gap (written down in docs/scanning.md). Strict xfails, so a
# fix makes them fail loudly. None at the moment.
KNOWN_GAPS: dict[str, str] = {}


def _with_gaps(ids: list[str]) -> list:
    return [
        pytest.param(i, marks=pytest.mark.xfail(reason=KNOWN_GAPS[i], strict=True))
        if i in KNOWN_GAPS
        else i
        for i in ids
    ]


@pytest.mark.parametrize("case_id", _with_gaps(corpus.malicious_case_ids()))
def test_malicious_file_is_blocked(
    case_id: str, malicious: dict[str, CaseInfo], policy: Policy
) -> None:
    case = malicious[case_id]
    result = scan_one(case.path, policy)
    context = f"{case_id}: {case.description}\nsource: {case.source}\n{explain(result)}"
    assert result.verdict == "blocked", context
    assert result.reason in case.accepted_reasons, context
    if case.culprits:
        messages = [f.message for f in result.findings if f.blocks]
        named = any(culprit in message for message in messages for culprit in case.culprits)
        assert named, f"no blocking finding names any of {case.culprits}\n{context}"


@pytest.mark.parametrize("case_id", _with_gaps(corpus.benign_case_ids()))
def test_benign_file_is_allowed(case_id: str, benign: dict[str, Path], policy: Policy) -> None:
    result = scan_one(benign[case_id], policy)
    assert result.verdict == "allowed", f"{case_id}\n{explain(result)}"
    assert not [f for f in result.findings if f.blocks], f"{case_id}\n{explain(result)}"


def test_corpus_cases_are_well_formed(malicious: dict[str, CaseInfo]) -> None:
    assert list(malicious) == corpus.malicious_case_ids()
    for case_id, case in malicious.items():
        assert case.path.is_file() and case.path.stat().st_size > 0, case_id
        assert case.source.startswith("https://"), case_id
        assert set(case.accepted_reasons) <= REASONS, case_id
