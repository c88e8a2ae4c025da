"""Solutions: the list, and one solution's steps drawn as a flow, its versions with a
diff between any two, its YAML, and a "try it" box that runs it and shows the answer,
the path taken and the trace as a waterfall of spans.

Running is a read operation here, as ``POST /api/v1/solutions/{ref}/run`` is: it changes
nothing stored. The diff and the run answer htmx with a fragment; without JavaScript the
same addresses render the whole page with the fragment in place.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from stoa.core.errors import InvalidInputError, StoaError
from stoa.ui.render import UiRoute, diff_lines, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: Versions listed on a solution's page (and offered for the diff); older ones are in
#: `stoa solutions versions NAME`.
VERSIONS = 50
#: The try-it box's input, in characters.
MAX_INPUT = 100_000
#: A bar narrower than this share of the run would not show; it is drawn this wide.
MIN_BAR_PCT = 0.4
EXAMPLE = "I forgot my password"


@router.get("/solutions", response_class=HTMLResponse)
def solutions(
    request: Request,
    who: Viewer = Depends(viewer),
    q: str = Query("", max_length=200, description="part of a name"),
) -> HTMLResponse:
    series = who.client.solutions.list()
    needle = q.strip().lower()
    rows = [s for s in series if needle in s.name.lower()] if needle else series
    return page(request, who, "solutions/list.html", section="solutions", title="Solutions",
                q=q, total=len(series), rows=rows)  # fmt: skip


@router.get("/solutions/{name}", response_class=HTMLResponse)
def solution(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    version: int | None = Query(None, ge=1, description="the version to show"),
) -> HTMLResponse:
    return _solution_page(request, who, name, version)


@router.get("/solutions/{name}/diff", response_class=HTMLResponse)
def solution_diff(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    old: int = Query(..., ge=1, description="the older version"),
    new: int = Query(..., ge=1, description="the newer version"),
    version: int | None = Query(None, ge=1),
) -> HTMLResponse:
    """The diff alone for htmx; the whole page, diff included, for a plain form."""
    found = _compare(who, name, old, new)
    if request.headers.get("hx-request"):
        return page(request, who, "solutions/_diff.html", name=name, diff=found)
    return _solution_page(request, who, name, version, diff=found)


@router.post(
    "/solutions/{name}/run",
    response_class=HTMLResponse,
    dependencies=[Depends(check_same_origin)],
)
def solution_run(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    version: int | None = Form(None, ge=1),
    input_text: str = Form("", alias="input", max_length=MAX_INPUT),
) -> HTMLResponse:
    """Run one version on the typed input; a bad input is a message in the result box."""
    who.require("read")
    ref = f"{name}@{version}" if version else name
    outcome = _try(who, ref, input_text)
    if request.headers.get("hx-request"):
        return page(request, who, "solutions/_run.html", name=name, **outcome)
    status = 422 if outcome["error"] else 200
    return _solution_page(request, who, name, version, tried=outcome, status=status)


def _solution_page(
    request: Request,
    who: Viewer,
    name: str,
    version: int | None,
    *,
    diff: dict[str, Any] | None = None,
    tried: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    client = who.client
    versions = client.solutions.versions(name, limit=VERSIONS)  # NotFoundError: a 404 page
    info = client.solutions.show(f"{name}@{version}" if version else name)
    text = client.solutions.spec(info.ref)
    older = [v.version for v in versions if v.version < info.version]
    default_old = older[-1] if older else info.version
    if tried is None:
        tried = {"input": EXAMPLE, "result": None, "error": None, "waterfall": []}
    return page(
        request, who, "solutions/detail.html", section="solutions", title=name, name=name,
        info=info, versions=versions[::-1], text=text, flow=flow(text),
        default_old=default_old, diff=diff, status=status, max_input=MAX_INPUT, **tried,
    )  # fmt: skip


def _compare(who: Viewer, name: str, old: int, new: int) -> dict[str, Any]:
    solutions = who.client.solutions
    old_ref, new_ref = f"{name}@{old}", f"{name}@{new}"
    for ref in (old_ref, new_ref):  # an unknown version: a 404 page naming it
        solutions.show(ref)
    lines = diff_lines(solutions.spec(old_ref), solutions.spec(new_ref), old_ref, new_ref)
    return {"old": old, "new": new, "lines": lines}


# -- the flow ------------------------------------------------------------------------------


def flow(text: str) -> list[dict[str, Any]]:
    """Each step as a box: kind, id, ``when``, its key fields, and where it may route to.

    Routes are also listed on their target (``from``), so a step reached only by a
    jump says so; a spec that no longer parses (an older grammar) shows no boxes.
    """
    from stoa.develop.solution.spec import parse_spec

    try:
        spec, _ = parse_spec(text)
    except StoaError:
        return []
    boxes = [_box(i, step) for i, step in enumerate(spec.steps)]
    by_id = {b["id"]: b for b in boxes}
    for box in boxes:
        for label, target in box["routes"]:
            by_id[target]["from"].append((box["id"], label))
    return boxes


def _box(index: int, step: Any) -> dict[str, Any]:
    fields: list[tuple[str, str]] = []
    rules: list[dict[str, str]] = []
    routes: list[tuple[str, str]] = []
    kind = step.kind
    if kind == "rules":
        for rule in step.rules:
            action = rule.action
            value = getattr(rule, action)
            rules.append({"when": rule.when, "action": action, "value": value})
            if action == "route":
                routes.append((f"when {rule.when}", value))
    elif kind == "classify":
        fields += [("model", step.model), ("text", step.text)]
        for t in step.thresholds:
            if t.route:
                routes.append((f"top probability below {t.below:g}", t.route))
            else:
                fields.append((f"below {t.below:g}", f"tag {t.tag}"))
    elif kind == "embed":
        fields += [("embedder", step.embedder), ("text", step.text)]
    elif kind == "retrieve":
        fields += [("kb", step.kb), ("k", str(step.k)), ("mode", step.mode),
                   ("query", step.query)]  # fmt: skip
        if step.min_score is not None:
            fields.append(("min score", f"{step.min_score:g}"))
        fields += [(f"filter {k}", v) for k, v in step.filter.items()]
    elif kind == "generate":
        fields += [("provider", step.provider), ("model", step.model or "—")]
        fields += [(label, value) for label, value in (("prompt", step.prompt),
                   ("system", step.system), ("passages", step.passages)) if value]  # fmt: skip
        fields += [("fallback", f"{f.provider} {f.model}".strip()) for f in step.fallbacks]
        if step.cache:
            fields.append(("cache", "on"))
    elif kind == "respond":
        fields.append(("status", step.status))
        if step.template is not None:
            fields.append(("template", step.template))
        fields += [(f"data {k}", v) for k, v in step.data.items()]
    elif kind == "call":
        fields += [("solution", step.solution), ("input", step.input)]
    return {"index": index + 1, "id": step.id, "kind": kind, "when": step.when,
            "description": step.description, "fields": fields, "rules": rules,
            "routes": routes, "from": []}  # fmt: skip


# -- try it --------------------------------------------------------------------------------


def parse_input(text: str) -> Any:
    """Plain text is ``{"text": …}`` (the runner's own rule); text that starts with ``{``
    or ``[`` is read as JSON, and the runner says what it must be."""
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError(
            "type an input to run", field="input", fix=f"plain text such as “{EXAMPLE}”"
        )
    if stripped[0] in "{[":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"the input starts like JSON but does not parse: {exc.msg} at line {exc.lineno},"
                f" column {exc.colno}",
                field="input",
                fix='write a JSON object such as {"text": "…"}, or plain text not starting '
                "with { or [",
            ) from None
    return text


def _try(who: Viewer, ref: str, text: str) -> dict[str, Any]:
    outcome: dict[str, Any] = {"input": text, "result": None, "error": None, "waterfall": []}
    try:
        result = who.client.solutions.run(ref, parse_input(text))
    except InvalidInputError as exc:
        outcome["error"] = {"message": exc.message, "fix": exc.fix}
        return outcome
    outcome["result"] = result
    outcome["answer"] = _answer(result.get("output") or {})
    outcome["waterfall"] = waterfall(result["trace"]["spans"])
    return outcome


def _answer(output: dict[str, Any]) -> dict[str, Any]:
    """The answer's text, and the rest of the output as JSON when there is more."""
    text = output.get("text")
    rest = {k: v for k, v in output.items() if k != "text"} if isinstance(text, str) else output
    extra = json.dumps(rest, indent=2, ensure_ascii=False, default=str) if rest else None
    return {"text": text if isinstance(text, str) else None, "extra": extra}


def waterfall(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per span, parents before their children: its offset and width as shares
    of the run (the root span, or all spans when there is none), its depth for the
    indent, and its attributes as JSON for the expander."""
    if not spans:
        return []
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] or s["start_ns"] for s in spans)
    total = max(end - start, 1)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children.setdefault(parent, []).append(span)
    rows: list[dict[str, Any]] = []

    def visit(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
            finish = span["end_ns"] or end  # a span never ended runs to the trace's end
            left = min((span["start_ns"] - start) / total * 100, 100 - MIN_BAR_PCT)
            width = min(max((finish - span["start_ns"]) / total * 100, MIN_BAR_PCT), 100 - left)
            attributes = span.get("attributes") or {}
            rows.append({
                "name": span["name"], "depth": depth,
                "status": (span.get("status") or "OK").lower(),
                "message": span.get("message"), "ms": (finish - span["start_ns"]) / 1e6,
                "offset": round(left, 3), "width": round(width, 3),
                "decision": attributes.get("stoa.decision"),
                "attributes": json.dumps(attributes, indent=2, ensure_ascii=False, default=str),
            })  # fmt: skip
            visit(span["span_id"], depth + 1)

    visit(None, 0)
    return rows
