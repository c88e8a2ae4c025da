"""The scans page: a writer uploads a file and sees the verdict and findings; a reader
sees why there is no form, and a forged upload of theirs is refused."""

from __future__ import annotations

import os
import pickle
from typing import Any

import httpx
import pytest

from tests.ui.conftest import SHOTS, WIDTHS

pytestmark = pytest.mark.xdist_group("ui")


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def _checked(visitor: Any, shot: str) -> Any:
    """What ``visit`` checks and saves, for a page a form POST rendered."""
    page = visitor.page
    page.wait_for_load_state("networkidle")
    assert not visitor.errors, visitor.errors
    visitor.check_accessibility(shot)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{shot} is {overflow}px wider than a {width}px window"
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{shot}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    return page


def _upload(writer: Any, path: Any, license: str = "") -> Any:
    page = writer.visit("/ui/scans")
    page.set_input_files("#file", str(path))
    if license:
        page.fill("#license", license)
    page.click("form.scan-upload button[type=submit]")
    page.wait_for_selector("#verdict")
    return page


def test_a_malicious_pickle_is_blocked_with_its_finding(visitor, tmp_path) -> None:
    writer = visitor("write")
    writer.visit("/ui/scans", "scans")
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(_Payload()))
    page = _upload(writer, evil)
    _checked(writer, "scan-blocked")
    assert "blocked" in page.locator("#verdict").inner_text()
    row = page.locator(".scan-result tbody tr").first.inner_text()
    assert "model.pkl" in row and "blocked" in row and "malicious" in row
    findings = page.locator("table.findings").inner_text()
    assert "system" in findings and "critical" in findings.lower()


def test_a_clean_safetensors_file_is_allowed(visitor, tmp_path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": np.ones((3, 3), dtype=np.float32)}, path)
    writer = visitor("write")
    page = _upload(writer, path, license="MIT")
    _checked(writer, "scan-allowed")
    assert "allowed" in page.locator("#verdict").inner_text()
    row = page.locator(".scan-result tbody tr").first.inner_text()
    assert "weights.safetensors" in row and "clean" in row and "MIT" in row


def test_a_reader_sees_no_form_and_a_forged_upload_is_refused(visitor, stoa) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/scans", "scans-reader")
    assert page.locator("input[type=file]").count() == 0
    assert "needs the write scope" in page.locator("main").inner_text()
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    forged = httpx.post(
        f"{stoa.url}/ui/scans",
        cookies={"stoa_session": secret},
        headers={"origin": stoa.url},
        files={"file": ("model.pkl", pickle.dumps({"a": 1}))},
    )
    assert forged.status_code == 403 and "write" in forged.text


def test_a_post_with_no_file_says_so(visitor, stoa) -> None:
    writer = visitor("write")
    secret = next(c for c in writer.context.cookies() if c["name"] == "stoa_session")["value"]
    empty = httpx.post(f"{stoa.url}/ui/scans", cookies={"stoa_session": secret},
                       headers={"origin": stoa.url}, data={"license": ""})  # fmt: skip
    assert empty.status_code == 422 and "choose a file" in empty.text
