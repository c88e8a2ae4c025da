"""Human review queues: every queue with its stats and its judge-human agreement panel,
and the focused reviewer page that claims one item at a time.

The reviewer is the signed-in viewer. Claiming, labelling and releasing are POST forms
(same origin, ``write`` scope), each answered by a redirect, so a reload never labels
twice: labelling claims the next item (``client.reviews.next``) and lands on it, or on
the queue saying it is empty. Every label button has a number key, so a reviewer can
clear a queue from the keyboard alone (static/stoa.js, ``data-keys``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stoa.core.errors import NotFoundError, StoaError
from stoa.ui.pages.intervals import interval_bar
from stoa.ui.pages.solutions import waterfall
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: Label buttons get the keys 1 to 9; a schema allows up to 20 labels, the rest are clicks.
KEYS = "123456789"
#: The scale an agreement interval bar spans: kappa and Spearman's rho live in [-1, 1].
AGREEMENT_SCALE = 1.0
_CITE = re.compile(r"\[(\d{1,3})\]")


# -- the list ------------------------------------------------------------------------------


@router.get("/queues", response_class=HTMLResponse)
def queues(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    rows = [_queue_panel(who, q) for q in who.client.reviews.list_queues()]
    return page(request, who, "measure/queues.html", section="queues", title="Review queues",
                rows=rows)  # fmt: skip


def _queue_panel(who: Viewer, queue: dict[str, Any]) -> dict[str, Any]:
    """A queue's stats and its agreement report (or why there is none)."""
    stats = who.client.reviews.stats(queue["name"])
    try:
        report = who.client.reviews.agreement(
            queue["endpoint"], criterion=queue["spec"]["criterion"], queue=queue["name"]
        )
        agreement, problem = agreement_view(report), None
    except StoaError as exc:  # a queue whose labels clash with another's: say so, go on
        agreement, problem = None, f"{exc.message}" + (f" ({exc.fix})" if exc.fix else "")
    return {"queue": queue, "stats": stats, "agreement": agreement, "problem": problem}


def agreement_view(report: dict[str, Any]) -> dict[str, Any]:
    """The agreement report with the statistic the verdict reads first, each statistic
    as an interval bar on [-1, 1] with the verdict's threshold marked."""
    statistic = report["verdict"]["rule"]["statistic"]
    min_kappa = report["verdict"]["rule"]["min_kappa"]
    names = {"kappa": "Cohen's kappa", "weighted_kappa": f"weighted kappa ({report['weights']})",
             "spearman": "Spearman's rho"}  # fmt: skip
    order = [statistic, *(k for k in ("kappa", "spearman") if k != statistic)]
    stats = []
    for key in order:
        value, decisive = report[key], key == statistic
        colour = _agreement_colour(value["low"], min_kappa, decisive)
        stats.append({
            "key": key, "name": names[key], "value": value["value"], "low": value["low"],
            "high": value["high"], "rule": decisive,
            "bar": interval_bar(value["value"], value["low"], value["high"], AGREEMENT_SCALE,
                                verdict=colour, mark=min_kappa if decisive else None),
        })  # fmt: skip
    matrix = _matrix(report["confusion"]["labels"], report["confusion"]["counts"])
    return {**report, "statistics": stats, "matrix": matrix}


def _agreement_colour(low: float | None, min_kappa: float, decisive: bool) -> str:
    if low is None:
        return "untestable"
    if not decisive:
        return "inconclusive"
    return "better" if low >= min_kappa else "worse"


def _matrix(labels: list[str], counts: list[list[int]]) -> list[dict[str, Any]]:
    """Rows of the confusion table, each cell with its share of its row for shading."""
    rows = []
    for i, (name, row) in enumerate(zip(labels, counts, strict=True)):
        total = sum(row)
        cells = [{"n": n, "share": n / total if total else 0.0, "diagonal": i == j}
                 for j, n in enumerate(row)]  # fmt: skip
        rows.append({"label": name, "cells": cells, "total": total})
    return rows


# -- one queue: the reviewer's page --------------------------------------------------------


@router.get("/queues/{name}", response_class=HTMLResponse)
def queue(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    done: int | None = Query(None, ge=0, description="items labelled in this sitting"),
    released: int | None = Query(None, ge=1, description="the item just released"),
) -> HTMLResponse:
    shown = who.client.reviews.show_queue(name)
    return page(request, who, "measure/queue.html", section="queues", title=f"{name} · review",
                q=shown, stats=shown["stats"], done=done, released=released,
                base=f"/ui/queues/{quote(name)}")  # fmt: skip


@router.post("/queues/{name}/next", dependencies=[Depends(check_same_origin)])
def claim(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    done: int = Form(0, ge=0),
) -> Response:
    """Claim the next item (your own unexpired claim first) and open it."""
    who.require("write")
    return _go_next(name, who, done)


def _go_next(name: str, who: Viewer, done: int) -> Response:
    item = who.client.reviews.next(name)
    base = f"/ui/queues/{quote(name)}"
    if item is None:
        return RedirectResponse(f"{base}?{urlencode({'done': done})}", status_code=303)
    query = f"?{urlencode({'done': done})}" if done else ""
    return RedirectResponse(f"{base}/items/{item['id']}{query}", status_code=303)


@router.get("/queues/{name}/items/{item_id}", response_class=HTMLResponse)
def item(
    request: Request,
    name: str,
    item_id: int,
    who: Viewer = Depends(viewer),
    done: int = Query(0, ge=0),
) -> HTMLResponse:
    found = _item_in(who, name, item_id)
    return _item_page(request, who, found, done)


def _item_in(who: Viewer, name: str, item_id: int) -> dict[str, Any]:
    found = who.client.reviews.show_item(item_id)
    if found["queue"] != name:
        raise NotFoundError(
            f"review item {item_id} is not in queue {name!r}",
            field="item",
            fix=f"open /ui/queues/{found['queue']}/items/{item_id}",
        )
    return found


def _item_page(
    request: Request,
    who: Viewer,
    found: dict[str, Any],
    done: int,
    *,
    error: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    me = who.client.actor
    now = datetime.now(UTC)
    until = found.get("claimed_until")
    if isinstance(until, str):
        until = datetime.fromisoformat(until)
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    held = found["status"] == "claimed" and until is not None and until > now
    mine = held and found["claimed_by"] == me
    trace = found.get("trace") or {}
    spans = trace.get("spans") or [] if isinstance(trace, dict) else []
    drawable = bool(spans) and all("start_ns" in s and "span_id" in s for s in spans)
    labels = [{**entry, "key": KEYS[i] if i < len(KEYS) else None}
              for i, entry in enumerate(found["labels"])]  # fmt: skip
    return page(
        request, who, "measure/item.html", section="queues",
        title=f"item {found['id']} · {found['queue']}", it=found, labels=labels, done=done,
        mine=mine, held_elsewhere=held and not mine, can_label=who.can("write")
        and found["status"] != "done" and not (held and not mine),
        question=question_of(found.get("input")), answer=answer_segments(found.get("output")),
        context=found.get("context") or [], input_json=_pretty(found.get("input")),
        output_json=_pretty(found.get("output")),
        waterfall=waterfall(spans) if drawable else [],
        trace_json=_pretty(trace) if trace and not drawable else None,
        until=until, error=error, base=f"/ui/queues/{quote(found['queue'])}", status=status,
    )  # fmt: skip


@router.post(
    "/queues/{name}/items/{item_id}/label",
    response_class=HTMLResponse,
    dependencies=[Depends(check_same_origin)],
)
def label(
    request: Request,
    name: str,
    item_id: int,
    who: Viewer = Depends(viewer),
    label: str = Form(..., max_length=64),
    correction: str = Form("", max_length=8192),
    done: int = Form(0, ge=0),
) -> Response:
    """Store the label (and correction) as human feedback, then claim the next item.
    A refused label (unknown, someone else's claim) keeps the reviewer on the item."""
    found = _item_in(who, name, item_id)
    try:
        who.require("write")
        who.client.reviews.label(item_id, label, correction=correction or None)
    except StoaError as exc:
        error = {"message": exc.message, "fix": exc.fix, "correction": correction}
        return _item_page(request, who, found, done, error=error, status=exc.http_status)
    return _go_next(name, who, done + 1)


@router.post("/queues/{name}/items/{item_id}/release", dependencies=[Depends(check_same_origin)])
def release(
    request: Request,
    name: str,
    item_id: int,
    who: Viewer = Depends(viewer),
    done: int = Form(0, ge=0),
) -> Response:
    """Give the item back to the queue and stop reviewing."""
    _item_in(who, name, item_id)
    who.require("write")
    who.client.reviews.release(item_id)
    query = urlencode({"released": item_id, **({"done": done} if done else {})})
    return RedirectResponse(f"/ui/queues/{quote(name)}?{query}", status_code=303)


# -- what a reviewer reads -----------------------------------------------------------------


def question_of(value: Any) -> str | None:
    """The request's words when it has them: ``question``, ``text`` or a plain string."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("question", "text", "query", "message"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


def answer_segments(output: Any) -> list[dict[str, Any]] | None:
    """The answer's text cut at its ``[n]`` citations, so each marker links to its
    passage; None when the output has no text."""
    text = output.get("text") if isinstance(output, dict) else output
    if not isinstance(text, str):
        return None
    segments: list[dict[str, Any]] = []
    last = 0
    for match in _CITE.finditer(text):
        if match.start() > last:
            segments.append({"text": text[last : match.start()]})
        segments.append({"text": match.group(0), "cite": int(match.group(1))})
        last = match.end()
    if last < len(text):
        segments.append({"text": text[last:]})
    return segments


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
