"""The A/B report of an endpoint: per metric and variant, the relative lift with its
interval drawn as a bar around zero and coloured by its verdict, the decision with its
reason, the sample-ratio check, guardrails marked, chance to win; and a confirmed
"promote".

Promoting takes two posts, as a traffic change does: the first only previews (every
live variant's share now and after, and whether the report recommends it) and writes
nothing; the second, carrying the config version that was previewed, calls
``client.experiments.promote``. Promoting a variant the report does not recommend needs
a reason and is sent with ``force``, which the endpoint's history keeps in its note.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stoa.core.errors import ConflictError, InvalidInputError, StoaError
from stoa.serve.endpoints import EndpointInfo
from stoa.ui.pages.intervals import interval_bar, symmetric_scale
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

Rule = Literal["sequential", "frequentist", "bayesian"]
RULE_NAMES = {
    "sequential": "always-valid confidence sequences (safe to look every day)",
    "frequentist": "fixed-horizon tests (valid once, at the planned sample size)",
    "bayesian": "chance to win (ship at 95 %)",
}
#: Words for the verdict a comparison reads, in the metric's direction.
VERDICTS = {"better": "better", "worse": "worse", "inconclusive": "not yet clear",
            "untestable": "untestable"}  # fmt: skip


@router.get("/endpoints/{name}/experiment", response_class=HTMLResponse)
def experiment(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    metric: list[str] = Query([], max_length=20, description="goal metrics"),
    rule: Rule = Query("sequential"),
) -> HTMLResponse:
    info = who.client.endpoints.show(name)
    return _experiment_page(request, who, info, _metrics(metric), rule)


def _metrics(values: list[str]) -> list[str]:
    """Metric names from repeated or comma-separated fields."""
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def _experiment_page(
    request: Request,
    who: Viewer,
    info: EndpointInfo,
    metrics: list[str],
    rule: str,
    *,
    promote: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    problem = None
    try:
        if report is None:
            report = who.client.experiments.report(info.name, metrics=metrics or None, rule=rule)
    except StoaError as exc:
        problem = {"message": exc.message, "fix": exc.fix}
        status = status if status != 200 else exc.http_status
    view = report_view(report) if report else None
    query = urlencode({"metric": metrics, "rule": rule}, doseq=True)
    return page(
        request, who, "measure/experiment.html", section="endpoints",
        title=f"{info.name} · A/B report", info=info, report=report, view=view, problem=problem,
        metrics=metrics, rule=rule, rules=RULE_NAMES, promote=promote, verdicts=VERDICTS,
        base=f"/ui/endpoints/{quote(info.name)}", query=query, status=status,
    )  # fmt: skip


def report_view(report: dict[str, Any]) -> dict[str, Any]:
    """The report arranged for the page: goal metrics first, then guardrails; per
    metric one row per treatment with its interval bar on a scale shared by the rows."""
    groups: dict[str, dict[str, Any]] = {}
    for c in report["comparisons"]:
        group = groups.setdefault(c["metric"], {"metric": c["metric"], "role": c["role"],
                                                "direction": c["direction"], "kind": c["kind"],
                                                "rows": []})  # fmt: skip
        group["rows"].append(c)
    for group in groups.values():
        lifts = [c["relative_lift"] for c in group["rows"]]
        scale = symmetric_scale([v for lift in lifts for v in (lift["ci_low"], lift["ci_high"],
                                                                lift["estimate"])])  # fmt: skip
        group["scale"] = scale
        for c in group["rows"]:
            lift = c["relative_lift"]
            c["bar"] = interval_bar(lift["estimate"], lift["ci_low"], lift["ci_high"], scale,
                                    verdict=c["verdict"])  # fmt: skip
            c["bar_label"] = _bar_label(c)
            c["lift_text"] = {k: pct(lift[k]) for k in ("estimate", "ci_low", "ci_high")}
    ordered = sorted(groups.values(), key=lambda g: g["role"] != "goal")
    srm = report.get("srm")
    described = {k: v.get("description", "") for k, v in report["metrics"].items()}
    return {"metrics": ordered, "srm": _srm_rows(srm) if srm else None, "description": described}


def pct(value: float | None, digits: int = 1) -> str:
    """A relative lift in percent with its sign: +12.3 %."""
    if value is None:
        return "—"
    return f"{value * 100:+.{digits}f} %"


def _bar_label(c: dict[str, Any]) -> str:
    lift = c["relative_lift"]
    level = round((lift.get("level") or 0.95) * 100)
    if lift["ci_low"] is None or lift["ci_high"] is None:
        return f"{c['variant']} against {c['control']['variant']} on {c['metric']}: no interval"
    return (f"{c['variant']} against {c['control']['variant']} on {c['metric']}: "
            f"{pct(lift['estimate'])}, {level} % interval {pct(lift['ci_low'])} to "
            f"{pct(lift['ci_high'])}, {VERDICTS.get(c['verdict'], c['verdict'])}")  # fmt: skip


def _srm_rows(srm: dict[str, Any]) -> dict[str, Any]:
    total = sum(srm["observed"].values()) or 1
    rows = [{"variant": v, "observed": n, "expected": srm["expected"].get(v),
             "observed_share": n / total,
             "expected_share": (srm["expected"].get(v) or 0) / total}
            for v, n in srm["observed"].items()]  # fmt: skip
    return {**srm, "rows": rows}


# -- promote -------------------------------------------------------------------------------


@router.post(
    "/endpoints/{name}/promote",
    response_class=HTMLResponse,
    dependencies=[Depends(check_same_origin)],
)
def promote(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    variant: str = Form(..., max_length=64),
    version: int = Form(..., ge=1, description="the config the report was made from"),
    metric: list[str] = Form([]),
    rule: Rule = Form("sequential"),
    reason: str = Form("", max_length=2000),
    confirm: str = Form(""),
) -> Response:
    """Without ``confirm``: what promoting would do, and whether the report recommends
    it. With it: promote (``force`` when not recommended, which needs a reason), then
    show the endpoint with its new config."""
    info = who.client.endpoints.show(name)
    metrics = _metrics(metric)
    state: dict[str, Any] = {"variant": variant, "reason": reason, "error": None}
    status, report = 200, None
    try:
        who.require("write")
        if info.version != version:
            raise ConflictError(
                f"the endpoint changed while you were reading: it is now config v{info.version}, "
                f"not v{version}",
                field="version",
                fix="read the report again and promote from it",
            )
        live = [v.name for v in info.variants if v.mode == "live"]
        if variant not in live:
            raise InvalidInputError(
                f"no live variant named {variant!r}",
                field="variant",
                fix=f"the live variants are {', '.join(live)}",
            )
        report = _default_report(who, name, metrics)
        decision = report["decision"] if report else None
        state["decision"] = decision
        state["recommended"] = (
            bool(decision) and decision["action"] == "ship" and (decision["variant"] == variant)
        )
        state["changes"] = [
            {"name": v.name, "old": v.share * 100, "new": 100.0 if v.name == variant else 0.0}
            for v in info.variants
            if v.mode == "live"
        ]
        if confirm == "yes":
            force = not state["recommended"]
            if force and not reason.strip():
                raise InvalidInputError(
                    f"the report does not recommend {variant}, so promoting it needs a reason",
                    field="reason",
                    fix="say why you promote it anyway; the reason is kept in the config's note",
                )
            done = who.client.experiments.promote(
                name, variant, reason=reason.strip(), force=force, metrics=metrics or None
            )
            target = f"/ui/endpoints/{quote(name)}?{urlencode({'changed': done['version']})}"
            return RedirectResponse(target, status_code=303)
    except StoaError as exc:
        state["error"] = {"message": exc.message, "fix": exc.fix}
        status = exc.http_status
    shown = report if rule == "sequential" else None  # the page's own, when the rules agree
    return _experiment_page(request, who, info, metrics, rule, promote=state, report=shown,
                            status=status)  # fmt: skip


def _default_report(who: Viewer, name: str, metrics: list[str]) -> dict[str, Any] | None:
    """The report ``promote`` reads (the default rule), or None when there is none."""
    try:
        return who.client.experiments.report(name, metrics=metrics or None)
    except InvalidInputError:
        return None
