"""Selections: every ``stoa select`` run, its leaderboard, and quality against latency and
cost with the Pareto front, the recommendation and each constraint drawn on the chart.

A selection's parent run carries its whole result as the artifact ``selection.json``
(``develop.ml.select``); the page reads it through the runs artifact operation.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from stoa.govern.types import RunDetail
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: Selection runs listed at first; "Show more" doubles it, up to ``MAX_LIST``.
LIST_LIMIT = 50
MAX_LIST = 1000
#: Up to this many candidates each get their own colour and legend entry on a chart.
NAMED_POINTS = 8
PALETTE = ["#1f5fbf", "#c2410c", "#7c3aed", "#0e7490", "#a16207", "#be185d", "#4b5563",
           "#2563eb"]  # fmt: skip
FRONT_COLOR, PICK_COLOR, LIMIT_COLOR = "#111827", "#15803d", "#b3261e"


@router.get("/selections", response_class=HTMLResponse)
def selections(
    request: Request, who: Viewer = Depends(viewer), limit: int = Query(LIST_LIMIT, ge=1,
                                                                        le=MAX_LIST)
) -> HTMLResponse:  # fmt: skip
    from stoa.develop.ml.select import SELECTION_KIND

    found = who.client.runs.search(tags={"kind": SELECTION_KIND}, order_by="-created_at",
                                   limit=limit + 1)  # fmt: skip
    return page(
        request, who, "selections/list.html", section="selections", title="Selections",
        runs=found[:limit], more=len(found) > limit, next_limit=min(limit * 2, MAX_LIST),
    )  # fmt: skip


@router.get("/selections/{run_id}", response_class=HTMLResponse)
def selection(request: Request, run_id: str, who: Viewer = Depends(viewer)) -> HTMLResponse:
    run = who.client.runs.get(run_id)
    result = _result(who, run)
    if result is None:  # a run from before selections logged their result, or not one
        children = who.client.runs.search(parent_id=run.info.id, limit=100)
        return page(request, who, "selections/detail.html", section="selections",
                    title=run.info.name, run=run, result=None, children=children)  # fmt: skip
    from stoa.develop.ml.evaluate import LOWER_IS_BETTER

    primary = result["primary_metric"]
    sign = -1 if primary in LOWER_IS_BETTER else 1
    constraints = result.get("constraints") or {}
    rows = result["leaderboard"]
    scored = [r for r in rows if r.get("latency_ms") and r.get("cost_per_1k") is not None]
    latency = _scatter(scored, primary, sign, result.get("recommendation"), constraints,
                       x=lambda r: r["latency_ms"]["p95"], x_key="p95_ms",
                       x_axis={"label": "latency p95", "unit": "ms"})  # fmt: skip
    per, factor = _cost_scale([r["cost_per_1k"] for r in scored])
    cost = _scatter(scored, primary, sign, result.get("recommendation"), constraints,
                    x=lambda r: r["cost_per_1k"] * factor, x_key="cost_per_1k", x_scale=factor,
                    x_axis={"label": f"cost per {per} predictions", "unit": "USD"})  # fmt: skip
    drawn = {f"{b}_{n}" for b in ("min", "max") for n in ("p95_ms", "cost_per_1k", primary)}
    return page(
        request, who, "selections/detail.html", section="selections", title=run.info.name,
        run=run, result=result, rows=rows, primary=primary, constraints=constraints,
        latency_chart=latency if scored else None, cost_chart=cost if scored else None,
        constraint_text=", ".join(f"{k} = {v:g}" for k, v in constraints.items()) or "none",
        undrawn=", ".join(f"{k} = {v:g}" for k, v in constraints.items() if k not in drawn),
        lower_is_better=sign < 0, cost_per=per,
    )  # fmt: skip


def _cost_scale(costs: list[float]) -> tuple[str, float]:
    """Cost per 1,000 predictions is often millionths of a dollar, whose axis ticks run
    into each other: chart it per a million or a billion predictions instead."""
    top = max(costs, default=0.0)
    for per, factor in (("1,000", 1.0), ("1 million", 1e3), ("1 billion", 1e6)):
        if top * factor >= 0.1:
            return per, factor
    return "1 billion", 1e6


def _result(who: Viewer, run: RunDetail) -> dict[str, Any] | None:
    """The selection's logged result, read through the runs artifact operation."""
    from stoa.develop.ml.select import RESULT_ARTIFACT

    if not any(a.get("path") == RESULT_ARTIFACT for a in run.artifacts):
        return None
    with tempfile.TemporaryDirectory(prefix="stoa-ui-") as tmp:
        path = who.client.runs.download_artifact(run.info.id, RESULT_ARTIFACT,
                                                 Path(tmp) / RESULT_ARTIFACT)  # fmt: skip
        result = json.loads(path.read_text())
    return result if isinstance(result, dict) and "leaderboard" in result else None


def _front(points: list[tuple[float, float]], sign: int) -> list[tuple[float, float]]:
    """The candidates no other beats on both axes: cheaper or faster, and better."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if sign * y > best:
            front.append((x, y))
            best = sign * y
    return front


def _staircase(
    front: list[tuple[float, float]], x_end: float, y_start: float
) -> list[tuple[float, float]]:
    """The front as the edge of what it dominates: up (or down, when lower is better)
    from the worst quality to each front point, across to the next, and on to the plot's
    edge, so even a front of one candidate shows as a line."""
    steps: list[tuple[float, float]] = []
    previous = y_start
    for x, y in front:
        steps += [(x, previous), (x, y)]
        previous = y
    return [*steps, (x_end, previous)]


def _span(values: list[float]) -> tuple[float, float]:
    """The data's extent, padded so a constraint line reaches past the outer points."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.08 or 1.0
    return lo - pad, hi + pad


def _scatter(
    rows: list[dict[str, Any]],
    primary: str,
    sign: int,
    recommendation: str | None,
    constraints: dict[str, float],
    *,
    x: Callable[[dict[str, Any]], float],
    x_key: str,
    x_axis: dict[str, str],
    x_scale: float = 1.0,
) -> dict[str, Any]:
    """A uPlot scatter spec: each candidate, the front, the pick and constraint lines."""
    points = [(float(x(r)), float(r["metrics"][primary])) for r in rows
              if r["metrics"].get(primary) is not None]  # fmt: skip
    named = [r for r in rows if r["metrics"].get(primary) is not None]
    series: list[dict[str, Any]] = []
    if len(named) <= NAMED_POINTS:
        for i, (row, (px, py)) in enumerate(zip(named, points, strict=True)):
            series.append({"label": row["name"], "x": [px], "y": [py], "points": True,
                           "color": PALETTE[i % len(PALETTE)]})  # fmt: skip
    elif points:
        series.append({"label": "candidates", "x": [p[0] for p in points],
                       "y": [p[1] for p in points], "points": True,
                       "color": PALETTE[0]})  # fmt: skip
    vertical = {k: v for k, v in constraints.items() if k in (f"min_{x_key}", f"max_{x_key}")}
    horizontal = {k: v for k, v in constraints.items()
                  if k in (f"min_{primary}", f"max_{primary}")}  # fmt: skip
    if not points:
        return {"type": "scatter", "x": x_axis, "y": {"label": primary, "unit": ""},
                "series": series}  # fmt: skip
    x_lo, x_hi = _span([p[0] for p in points] + [v * x_scale for v in vertical.values()])
    y_lo, y_hi = _span([p[1] for p in points] + list(horizontal.values()))
    steps = _staircase(_front(points, sign), x_hi, y_lo if sign > 0 else y_hi)
    series.append({"label": "Pareto front", "x": [p[0] for p in steps],
                   "y": [p[1] for p in steps], "color": FRONT_COLOR})  # fmt: skip
    pick = next((p for r, p in zip(named, points, strict=True) if r["name"] == recommendation),
                None)  # fmt: skip
    if pick is not None:
        series.append({"label": f"recommendation: {recommendation}", "x": [pick[0]],
                       "y": [pick[1]], "points": True, "mark": True,
                       "color": PICK_COLOR})  # fmt: skip
    else:  # said in the legend, so its absence from the plot is not a mystery
        series.append({"label": "recommendation: none meets every constraint", "x": [],
                       "y": [], "points": True, "mark": True, "color": PICK_COLOR})  # fmt: skip
    for key, value in vertical.items():
        at = value * x_scale  # the label keeps the constraint's own unit
        series.append({"label": f"{key} = {value:g}", "x": [at, at], "y": [y_lo, y_hi],
                       "dash": True, "color": LIMIT_COLOR})  # fmt: skip
    for key, value in horizontal.items():
        series.append({"label": f"{key} = {value:g}", "x": [x_lo, x_hi], "y": [value, value],
                       "dash": True, "color": LIMIT_COLOR})  # fmt: skip
    return {"type": "scatter", "x": x_axis, "y": {"label": primary, "unit": ""},
            "series": series}  # fmt: skip
