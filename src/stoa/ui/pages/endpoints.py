"""Endpoints: every endpoint with its split and last day's traffic; one endpoint's split
with a confirmed control to change it, its requests, p95 latency and errors per variant
over time, its per-variant summary and config history; its logbook as a searchable
table; and one prediction with its trace, feedback and shadows.

Changing traffic takes two posts: the first only previews (old share -> new share) and
writes nothing; the second, an explicit confirm carrying the config version that was
previewed, calls ``client.endpoints.set_traffic``. A confirm against a config that moved
in between is refused, so nobody applies a change they did not see.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stoa.core.errors import ConflictError, InvalidInputError, StoaError
from stoa.serve.endpoints import EndpointInfo, VariantInfo
from stoa.serve.predictions import MODES, STATUSES
from stoa.ui.pages.solutions import waterfall
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: The chart ranges: (seconds, bucket seconds, x-axis unit in seconds, unit name). Each
#: gives 30 to 48 buckets: enough to see a trend, and under the 60 points below which
#: the charts draw each point, so a lone busy bucket still shows.
RANGES: dict[str, tuple[int, int, int, str]] = {
    "1h": (3600, 120, 60, "min"),
    "6h": (6 * 3600, 600, 60, "min"),
    "24h": (24 * 3600, 1800, 3600, "h"),
    "7d": (7 * 24 * 3600, 4 * 3600, 3600, "h"),
}
#: The list page counts requests and errors over this window.
LIST_WINDOW = timedelta(hours=24)
#: Logbook rows per page.
LOG_PAGE = 50
#: Characters of an input or output shown in a logbook cell.
BRIEF = 140
#: The same colours as static/stoa.js, so a variant has one colour in bars and charts.
PALETTE = ["#1f5fbf", "#c2410c", "#15803d", "#7c3aed", "#be185d", "#0e7490",
           "#a16207", "#4b5563", "#dc2626", "#2563eb"]  # fmt: skip


# -- the list ------------------------------------------------------------------------------


@router.get("/endpoints", response_class=HTMLResponse)
def endpoints(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    since = datetime.now(UTC) - LIST_WINDOW
    rows = []
    for info in who.client.endpoints.list():
        live = [r for r in who.client.predictions.summary(info.name, since=since)
                if r["mode"] == "live"]  # fmt: skip
        requests = sum(r["predictions"] for r in live)
        errors = sum(r["errors"] for r in live)
        rows.append({"info": info, "split": split(info.variants), "requests": requests,
                     "error_rate": errors / requests if requests else None})  # fmt: skip
    return page(request, who, "endpoints/list.html", section="endpoints", title="Endpoints",
                rows=rows)  # fmt: skip


def split(variants: list[VariantInfo]) -> dict[str, Any]:
    """The split bar: each live variant's segment (offset and width in percent of the
    bar, its colour), each shadow's mirrored percent, and a sentence for screen readers."""
    segments, shadows, words = [], [], []
    offset = 0.0
    for index, v in enumerate(variants):
        color = PALETTE[index % len(PALETTE)]
        if v.mode == "live":
            width = v.share * 100
            segments.append({"name": v.name, "offset": round(offset, 3),
                             "width": round(width, 3), "pct": width, "color": color})  # fmt: skip
            words.append(f"{v.name} {_pct(width)}")
            offset += width
        else:
            shadows.append({"name": v.name, "pct": v.sample * 100, "color": color})
            words.append(f"shadow {v.name} mirrors {_pct(v.sample * 100)}")
    colors = {v.name: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)}
    return {"segments": segments, "shadows": shadows, "label": "; ".join(words),
            "colors": colors}  # fmt: skip


def _pct(value: float) -> str:
    return f"{value:.3g} %"


# -- one endpoint --------------------------------------------------------------------------


@router.get("/endpoints/{name}", response_class=HTMLResponse)
def endpoint(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    range_: Literal["1h", "6h", "24h", "7d"] = Query("24h", alias="range"),
    changed: int | None = Query(None, ge=1, description="the config a change just wrote"),
) -> HTMLResponse:
    info = who.client.endpoints.show(name)
    return _endpoint_page(request, who, info, range_, changed=changed)


@router.post(
    "/endpoints/{name}/traffic",
    response_class=HTMLResponse,
    dependencies=[Depends(check_same_origin)],
)
def change_traffic(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    variant: list[str] = Form([]),
    weight: list[str] = Form([]),
    note: str = Form("", max_length=500),
    version: int = Form(..., ge=1, description="the config the form was made from"),
    confirm: str = Form(""),
) -> Response:
    """Without ``confirm``: a preview of what would change. With it: apply, then show the
    endpoint with the new config. Errors stay in the traffic panel; nothing is written."""
    info = who.client.endpoints.show(name)
    form = {"values": dict(zip(variant, weight, strict=False)), "note": note}
    try:
        who.require("write")
        if info.version != version:
            raise ConflictError(
                f"the traffic changed while you were editing: it is now version {info.version}, "
                f"not {version}",
                field="version",
                fix="check the current split below and make your change again",
            )
        weights = parse_weights(info, variant, weight)
        changes = preview(info, weights)
        if confirm == "yes":
            done = who.client.endpoints.set_traffic(name, weights=weights, note=note.strip())
            target = f"/ui/endpoints/{quote(name)}?{urlencode({'changed': done.version})}"
            if request.headers.get("hx-request"):
                return Response(status_code=200, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        traffic = {**form, "weights": weights, "changes": changes, "error": None}
        status = 200
    except StoaError as exc:
        traffic = {**form, "weights": None, "changes": None,
                   "error": {"message": exc.message, "fix": exc.fix}}  # fmt: skip
        status = exc.http_status
    if request.headers.get("hx-request"):
        return page(request, who, "endpoints/_traffic.html", info=info, traffic=traffic,
                    base=f"/ui/endpoints/{quote(name)}")  # fmt: skip
    return _endpoint_page(request, who, info, "24h", traffic=traffic, status=status)


def parse_weights(info: EndpointInfo, names: list[str], values: list[str]) -> dict[str, float]:
    """The form's weights by variant; a live weight is its share of the live weights, a
    shadow's the percent of requests it mirrors, as ``set_traffic`` reads them."""
    if len(names) != len(values):
        raise InvalidInputError(
            "the form lost a weight", field="weights", fix="reload the page and try again"
        )
    known = {v.name for v in info.variants}
    weights: dict[str, float] = {}
    for name, text in zip(names, values, strict=True):
        if name not in known:
            raise InvalidInputError(
                f"no variant named {name!r}",
                field="weights",
                fix=f"the variants are {', '.join(sorted(known))}; reload the page",
            )
        try:
            value = float(text.strip())
        except ValueError:
            raise InvalidInputError(
                f"the weight of {name} is {text.strip() or 'empty'}, not a number",
                field=f"weights.{name}",
                fix="type a number such as 50",
            ) from None
        if not math.isfinite(value):
            raise InvalidInputError(
                f"the weight of {name} is not a finite number",
                field=f"weights.{name}",
                fix="type a number such as 50",
            )
        weights[name] = value
    return weights


def preview(info: EndpointInfo, weights: dict[str, float]) -> list[dict[str, Any]]:
    """Each variant's share before and after, checked as the store checks a config
    (``Variant`` and ``check_variants``), so a preview that passes will apply."""
    from stoa.serve.traffic import Variant, check_variants

    proposed = []
    for v in info.variants:
        value = weights.get(v.name, v.weight if v.mode == "live" else v.sample * 100)
        if v.mode == "shadow" and not 0 < value <= 100:
            raise InvalidInputError(
                f"shadow {v.name} mirrors a percent of requests, from 0 to 100, not {value:g}",
                field=f"weights.{v.name}",
                fix="give a percent above 0 and at most 100",
            )
        proposed.append(Variant(
            name=v.name, target=v.target, mode=v.mode, overrides=v.overrides,
            weight=value if v.mode == "live" else v.weight,
            sample=value / 100 if v.mode == "shadow" else v.sample,
        ))  # fmt: skip
    check_variants(proposed)
    total = sum(p.weight for p in proposed if p.mode == "live")
    changes = []
    for old, new in zip(info.variants, proposed, strict=True):
        before = old.share * 100
        after = new.weight / total * 100 if new.mode == "live" else new.sample * 100
        changes.append({"name": old.name, "mode": old.mode, "old_weight": old.weight,
                        "new_weight": new.weight, "old": before, "new": after,
                        "changed": abs(after - before) > 1e-9
                        or (old.mode == "live" and old.weight != new.weight)})  # fmt: skip
    if not any(c["changed"] for c in changes):
        raise InvalidInputError(
            "those are the current weights, so nothing would change",
            field="weights",
            fix="change at least one weight",
        )
    return changes


def _endpoint_page(
    request: Request,
    who: Viewer,
    info: EndpointInfo,
    range_: str,
    *,
    changed: int | None = None,
    traffic: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    seconds, bucket_s, unit_s, unit = RANGES[range_]
    now = datetime.now(UTC)
    since = now - timedelta(seconds=seconds)
    summary = who.client.predictions.summary(info.name, since=since)
    points = who.client.predictions.series(info.name, bucket_s=bucket_s, since=since)
    if traffic is None:
        traffic = {"values": {}, "note": "", "weights": None, "changes": None, "error": None}
    return page(
        request, who, "endpoints/detail.html", section="endpoints", title=info.name,
        info=info, split=split(info.variants), summary=summary, ranges=list(RANGES),
        range=range_, bucket_s=bucket_s, charts=charts(info, points, since, now, bucket_s,
                                                       unit_s, unit),
        targets={v.name: target_link(v.target) for h in info.history for v in h.variants},
        changed=changed, traffic=traffic, base=f"/ui/endpoints/{quote(info.name)}",
        status=status,
    )  # fmt: skip


def charts(
    info: EndpointInfo,
    points: list[dict[str, Any]],
    since: datetime,
    now: datetime,
    bucket_s: int,
    unit_s: int,
    unit: str,
) -> list[dict[str, Any]]:
    """Requests, p95 latency and errors per variant, one point per bucket over the whole
    range (a bucket with no requests counts 0, and has no latency), x in ``unit`` before
    now. Variants keep their order in the config, so their colours match the split bar.
    Empty when nothing was logged in the range."""
    if not points:
        return []
    origin = int(since.timestamp() // bucket_s * bucket_s)  # as predictions.series cuts
    last = max(int(now.timestamp()), *(int(p["ts"].timestamp()) for p in points))
    starts = list(range(origin, last + 1, bucket_s))
    labels = [_label(v.name, v.mode) for v in info.variants]
    for p in points:
        if _label(p["variant"], p["mode"]) not in labels:
            labels.append(_label(p["variant"], p["mode"]))
    by = {(int(p["ts"].timestamp()), _label(p["variant"], p["mode"])): p for p in points}
    xs = [round((t - now.timestamp()) / unit_s, 3) for t in starts]
    out = []
    for key, title, y_axis, empty in (
        ("requests", "Requests per bucket", {"label": "requests", "unit": ""}, 0),
        ("p95_latency_ms", "Latency p95", {"label": "latency p95", "unit": "ms"}, None),
        ("errors", "Errors per bucket", {"label": "errors", "unit": ""}, 0),
    ):
        series = []
        for label in labels:
            ys = [(by[(t, label)][key] if (t, label) in by else empty) for t in starts]
            series.append({"label": label, "x": xs, "y": ys})
        spec = {"type": "lines", "x": {"label": "time before now", "unit": unit},
                "y": y_axis, "series": series}  # fmt: skip
        out.append({"id": f"chart-{key.replace('_', '-')}", "title": title, "spec": spec})
    return out


def _label(variant: str, mode: str) -> str:
    return variant if mode == "live" else f"{variant} (shadow)"


def target_link(target: str) -> str | None:
    """The dashboard page of ``solution:NAME@V`` or ``model:NAME@V``."""
    kind, _, ref = target.partition(":")
    name, _, version = ref.rpartition("@")
    if not version.isdigit():
        return None
    if kind == "solution":
        return f"/ui/solutions/{quote(name)}?version={version}"
    if kind == "model":
        return f"/ui/models/{quote(name)}/{version}"
    return None


# -- the logbook ---------------------------------------------------------------------------


@router.get("/endpoints/{name}/predictions", response_class=HTMLResponse)
def logbook(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    variant: str = Query("", max_length=64),
    status: str = Query("", max_length=20),
    mode: str = Query("", max_length=10),
    q: str = Query("", max_length=256, description="words in the input or output"),
    before: str = Query("", max_length=64, description="the last id of the page before"),
) -> HTMLResponse:
    """Newest first, ``LOG_PAGE`` a page; "Older" pages on with the last id shown."""
    info = who.client.endpoints.show(name)
    rows = who.client.predictions.list(
        endpoint=name, variant=variant or None, status=status or None, mode=mode or None,
        search=q.strip() or None, before_id=before or None, limit=LOG_PAGE + 1,
    )  # fmt: skip
    more = len(rows) > LOG_PAGE
    rows = rows[:LOG_PAGE]
    filters = {"variant": variant, "status": status, "mode": mode, "q": q}
    older = None
    if more:
        older = "?" + urlencode({**{k: v for k, v in filters.items() if v},
                                 "before": rows[-1]["id"]})  # fmt: skip
    names = sorted({v.name for h in info.history for v in h.variants})
    return page(
        request, who, "endpoints/logbook.html", section="endpoints", title=f"{name} logbook",
        info=info, rows=[{**r, "input_brief": brief(r["input"]),
                          "output_brief": brief(r["output"])} for r in rows],
        filters=filters, filtered=any(filters.values()), names=names, statuses=STATUSES,
        modes=MODES, older=older, paged=bool(before), page_size=LOG_PAGE,
        base=f"/ui/endpoints/{quote(name)}",
    )  # fmt: skip


def brief(value: Any) -> str:
    """A cell's worth of an input or output: its text when it has one, else its JSON."""
    if isinstance(value, dict) and isinstance(value.get("text"), str) and len(value) == 1:
        text = value["text"]
    elif isinstance(value, str):
        text = value
    elif value is None:
        return "—"
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= BRIEF else text[: BRIEF - 1] + "…"


# -- one prediction ------------------------------------------------------------------------


@router.get("/predictions/{prediction_id}", response_class=HTMLResponse)
def prediction(request: Request, prediction_id: str, who: Viewer = Depends(viewer)) -> HTMLResponse:
    found = who.client.predictions.show(prediction_id)
    trace = found.get("trace") or {}
    output = found.get("output")
    text = output.get("text") if isinstance(output, dict) else None
    return page(
        request, who, "endpoints/prediction.html", section="endpoints",
        title=f"prediction {prediction_id}", p=found, waterfall=waterfall(trace.get("spans") or []),
        trace_id=trace.get("trace_id"), answer=text if isinstance(text, str) else None,
        input_json=_pretty(found.get("input")), output_json=_pretty(output),
        error_json=_pretty(found.get("error")) if found.get("error") else None,
        target=target_link(found.get("target") or ""),
        feedback=[{**e, "value_json": json.dumps(e["value"], ensure_ascii=False, default=str)}
                  for e in found.get("feedback", [])],
        base=f"/ui/endpoints/{quote(found['endpoint'])}",
    )  # fmt: skip


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
