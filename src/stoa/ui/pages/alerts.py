"""Alerts: what is firing now (or every alert), each with its acknowledgement, and the
rules that raise them with their state and last value.

Acknowledging is one POST (same origin, ``write`` scope) answered by a redirect back to
the list; acknowledging twice keeps the first acknowledgement, as ``stoa alerts ack``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: Alerts listed at most; `stoa alerts list --all` pages further.
LIMIT = 200


@router.get("/alerts", response_class=HTMLResponse)
def alerts(
    request: Request,
    who: Viewer = Depends(viewer),
    all_: bool = Query(False, alias="all", description="resolved alerts too"),
    acked: int | None = Query(None, ge=1, description="the alert just acknowledged"),
) -> HTMLResponse:
    rows = who.client.alerts.list(active_only=not all_, limit=LIMIT)
    rules = who.client.alerts.list_rules()
    return page(request, who, "measure/alerts.html", section="alerts", title="Alerts",
                rows=rows, rules=rules, all=all_, acked=acked, limit=LIMIT)  # fmt: skip


@router.post("/alerts/{alert_id}/ack", dependencies=[Depends(check_same_origin)])
def ack(
    request: Request,
    alert_id: int,
    who: Viewer = Depends(viewer),
    all_: str = Form("", alias="all"),
) -> Response:
    who.require("write")
    done = who.client.alerts.ack(alert_id)
    query = {"acked": done["id"], **({"all": "true"} if all_ else {})}
    return RedirectResponse(f"/ui/alerts?{urlencode(query)}", status_code=303)
