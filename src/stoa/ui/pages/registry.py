"""Registry pages: models, prompts and datasets; a series' versions and alias moves; one
version's facts, scan report, lineage graph and (prompts) diff; and the review queue.

Every kind has the same pages, mounted once per kind under its plural (``/ui/models/…``):
concrete paths, so that ``/ui/runs/…`` and the other areas' routes are never shadowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stoa.client.registry import Versions
from stoa.core.errors import NotFoundError
from stoa.govern.types import LineageInfo, LineageNode, VersionInfo
from stoa.ui.render import UiRoute, attachment, diff_lines, page
from stoa.ui.session import Viewer, check_same_origin, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: The plural in a path, and the registry kind it names.
KINDS = {"models": "model", "prompts": "prompt", "datasets": "dataset"}
#: Rows per page of the series list and of a series' versions.
SERIES_PAGE = 50
VERSIONS_PAGE = 50
#: Alias moves shown on a series page, newest first.
ALIAS_MOVES = 50
#: Pending versions listed per kind on the review page.
REVIEW_LIMIT = 200
#: How far the lineage graph walks, and how many nodes it draws each way.
LINEAGE_DEPTH = 4
GRAPH_EACH_WAY = 20
#: The lineage drawing in pixels: column pitch, box width and height, row pitch, margin.
COLUMN, BOX_W, BOX_H, ROW, PAD = 230, 196, 46, 62, 12
#: Files of a folder artifact listed on a version page.
FILES_SHOWN = 200
#: Flattened metadata and spec entries shown on a version page.
FIELDS_SHOWN = 200
SEVERITIES = ("critical", "high", "medium", "low", "info")


def _each_kind(path: str, method: str = "get", **options: Any) -> Callable[[Any], Any]:
    """Mount one page function for every kind: ``/models{path}``, ``/prompts{path}``, …"""

    def mount(fn: Callable[..., Any]) -> Callable[..., Any]:
        for kinds in KINDS:
            getattr(router, method)(f"/{kinds}{path}", **options)(fn)
        return fn

    return mount


def _kinds(request: Request) -> str:
    """The plural the matched route was mounted under (``models``, ``prompts``, …)."""
    segments = request.scope["route"].path.split("/")
    return next(s for s in segments if s in KINDS)


def _resource(who: Viewer, kinds: str) -> Versions:
    return who.client.of_kind(KINDS[kinds])


def version_url(kind: str, ref: str) -> str:
    name, _, number = ref.rpartition("@")
    return f"/ui/{kind}s/{quote(name)}/{number}"


# -- lists of series -----------------------------------------------------------------------


@_each_kind("", response_class=HTMLResponse)
def series_list(
    request: Request,
    q: str = Query("", max_length=200, description="part of a name"),
    page_number: int = Query(1, alias="page", ge=1, le=100_000),
    who: Viewer = Depends(viewer),
) -> HTMLResponse:
    kinds = _kinds(request)
    series = _resource(who, kinds).list()
    needle = q.strip().lower()
    matching = [s for s in series if needle in s.name.lower()] if needle else series
    start = (page_number - 1) * SERIES_PAGE
    return page(
        request, who, "registry/series_list.html", section=kinds, title=kinds.capitalize(),
        kinds=kinds, kind=KINDS[kinds], q=q, total=len(series), matching=len(matching),
        rows=matching[start : start + SERIES_PAGE], page_number=page_number,
        more=len(matching) > start + SERIES_PAGE,
    )  # fmt: skip


# -- one series ----------------------------------------------------------------------------


def _current_aliases(moves: list[Any]) -> dict[str, int]:
    """Where each alias points now, replayed from its moves (a removal has ``to`` null)."""
    current: dict[str, int] = {}
    for move in moves:
        alias, to = move.detail.get("alias"), move.detail.get("to")
        if to is None:
            current.pop(alias, None)
        else:
            current[alias] = to
    return dict(sorted(current.items()))


@_each_kind("/{name}", response_class=HTMLResponse)
def series(
    request: Request,
    name: str,
    before: int | None = Query(None, ge=1, description="show versions numbered below this"),
    who: Viewer = Depends(viewer),
) -> HTMLResponse:
    kinds = _kinds(request)
    resource = _resource(who, kinds)
    found = resource.versions(name, before=before, limit=VERSIONS_PAGE + 1)
    more = len(found) > VERSIONS_PAGE
    rows = found[1:] if more else found
    moves = resource.alias_history(name)
    return page(
        request, who, "registry/series.html", section=kinds, title=name, kinds=kinds,
        kind=KINDS[kinds], name=name, rows=rows[::-1], before=before,
        older=rows[0].version if more and rows else None, aliases=_current_aliases(moves),
        moves=moves[::-1][:ALIAS_MOVES], moves_total=len(moves),
    )  # fmt: skip


# -- one version ---------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested metadata as dotted keys with scalar values; lists of scalars joined."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, inner in value.items():
            out += _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return [(prefix, ", ".join(map(str, value)))]
        return [(prefix, json.dumps(value, default=str))]
    return [(prefix, value)]


def _scan_summary(scan: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate's report, with each file's findings grouped by severity and counted."""
    if not scan:
        return None
    counts = dict.fromkeys(SEVERITIES, 0)
    files = []
    for entry in scan.get("files") or []:
        groups: dict[str, list[dict[str, Any]]] = {}
        for finding in entry.get("findings") or []:
            severity = str(finding.get("severity", "info"))
            groups.setdefault(severity, []).append(finding)
            counts[severity] = counts.get(severity, 0) + 1
        order = sorted(groups, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else 99)
        files.append({**entry, "groups": [(s, groups[s]) for s in order]})
    return {
        "verdict": scan.get("verdict", ""), "scanner": scan.get("scanner", ""),
        "policy_version": scan.get("policy_version", ""), "files": files,
        "counts": [(s, n) for s, n in counts.items() if n],
    }  # fmt: skip


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _node_link(who: Viewer, node: LineageNode) -> tuple[str, str, str]:
    """A lineage node's page, short label and full title; a run is shown by its name."""
    if node.type != "run":
        return version_url(node.type, node.ref), _short(node.ref), node.ref
    href = f"/ui/runs/{quote(node.ref)}"
    try:
        name = who.client.runs.get(node.ref).info.name
    except NotFoundError:  # a link to a run deleted since: its id still says which
        return href, node.ref[:12], node.ref
    return href, _short(name), name


def _lineage_graph(who: Viewer, lineage: LineageInfo) -> dict[str, Any]:
    """Nodes in columns by depth (upstream left, downstream right) and the edges between
    them, laid out here so that the page draws an SVG with no script."""
    columns: dict[int, list[LineageNode]] = {0: [lineage.start]}
    for sign, nodes in ((-1, lineage.upstream), (1, lineage.downstream)):
        for node in nodes:
            columns.setdefault(sign * node.depth, []).append(node)
    order = sorted(columns)
    tallest = max(len(c) for c in columns.values())
    drawn: dict[tuple[int, str], dict[str, Any]] = {}
    for i, depth in enumerate(order):
        top = PAD + (tallest - len(columns[depth])) * ROW / 2
        for j, node in enumerate(columns[depth]):
            href, label, title = _node_link(who, node)
            drawn[(depth, node.ref)] = {
                "type": node.type, "ref": node.ref, "parent": node.parent, "href": href,
                "label": label, "title": title, "depth": depth, "start": depth == 0,
                "x": PAD + i * COLUMN, "y": top + j * ROW,
            }  # fmt: skip
    edges = []
    for item in drawn.values():
        depth = item["depth"]
        toward = depth + (1 if depth < 0 else -1)  # the node it was reached from
        other = drawn.get((toward, item["parent"] or "")) if depth else None
        if other is None:
            continue
        left, right = (item, other) if depth < 0 else (other, item)
        x1, y1, x2, y2 = (
            left["x"] + BOX_W,
            left["y"] + BOX_H / 2,
            right["x"],
            right["y"] + BOX_H / 2,
        )
        mid = (x1 + x2) / 2
        edges.append(f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}")
    nodes = list(drawn.values())
    return {
        "nodes": nodes, "edges": edges, "box_width": BOX_W, "box_height": BOX_H,
        "width": PAD * 2 + (len(order) - 1) * COLUMN + BOX_W,
        "height": PAD * 2 + (tallest - 1) * ROW + BOX_H,
        "truncated": GRAPH_EACH_WAY in (len(lineage.upstream), len(lineage.downstream)),
        "each_way": GRAPH_EACH_WAY, "upstream": [n for n in nodes if n["depth"] < 0],
        "downstream": [n for n in nodes if n["depth"] > 0],
    }  # fmt: skip


def _text_of(resource: Versions, ref: str) -> str:
    """A prompt's template: the bytes of its artifact."""
    return bytes(resource._artifact(ref).body).decode("utf-8", errors="replace")


def _prompt_diff(resource: Versions, info: VersionInfo, against: int | None) -> dict[str, Any]:
    template = _text_of(resource, info.ref)
    if against is None:
        previous = resource.versions(info.name, before=info.version, limit=1)
        if not previous:
            return {"template": template, "against": None, "lines": []}
        against = previous[0].version
    other = resource.show(f"{info.name}@{against}")
    old, new = (_text_of(resource, other.ref), template)
    old_ref, new_ref = other.ref, info.ref
    if against > info.version:  # a newer version: show how this one became it
        old, new, old_ref, new_ref = new, old, new_ref, old_ref
    return {
        "template": template, "against": other.version,
        "lines": diff_lines(old, new, old_ref, new_ref),
    }  # fmt: skip


def _downloads(resource: Versions, info: VersionInfo) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the artifact may be downloaded, and a folder's files (first FILES_SHOWN)."""
    allowed = info.kind != "model" or info.status == "allowed"
    if not allowed or info.artifact != "folder":
        return allowed, []
    manifest = json.loads(bytes(resource._artifact(info.ref).body))
    files = manifest.get("files", manifest) if isinstance(manifest, dict) else {}
    return allowed, [
        {"path": path, "size": entry.get("size")}
        for path, entry in sorted(files.items())[:FILES_SHOWN]
        if isinstance(entry, dict)
    ]


def _notice(request: Request) -> tuple[str, str] | None:
    """The outcome of a decision just made, from the redirect that followed it."""
    for decision in ("approved", "rejected"):
        ref = request.query_params.get(decision)
        if ref:
            return decision, ref
    return None


@_each_kind("/{name}/{version}", response_class=HTMLResponse)
def version_page(
    request: Request,
    name: str,
    version: int = Path(ge=1),
    against: int | None = Query(None, ge=1, description="the prompt version to diff with"),
    who: Viewer = Depends(viewer),
) -> HTMLResponse:
    kinds = _kinds(request)
    resource = _resource(who, kinds)
    info = resource.show(f"{name}@{version}")
    review = who.client.models.review(info.ref) if info.kind == "model" else None
    prompt = _prompt_diff(resource, info, against) if info.kind == "prompt" else None
    downloadable, files = _downloads(resource, info)
    graph = _lineage_graph(
        who, resource.lineage(info.ref, depth=LINEAGE_DEPTH, limit=GRAPH_EACH_WAY)
    )
    spec = dict(info.spec)
    columns = spec.pop("columns", None) if info.kind == "dataset" else None
    if info.kind == "prompt":
        spec.pop("variables", None)  # shown beside the template
    return page(
        request, who, "registry/version.html", section=kinds, title=info.ref, kinds=kinds,
        info=info, unfilled=_unfilled(info), review=review, prompt=prompt,
        downloadable=downloadable, files=files,
        graph=graph, scan=_scan_summary(info.scan), columns=columns,
        metadata=_flatten(info.metadata)[:FIELDS_SHOWN], spec=_flatten(spec)[:FIELDS_SHOWN],
        notice=_notice(request),
    )  # fmt: skip


def _unfilled(info: VersionInfo) -> set[str]:
    """Facts a version leaves empty and its kind need not show (a prompt's flavor)."""
    optional = {"format": info.format, "flavor": info.flavor, "licence": info.license,
                "description": info.description, "gate": info.gate}  # fmt: skip
    shown = {"licence", "flavor", "gate"} if info.kind == "model" else set()
    return {k for k, v in optional.items() if not v and k not in shown}


@_each_kind("/{name}/{version}/download")
def download(
    request: Request, name: str, version: int = Path(ge=1), who: Viewer = Depends(viewer)
) -> Response:
    """The artifact's bytes (a folder's manifest), read with the caller's read scope."""
    who.require("read")
    resource = _resource(who, _kinds(request))
    info = resource.show(f"{name}@{version}")
    response = resource._artifact(info.ref)
    files = (info.scan or {}).get("files") or [{}]
    stem = str(files[0].get("path") or "").rsplit("/", 1)[-1]
    if info.artifact == "folder":
        filename = f"{name}-{version}.manifest.json"
    else:
        filename = stem or f"{name}-{version}.{info.format or 'bin'}"
    return attachment(response, filename)


@_each_kind("/{name}/{version}/files/{path:path}")
def download_file(
    request: Request,
    name: str,
    path: str,
    version: int = Path(ge=1),
    who: Viewer = Depends(viewer),
) -> Response:
    """One file of a folder artifact."""
    who.require("read")
    resource = _resource(who, _kinds(request))
    response = resource._artifact_file(f"{name}@{version}", path)
    return attachment(response, path.rsplit("/", 1)[-1])


# -- review --------------------------------------------------------------------------------


def _reason(info: VersionInfo) -> str:
    messages = [str(f.get("message", "")) for f in info.findings if f.get("message")]
    return "; ".join(messages) or "awaiting an admin's decision"


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    who.require("admin")
    pending = {
        kind: who.client.of_kind(kind).search(status="pending", limit=REVIEW_LIMIT)
        for kind in KINDS.values()
    }
    rows = [(v, _reason(v)) for versions in pending.values() for v in versions]
    rows.sort(key=lambda row: row[0].created_at)
    full = [kind for kind, versions in pending.items() if len(versions) >= REVIEW_LIMIT]
    return page(
        request, who, "registry/review.html", section="review", title="Review", rows=rows,
        full=full, limit=REVIEW_LIMIT, notice=_notice(request),
    )  # fmt: skip


@_each_kind("/{name}/{version}/{decision}", "post", dependencies=[Depends(check_same_origin)])
def decide(
    request: Request,
    name: str,
    decision: Literal["approve", "reject"],
    version: int = Path(ge=1),
    note: str = Form("", max_length=2000),
    back: str = Form(""),
    who: Viewer = Depends(viewer),
) -> RedirectResponse:
    """Approve (release) or reject (block for good) a version held for review, as an
    admin, then go back to where the form was."""
    approve = decision == "approve"
    who.require("admin")
    kinds = _kinds(request)
    resource = _resource(who, kinds)
    ref = f"{name}@{version}"
    info = resource.approve(ref, note=note) if approve else resource.reject(ref, note=note)
    target = "/ui/review" if back == "review" else version_url(info.kind, info.ref)
    query = urlencode({"approved" if approve else "rejected": info.ref})
    return RedirectResponse(f"{target}?{query}", status_code=303)
