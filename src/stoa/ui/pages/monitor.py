"""Is an endpoint still working: its business metrics now against before, drift per
column (reference against current distribution, the test, its score and threshold, the
decision) with the dataset-level decision, and quality over time once labels arrive.
One call, ``client.monitor.report``, as ``stoa monitor report`` makes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from stoa.core.errors import StoaError
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: The windows offered as links; any duration the report reads (``90m``, ``3d``) works.
WINDOWS = ("1h", "6h", "24h", "7d")
#: A variant's quality is charted from this many windows on; fewer are only a table.
CHART_FROM = 3
#: Quality figures charted, one chart each.
QUALITY = (("accuracy", "Accuracy"), ("f1", "F1 (macro)"))
#: Words for each test a drift column may use: what the score means.
TESTS = {
    "ks": "Kolmogorov-Smirnov p-value (drift below the threshold)",
    "chisquare": "chi-squared p-value (drift below the threshold)",
    "z": "two-proportion z-test p-value (drift below the threshold)",
    "wasserstein": "Wasserstein distance / reference std (drift at or above)",
    "jensenshannon": "Jensen-Shannon distance (drift at or above)",
    "psi": "population stability index (drift at or above)",
    "domain_classifier": "domain classifier AUC (drift at or above)",
    "centroid_distance": "distance between centroids (drift at or above)",
}


@router.get("/endpoints/{name}/monitor", response_class=HTMLResponse)
def monitor(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    window: str = Query("24h", max_length=16, description="the current window, e.g. 24h"),
    reference: str = Query("", max_length=300, description="logbook:START/END or a dataset"),
) -> HTMLResponse:
    info = who.client.endpoints.show(name)
    report, problem, status = None, None, 200
    try:
        report = who.client.monitor.report(name, window=window, reference=reference or None)
    except StoaError as exc:
        problem, status = {"message": exc.message, "fix": exc.fix}, exc.http_status
    return page(
        request, who, "measure/monitor.html", section="endpoints",
        title=f"{name} · monitoring", info=info, report=report, problem=problem,
        window=window, reference=reference, windows=WINDOWS, tests=TESTS,
        metrics=metric_rows(report["metrics"]) if report else [],
        quality=quality_view(report["quality"]) if report else None,
        base=f"/ui/endpoints/{quote(name)}", status=status,
    )  # fmt: skip


def metric_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each metric now and before, and whether the change is for the better."""
    rows = []
    for m in metrics:
        now, before = m["current"], m["previous"]
        change = None if now is None or before is None else now - before
        good = None
        if change:
            good = (change > 0) == (m["direction"] == "higher")
        rows.append({**m, "change": change, "good": good})
    return rows


def quality_view(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The quality table, and a chart per figure when some variant has enough windows;
    x is hours before now."""
    variants = sorted({p["variant"] for p in points})
    per = {v: [p for p in points if p["variant"] == v] for v in variants}
    charts = []
    if any(len(rows) >= CHART_FROM for rows in per.values()):
        now = datetime.now(UTC).timestamp()
        for key, title in QUALITY:
            series = [{"label": v, "x": [round((_ts(p["start"]) - now) / 3600, 3) for p in rows],
                       "y": [p[key] for p in rows]} for v, rows in per.items()]  # fmt: skip
            spec = {"type": "lines", "x": {"label": "window start, hours before now", "unit": "h"},
                    "y": {"label": title, "unit": ""}, "series": series}  # fmt: skip
            charts.append({"id": f"quality-{key}", "title": f"{title} per variant", "spec": spec})
    return {"rows": points, "variants": variants, "charts": charts}


def _ts(value: datetime | str) -> float:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
