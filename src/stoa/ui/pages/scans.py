"""Scans: upload a model file and see the verdict, each file's reason and licence, and
the findings by severity, under the server's policy. Nothing is stored.

Uploading needs ``write``, as ``POST /api/v1/scans`` does: the server reads and parses
every uploaded byte. The server's upload limit applies here too (the gatekeeper counts
the body as it streams in).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from stoa.core.errors import InvalidInputError
from stoa.govern.scan.findings import SEVERITY_ORDER
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)


@router.get("/scans", response_class=HTMLResponse)
def scans(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    return _page(request, who, None)


@router.post("/scans", response_class=HTMLResponse, dependencies=[Depends(check_same_origin)])
def scan(
    request: Request,
    who: Viewer = Depends(viewer),
    file: UploadFile | None = File(None),
    license: str = Form(""),
) -> HTMLResponse:
    who.require("write")
    from stoa.serve.server.routes import save_uploads

    if file is None or not file.filename:
        raise InvalidInputError("choose a file to scan", field="file", fix="attach a model file")

    with tempfile.TemporaryDirectory(prefix="stoa-ui-scan-") as tmp:
        path = save_uploads([file], None, Path(tmp))
        report = who.client.scans.create(path, license=license.strip() or None)
    return _page(request, who, report, filename=file.filename or path.name)


def _page(
    request: Request, who: Viewer, report: dict[str, Any] | None, filename: str = ""
) -> HTMLResponse:
    settings = who.client.stores.settings
    return page(
        request, who, "scans/scan.html", section="scans", title="Scans", report=report,
        filename=filename, files=[_by_severity(f) for f in (report or {}).get("files", [])],
        max_upload_mb=settings.max_upload_mb,
    )  # fmt: skip


def _by_severity(file: dict[str, Any]) -> dict[str, Any]:
    """A file's findings, most severe first, with a count per severity."""
    rank = {s: i for i, s in enumerate(reversed(SEVERITY_ORDER))}
    findings = sorted(file["findings"], key=lambda f: rank.get(f["severity"], len(rank)))
    counts = {s: sum(f["severity"] == s for f in findings) for s in reversed(SEVERITY_ORDER)}
    return {**file, "findings": findings, "counts": {s: n for s, n in counts.items() if n}}
