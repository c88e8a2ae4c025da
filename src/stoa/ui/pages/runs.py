"""The runs pages: a searchable table, one run with its curves, and runs side by side.

The table speaks ``stoa runs list``'s search language as query parameters (``param``,
``tag``, ``metric``, ``name``, ``status``, ``parent``, ``order_by``) and pages with
``limit`` and ``page``, so a search bookmarked in the browser is the same search the CLI
runs. Curves come from ``metric_curve`` (``metric_history`` thinned on the server to at
most ``MAX_POINTS`` points each), so a run with 100,000 points still sends a small page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from stoa.core.errors import InvalidInputError, StoaError
from stoa.develop.tracking import CURVE_POINTS, RUN_STATUSES, parse_condition
from stoa.govern.types import RunDetail
from stoa.ui.render import UiRoute, attachment, page
from stoa.ui.session import Viewer, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: Rows per page of the runs table unless ``limit`` says otherwise, and the most it may.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: Points per drawn curve: enough for any screen's width, small enough to send.
MAX_POINTS = CURVE_POINTS
#: Charts on one page; further metric keys are listed, with the CLI command for each.
MAX_CHARTS = 12
#: Metric keys whose history a page reads while looking for curves worth drawing.
MAX_KEYS_READ = 40
#: How many runs the compare page takes.
COMPARE_MIN, COMPARE_MAX = 2, 10
#: Metrics shown by default in the table, after name, status and created.
DEFAULT_METRICS = 3
#: Children listed on a run's page; the rest are one link away.
CHILDREN_SHOWN = 10
#: The query parameters that narrow the search (the rest shape the table).
_FILTERS = ("param", "tag", "metric", "name", "status", "parent")
#: The table's fixed columns, as ``stoa runs list --columns`` names them.
RUN_FIELDS = ("id", "name", "status", "created", "ended", "by", "parent")
#: What each fixed column sorts by, as ``order_by`` names it.
_ORDER_FIELD = {"name": "name", "status": "status", "created": "created_at", "ended": "ended_at"}
#: Metric names where a lower value is the better one (for "best" in compare).
_LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "latency", "_ms", "seconds",
                    "perplexity", "cost", "time")  # fmt: skip


# -- the runs table ---------------------------------------------------------------------


def _pairs(items: Sequence[str], field: str) -> dict[str, str]:
    """``KEY=VALUE`` items, as ``stoa runs list --param`` takes them."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"{item!r} is not KEY=VALUE", field=field, fix=f"write {field} as key=value"
            )
        out[key.strip()] = value.strip()
    return out


def _filled(items: Sequence[str]) -> list[str]:
    """The repeated inputs a form sent, without the blank ones it always has."""
    return [item.strip() for item in items if item.strip()]


def _condition_key(condition: str) -> str | None:
    try:
        return parse_condition(condition)[0]
    except StoaError:
        return None


def _default_columns(runs: list[RunDetail], prefer: Sequence[str]) -> list[str]:
    """Name, status and created, then a few metrics: those the search was about, then the
    ones whose values differ between the runs shown, then the rest."""
    keys = sorted({k for r in runs for k in r.metrics})
    varying = [k for k in keys if len({r.metrics.get(k) for r in runs} - {None}) > 1]
    ordered = [k for k in prefer if k in keys]
    ordered += [k for k in varying + keys if k not in ordered]
    return ["name", "status", "created", *(f"metrics.{k}" for k in ordered[:DEFAULT_METRICS])]


def _check_columns(columns: Sequence[str]) -> list[str]:
    out: list[str] = []
    for key in columns:
        source, dot, rest = key.partition(".")
        if key not in RUN_FIELDS and not (dot and rest and source in ("metrics", "params", "tags")):
            raise InvalidInputError(
                f"{key!r} is not a column",
                field="columns",
                fix=f"use {', '.join(RUN_FIELDS)}, metrics.KEY, params.KEY or tags.KEY",
            )
        if key not in out:
            out.append(key)
    return out


def _cell(run: RunDetail, key: str) -> Any:
    """A table cell's value: fixed fields by name, logged ones by ``source.key``."""
    info = run.info
    fixed = {"id": info.id[:8], "name": info.name, "status": info.status,
             "created": info.created_at, "ended": info.ended_at, "by": info.created_by,
             "parent": (info.parent_id or "")[:8]}  # fmt: skip
    if key in fixed:
        return fixed[key]
    source, name = key.split(".", 1)
    return getattr(run, source).get(name)


def _sort_link(request: Request, key: str, order_by: str) -> tuple[str, str | None]:
    """The header link that orders by ``key`` (flipping the order when it already does),
    and the column's ``aria-sort``."""
    field = _ORDER_FIELD.get(key, key if "." in key else None)
    if field is None:
        return "", None
    current = order_by or "-created_at"
    state = None
    if current.lstrip("+-") == field:
        state = "descending" if current.startswith("-") else "ascending"
    target = field if state == "descending" else f"-{field}"
    return _url(request, order_by=target, page=None), state


def _url(request: Request, **changes: Any) -> str:
    """This page's address with some query parameters replaced (None: removed)."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    items += [(k, v) for k, v in changes.items() if v is not None]
    query = urlencode(items)
    return request.url.path + (f"?{query}" if query else "")


@router.get("/runs", response_class=HTMLResponse)
def runs_list(
    request: Request,
    who: Viewer = Depends(viewer),
    param: list[str] = Query([]),
    tag: list[str] = Query([]),
    metric: list[str] = Query([]),
    name: str = "",
    status: str = "",
    parent: str = "",
    order_by: str = "",
    columns: list[str] = Query([]),
    limit: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    page_: int = Query(1, ge=1, alias="page"),
) -> HTMLResponse:
    params, tags, metrics = _filled(param), _filled(tag), _filled(metric)
    filters = {"param": params, "tag": tags, "metric": metrics, "name": name.strip(),
               "status": status.strip(), "parent": parent.strip(), "order_by": order_by.strip(),
               "limit": limit}  # fmt: skip
    error = None
    runs: list[RunDetail] = []
    try:
        chosen = _check_columns(_filled(columns))
        runs = who.client.runs.search(
            params=_pairs(params, "param"), tags=_pairs(tags, "tag"), metrics=metrics,
            name=filters["name"] or None, status=filters["status"] or None,
            parent_id=filters["parent"] or None, order_by=filters["order_by"] or None,
            limit=limit + 1, offset=(page_ - 1) * limit,
        )  # fmt: skip
    except InvalidInputError as exc:
        error = f"{exc.message}" + (f": {exc.fix}" if exc.fix else "")
        chosen = []
    more = len(runs) > limit
    runs = runs[:limit]
    prefer = [filters["order_by"].lstrip("+-").removeprefix("metrics.")]
    prefer += [k for k in map(_condition_key, metrics) if k]
    shown = chosen or _default_columns(runs, prefer)
    available = list(RUN_FIELDS)
    for source in ("metrics", "params", "tags"):
        logged = sorted({k for r in runs for k in getattr(r, source)})
        available += [f"{source}.{k}" for k in logged]
    available += [k for k in shown if k not in available]
    headers = []
    for key in shown:
        href, sort = _sort_link(request, key, filters["order_by"])
        headers.append({"key": key, "href": href, "sort": sort,
                        "num": key.startswith("metrics.")})  # fmt: skip
    rows = [{"run": r, "cells": [(k, _cell(r, k)) for k in shown]} for r in runs]
    return page(
        request, who, "runs/list.html", status=422 if error else 200, section="runs",
        title="Runs", filters=filters, error=error, rows=rows, headers=headers,
        available=available, shown=shown, statuses=RUN_STATUSES, page_number=page_,
        previous=_url(request, page=page_ - 1 if page_ > 2 else None) if page_ > 1 else None,
        next=_url(request, page=page_ + 1) if more else None,
        first=(page_ - 1) * limit + 1, filtered=any(filters[k] for k in _FILTERS),
    )  # fmt: skip


# -- curves -----------------------------------------------------------------------------


def _curve(who: Viewer, run_id: str, key: str) -> tuple[list[int], list[float], int]:
    """One metric's curve by step, thinned on the server, and how many steps it had."""
    found = who.client.runs.metric_curve(run_id, key, max_points=MAX_POINTS)
    return found.steps, found.values, found.total


def _chart(key: str, curves: list[tuple[str, list[int], list[float]]]) -> dict[str, Any]:
    return {
        "type": "lines",
        "x": {"label": "step", "unit": ""},
        "y": {"label": key, "unit": ""},
        "series": [{"label": label, "x": xs, "y": ys} for label, xs, ys in curves],
    }


def _charts(who: Viewer, runs: list[tuple[str, str | None]], keys: list[str]) -> dict[str, Any]:
    """One chart per metric key with every run's curve (labelled by run, or by the key
    when the label is None). Keys logged at a single step are not drawn (their value is
    in the table); at most ``MAX_CHARTS`` charts, after looking at ``MAX_KEYS_READ`` keys."""
    charts: list[dict[str, Any]] = []
    single: list[str] = []
    thinned = False
    for index, key in enumerate(keys[:MAX_KEYS_READ]):
        if len(charts) == MAX_CHARTS:
            break
        curves, most, cut = [], 0, False
        for run_id, label in runs:
            xs, ys, total = _curve(who, run_id, key)
            cut = cut or total > len(xs)
            most = max(most, total)
            curves.append((key if label is None else label, xs, ys))
        if most < 2:
            single.append(key)
            continue
        thinned = thinned or cut
        charts.append({"id": f"curve-{index}", "key": key, "points": most, "thinned": cut,
                       "spec": _chart(key, curves)})  # fmt: skip
    seen = {c["key"] for c in charts} | set(single)
    return {"charts": charts, "single": single, "thinned": thinned,
            "more_keys": [k for k in keys if k not in seen], "max_points": MAX_POINTS}  # fmt: skip


# -- one run ----------------------------------------------------------------------------


def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _version_link(ref: str, kind: str) -> tuple[str, str]:
    """A lineage node ``name@version`` as (label, its dashboard page)."""
    name, _, version = ref.rpartition("@")
    return ref, f"/ui/{kind}s/{quote(name, safe='')}/{quote(version, safe='')}"


@router.get("/runs/compare", response_class=HTMLResponse)
def runs_compare(
    request: Request, who: Viewer = Depends(viewer), ids: list[str] = Query([])
) -> HTMLResponse:
    chosen = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not COMPARE_MIN <= len(chosen) <= COMPARE_MAX:
        raise InvalidInputError(
            f"compare {COMPARE_MIN} to {COMPARE_MAX} runs; {len(chosen)} were chosen",
            field="ids",
            fix="tick between two and ten runs in the runs table, then Compare selected",
        )
    runs = who.client.runs.compare(chosen)
    names = [r.info.name for r in runs]
    labels = [
        n if names.count(n) == 1 else f"{n} ({r.info.id[:8]})"
        for n, r in zip(names, runs, strict=True)
    ]
    param_rows = []
    for key in sorted({k for r in runs for k in r.params}):
        values = [r.params.get(key) for r in runs]
        param_rows.append({"key": key, "cells": values, "diff": len(set(values)) > 1})
    metric_rows = []
    for key in sorted({k for r in runs for k in r.metrics}):
        values = [r.metrics.get(key) for r in runs]
        present = [v for v in values if v is not None]
        lower = _lower_is_better(key)
        best = (min(present) if lower else max(present)) if len(present) > 1 else None
        metric_rows.append({"key": key, "cells": values, "best": best, "lower": lower})
    shared = sorted(set.intersection(*(set(r.metrics) for r in runs)))
    curves = _charts(
        who, [(r.info.id, label) for r, label in zip(runs, labels, strict=True)], shared
    )
    return page(
        request, who, "runs/compare.html", section="runs", title="Compare runs", runs=runs,
        labels=labels, param_rows=param_rows, metric_rows=metric_rows,
        differing=sum(r["diff"] for r in param_rows), **curves,
    )  # fmt: skip


def _lower_is_better(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _LOWER_IS_BETTER)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, who: Viewer = Depends(viewer)) -> HTMLResponse:
    client = who.client
    run = client.runs.get(run_id)
    info = run.info
    lineage = client.runs.lineage(info.id, depth=1)
    inputs = [_version_link(n.ref, n.type) for n in lineage.upstream if n.type == "dataset"]
    outputs = [(*_version_link(n.ref, n.type), n.type) for n in lineage.downstream
               if n.type in ("model", "prompt", "dataset")]  # fmt: skip
    children = client.runs.search(parent_id=info.id, limit=CHILDREN_SHOWN + 1)
    curves = _charts(who, [(info.id, None)], sorted(run.metrics))
    artifacts = [{**a, "href": f"/ui/runs/{info.id}/artifacts/"
                  + "/".join(quote(p, safe="") for p in a["path"].split("/"))}
                 for a in run.artifacts]  # fmt: skip
    return page(
        request, who, "runs/show.html", section="runs", title=f"Run {info.name}", run=run,
        info=info, duration=_duration(info.created_at, info.ended_at), inputs=inputs,
        outputs=outputs, children=children[:CHILDREN_SHOWN],
        more_children=len(children) > CHILDREN_SHOWN, artifacts=artifacts, **curves,
    )  # fmt: skip


@router.get("/runs/{run_id}/artifacts/{path:path}")
def run_artifact(
    run_id: str, path: str, who: Viewer = Depends(viewer), file: str | None = None
) -> Response:
    """An artifact's bytes (a folder's file list, or with ``file`` one of its files), as
    the REST route sends them, offered as a download."""
    who.require("read")
    response: Response = who.client.runs._artifact(run_id, path, file)
    filename = (file or path).rsplit("/", 1)[-1]
    if response.headers.get("x-stoa-artifact") == "folder":
        filename += ".manifest.json"
    return attachment(response, filename)
