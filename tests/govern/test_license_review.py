"""Issue 12, item 2: a declared licence cannot skip the licence review.

The attack: re-register the same bytes with ``license=MIT`` while the model's own card
says CC-BY-NC-4.0. It must stay held for review, and an admin's decision must follow
the bytes under any name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stoa.core.errors import RefusedError
from stoa.govern.scan.policy import load_policy
from stoa.govern.scan.scan_gate import ScanGate
from tests.artifacts import write_safetensors


def _model(folder: Path, card_license: str, value: float = 1.0) -> Path:
    folder.mkdir()
    write_safetensors(folder / "model.safetensors", value)
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text(f"---\nlicense: {card_license}\n---\n# model\n")
    return folder


def test_a_declared_licence_cannot_clear_one_the_policy_sends_to_review(client, tmp_path):
    nc = _model(tmp_path / "nc", "cc-by-nc-4.0")
    info = client.models.register("nc", nc, license="MIT")
    assert info.status == "pending", info.findings
    codes = {f["code"] for f in info.findings}
    assert "license-conflict" in codes
    assert any("CC-BY-NC-4.0" in f["message"] for f in info.findings)
    with pytest.raises(RefusedError, match="pending"):
        client.models.load("nc@1")


def test_licence_sources_that_disagree_go_to_review(client, tmp_path):
    both_allowed = _model(tmp_path / "m", "apache-2.0")
    info = client.models.register("m", both_allowed, license="MIT")
    assert info.status == "pending"
    assert [f["code"] for f in info.findings] == ["license-conflict"]
    agreeing = client.models.register("m", both_allowed, license="Apache-2.0")
    assert agreeing.status == "allowed" and agreeing.version == 2


def test_a_detected_licence_the_policy_blocks_stays_blocked(tmp_path):
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    extension = tmp_path / "policy.yaml"
    extension.write_text("version: block-nc\nlicenses:\n  block: [CC-BY-NC-4.0]\n")
    gate = ScanGate(load_policy(extension))
    client = LocalClient(settings=Settings(home=tmp_path / "h"), gate=gate)
    info = client.models.register("nc", _model(tmp_path / "nc", "cc-by-nc-4.0"), license="MIT")
    assert info.status == "blocked"
    assert any(f["code"] == "license-blocked" for f in info.findings)
    client.close()


def test_a_rejection_applies_to_the_content_under_any_name_or_licence(client, tmp_path):
    nc = _model(tmp_path / "nc", "cc-by-nc-4.0")
    client.models.register("nc", nc)
    client.models.reject("nc@1", note="legal said no")
    again = client.models.register("renamed", nc, license="MIT")
    assert again.status == "blocked"
    rejected = [f for f in again.findings if f["code"] == "license-rejected"]
    assert (
        rejected and "nc@1" in rejected[0]["message"] and "legal said no" in rejected[0]["message"]
    )
    same_name = client.models.register("nc", nc, license="Apache-2.0")
    assert same_name.status == "blocked" and same_name.version == 1 and not same_name.created


def test_an_approval_applies_to_the_content(client, tmp_path):
    nc = _model(tmp_path / "nc", "cc-by-nc-4.0")
    client.models.register("nc", nc)
    client.models.approve("nc@1", note="research use")
    copy = client.models.register("nc-copy", nc)
    assert copy.status == "allowed"
    assert any(f["code"] == "license-approved" for f in copy.findings)
    other = client.models.register("other", _model(tmp_path / "o", "cc-by-nc-4.0", value=2.0))
    assert other.status == "pending"  # other bytes: a fresh review


def test_a_version_approved_after_review_loads(client, tmp_path):
    """Found trying `stoa models predict` on an approved model: it had no flavor."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "nc-sk"
    folder.mkdir()
    path = folder / "model.skops"
    skops.io.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path)
    held = client.models.register("sk", path, license="CC-BY-NC-4.0")
    assert held.status == "pending" and held.flavor == "sklearn"
    client.models.approve("sk@1", note="fine")
    assert client.models.load("sk@1").predict([[1.0]]).tolist() == [1]
