"""Knowledge bases: the list, and one knowledge base's documents, ingest history,
evaluation runs, and a query box that shows vector, lexical and hybrid results side by
side with the query's words highlighted.

The query box is a plain GET form: htmx swaps in only the results (``HX-Request``),
and without JavaScript the same address renders the whole page with them.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from stoa.core.errors import InvalidInputError
from stoa.ui.render import UiRoute, page
from stoa.ui.session import Viewer, viewer

router = APIRouter(route_class=UiRoute, include_in_schema=False)

#: Documents per page of the documents table.
PAGE_SIZE = 50
#: Versions shown in the ingest history; older ones are in `stoa kb show`.
HISTORY = 50
#: URIs listed per change in one version; the rest are counted.
URIS_SHOWN = 10
EVAL_RUNS = 20
MODES = ("vector", "lexical", "hybrid")
RESULTS_PER_MODE = 5
MAX_QUERY = 1000
#: A passage longer than this is shown as a window around its first highlighted word.
PASSAGE_CHARS = 600
EVAL_METRICS = (("hit_at_k", "hit@k"), ("recall_at_k", "recall@k"), ("mrr", "MRR"),
                ("ndcg_at_k", "nDCG@k"), ("latency_p95_ms", "p95 (ms)"))  # fmt: skip
_WORD = re.compile(r"\w+", re.UNICODE)
_SUFFIX = re.compile(r"(?:ing|es|ed|s)$")


@router.get("/kbs", response_class=HTMLResponse)
def kbs(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    return page(request, who, "kbs/list.html", section="kbs", title="Knowledge bases",
                kbs=who.client.kbs.list())  # fmt: skip


@router.get("/kbs/{name}", response_class=HTMLResponse)
def kb(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    page_no: int = Query(1, ge=1, le=100_000, alias="page"),
) -> HTMLResponse:
    return _kb_page(request, who, name, page_no)


@router.get("/kbs/{name}/query", response_class=HTMLResponse)
def kb_query(
    request: Request,
    name: str,
    who: Viewer = Depends(viewer),
    q: str = Query("", max_length=MAX_QUERY),
    page_no: int = Query(1, ge=1, le=100_000, alias="page"),
) -> HTMLResponse:
    """Results only for htmx; the whole page, results included, for a plain form."""
    if request.headers.get("hx-request"):
        return page(request, who, "kbs/_results.html", name=name, q=q,
                    **_search(who, name, q))  # fmt: skip
    return _kb_page(request, who, name, page_no, q=q)


def _kb_page(
    request: Request, who: Viewer, name: str, page_no: int, q: str | None = None
) -> HTMLResponse:
    client = who.client
    documents = client.kbs.documents(name, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
    info = next(k for k in client.kbs.list() if k["name"] == name)
    versions = client.kbs.versions(name, limit=HISTORY)
    evals = client.runs.search(tags={"kind": "kb-eval"}, params={"kb": name},
                               order_by="-created_at", limit=EVAL_RUNS)  # fmt: skip
    pages = max(1, -(-documents["documents"] // PAGE_SIZE))
    searched = _search(who, name, q) if q is not None else {"results": None, "error": None}
    return page(
        request, who, "kbs/detail.html", section="kbs", title=name, kb=info,
        documents=documents, page_no=page_no, pages=pages, versions=versions, evals=evals,
        q=q or "", modes=MODES, eval_metrics=EVAL_METRICS, uris_shown=URIS_SHOWN,
        history_limit=HISTORY, status=422 if searched["error"] else 200, **searched,
    )  # fmt: skip


def _search(who: Viewer, name: str, q: str) -> dict[str, Any]:
    """Each mode's best passages, highlighted; a bad query is a message, not an error page."""
    if not q.strip():
        return {"results": None, "error": "Type a question or some words to search."}
    try:
        found = {mode: who.client.kbs.query(name, q, k=RESULTS_PER_MODE, mode=mode)
                 for mode in MODES}  # fmt: skip
    except InvalidInputError as exc:
        if exc.field != "query":
            raise
        return {"results": None, "error": f"{exc.message}."}
    results = {
        mode: [{**hit, "passage": highlight(hit["text"], q)} for hit in hits]
        for mode, hits in found.items()
    }
    return {"results": results, "error": None}


def _terms(query: str) -> list[str]:
    """The query's words as the lexical search sees them, crudely stemmed so "refunds"
    also marks "refund" and "refunded"."""
    from stoa.develop.rag.kb_store import STOPWORDS

    words = [w.lower() for w in _WORD.findall(query)]
    kept = [w for w in words if w not in STOPWORDS] or words
    stems = {_SUFFIX.sub("", w) if len(w) > 4 else w for w in kept}
    return sorted((s for s in stems if len(s) >= 2), key=len, reverse=True)


def highlight(text: str, query: str) -> Markup:
    """``text`` escaped, with each word that starts with a query term in ``<mark>``.

    Every piece is escaped on its own before a mark is put around it, so nothing in the
    passage or the query can become markup.
    """
    terms = _terms(query)
    if not terms:
        return escape(text[:PASSAGE_CHARS])
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\w*", re.IGNORECASE)
    first = pattern.search(text)
    start = 0
    if len(text) > PASSAGE_CHARS and first is not None:
        start = max(0, first.start() - PASSAGE_CHARS // 4)
    window = text[start : start + PASSAGE_CHARS]
    pieces: list[Markup] = [Markup("…")] if start else []
    last = 0
    for match in pattern.finditer(window):
        pieces.append(escape(window[last : match.start()]))
        pieces.append(Markup("<mark>%s</mark>") % match.group())
        last = match.end()
    pieces.append(escape(window[last:]))
    if start + PASSAGE_CHARS < len(text):
        pieces.append(Markup("…"))
    return Markup("").join(pieces)
