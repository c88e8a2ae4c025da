"""The overview: how much there is, what needs attention, and what changed lately."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: How many rows each list on the overview shows; each links to its full page.
RECENT = 10
#: Counting stops here: the overview shows "1000+" rather than paging through everything.
COUNT_CAP = 1000


def _count(rows: list[Any]) -> str:
    return f"{COUNT_CAP}+" if len(rows) >= COUNT_CAP else str(len(rows))


@router.get("", response_class=HTMLResponse)
def overview(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    client = who.client
    series = {kind: client.of_kind(kind).list() for kind in ("model", "prompt", "dataset")}
    versions = [
        v
        for kind in ("model", "prompt", "dataset")
        for v in client.of_kind(kind).search(limit=RECENT)
    ]
    versions.sort(key=lambda v: v.created_at, reverse=True)
    pending = [v for kind in ("model", "prompt", "dataset")
               for v in client.of_kind(kind).search(status="pending", limit=COUNT_CAP)]  # fmt: skip
    blocked = [v for kind in ("model", "prompt", "dataset")
               for v in client.of_kind(kind).search(status="blocked", limit=COUNT_CAP)]  # fmt: skip
    running = client.runs.search(status="running", limit=COUNT_CAP)
    failed = client.runs.search(status="failed", limit=COUNT_CAP)
    recent_runs = client.runs.search(order_by="-created_at", limit=RECENT)
    kbs = client.kbs.list()
    solutions = client.solutions.list()
    cards = [
        ("models", len(series["model"]), "/ui/models"),
        ("prompts", len(series["prompt"]), "/ui/prompts"),
        ("datasets", len(series["dataset"]), "/ui/datasets"),
        ("running runs", _count(running), "/ui/runs?status=running"),
        ("failed runs", _count(failed), "/ui/runs?status=failed"),
        ("knowledge bases", len(kbs), "/ui/kbs"),
        ("solutions", len(solutions), "/ui/solutions"),
        ("pending review", _count(pending), "/ui/review" if who.can("admin") else None),
        ("blocked versions", _count(blocked), None),
    ]
    return page(
        request, who, "overview.html", section="overview", title="Overview", cards=cards,
        versions=versions[:RECENT], pending=pending[:RECENT], blocked=blocked[:RECENT],
        running=running[:RECENT], failed=failed[:RECENT], recent_runs=recent_runs,
        activity=client.activity.recent(limit=20), kbs=kbs[:RECENT],
    )  # fmt: skip
