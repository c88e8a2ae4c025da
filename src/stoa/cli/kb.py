"""``stoa kb``: knowledge bases over private documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group

from stoa.cli.context import (
    AddressOpt,
    JsonOpt,
    RayOpt,
    parse_json_object,
    parse_pairs,
    ray_target,
    state,
)
from stoa.cli.output import counting_progress, emit, notes, table, when
from stoa.core.errors import InvalidInputError
from stoa.develop.rag.retrieve import FUSION_HELP

app = typer.Typer(
    help="Knowledge bases: ingest documents, search them, and measure retrieval.",
    no_args_is_help=True,
)
MODES_HELP = "vector, lexical or hybrid (reciprocal-rank fusion)."


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    embedder: Annotated[
        str,
        typer.Option(
            help="minilm (offline default), model:NAME@REF (a registered model), a name "
            "from STOA_EMBEDDERS, a sentence-transformers folder, or openai:MODEL with "
            "--embedder-url (no key is sent; configure a name for that)."
        ),
    ] = "minilm",
    embedder_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible API, ending in /v1.")
    ] = None,
    backend: Annotated[str, typer.Option(help="local (default) or milvus.")] = "local",
    backend_uri: Annotated[
        str | None, typer.Option(help="Milvus URI; default a Milvus Lite file in STOA_HOME.")
    ] = None,
    chunking: Annotated[
        str | None,
        typer.Option(
            help="JSON: target_tokens (at most what the embedder reads), overlap_tokens, "
            "context (title and headings lead each embedded chunk), e.g. "
            '\'{"target_tokens": 128, "overlap_tokens": 16}\'.'
        ),
    ] = None,
    pii: Annotated[str, typer.Option(help="allow, redact or block personal data.")] = "allow",
    description: Annotated[str, typer.Option(help="What the knowledge base holds.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Define a knowledge base: its embedder, chunking, vector backend and PII policy."""
    kb = state(ctx).client.kbs.create(
        name,
        embedder=embedder,
        embedder_url=embedder_url,
        backend=backend,
        backend_uri=backend_uri,
        chunking=parse_json_object(chunking, "chunking"),
        pii=pii,
        description=description,
    )
    emit(kb, json_out, lambda k: f"knowledge base {k['name']} ({k['embedder']['name']}, "
                                 f"{k['backend']['kind']}, pii {k['pii_policy']})")  # fmt: skip


@app.command("list")
def list_kbs(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every knowledge base with its latest version."""
    kbs = state(ctx).client.kbs.list()
    emit(kbs, json_out, lambda rows: table(
        None, ["name", "version", "embedder", "backend", "pii", "created"],
        [(k["name"], k["latest_version"], k["embedder"]["name"], k["backend"]["kind"],
          k["pii_policy"], when(k["created_at"])) for k in rows],
        numbers=("version",), times=("created",),
    ), empty="no knowledge bases yet; create one with `stoa kb create NAME`")  # fmt: skip


@app.command()
def show(ctx: typer.Context, name: str, json_out: JsonOpt = False) -> None:
    """Definition, totals, versions with their document diffs, and PII found per document."""
    emit(state(ctx).client.kbs.show(name), json_out, _detail)


def _detail(kb: dict[str, Any]) -> Group:
    about = table(
        f"knowledge base {kb['name']}", ["field", "value"],
        [("version", kb["latest_version"]), ("documents", kb["documents"]),
         ("chunks", kb["chunks"]),
         ("embedder", f"{kb['embedder']['name']} ({kb['embedder']['version']})"),
         ("chunking", f"{kb['chunking']['target_tokens']} tokens, "
                      f"overlap {kb['chunking']['overlap_tokens']}"),
         ("backend", kb["backend"]["kind"]), ("pii policy", kb["pii_policy"]),
         ("pii found", ", ".join(f"{k}: {n}" for k, n in kb["pii"].items()) or "none")],
    )  # fmt: skip
    versions = table(
        "versions", ["version", "added", "changed", "removed", "documents", "chunks", "created"],
        [(v["version"], len(v["diff"]["added"]), len(v["diff"]["changed"]),
          len(v["diff"]["removed"]), v["stats"].get("documents"), v["stats"].get("chunks"),
          when(v["created_at"])) for v in kb["versions"]],
        numbers=("version", "added", "changed", "removed", "documents", "chunks"),
        times=("created",),
    )  # fmt: skip
    pii = table(
        "documents with personal data", ["document", "findings"],
        [(d["uri"], ", ".join(f"{k}: {n}" for k, n in d["findings"].items()))
         for d in kb["documents_with_pii"]],
    )  # fmt: skip
    return Group(about, versions, pii) if kb["documents_with_pii"] else Group(about, versions)


@app.command()
def ingest(
    ctx: typer.Context,
    name: str,
    paths: Annotated[list[str], typer.Argument(help="Files, folders or fsspec URLs.")],
    sync: Annotated[
        bool, typer.Option(help="Remove stored documents under PATHS that are gone.")
    ] = False,
    pattern: Annotated[
        list[str] | None, typer.Option(help="Glob inside folders, e.g. '**/*.md'; repeatable.")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE metadata for every document.")
    ] = None,
    ray: RayOpt = False,
    address: AddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add new and changed documents; unchanged ones cost a hash, and nothing is re-embedded.
    With --ray the new chunks are embedded across a Ray cluster."""
    client = state(ctx).client
    target = ray_target(ray, address)
    with counting_progress(notes.is_terminal, "ingesting", "documents") as progress:
        summary = client.kbs.ingest(
            name, paths, sync=sync, patterns=pattern, metadata=parse_pairs(meta, "meta"),
            progress=progress, ray=target,
        )  # fmt: skip
    emit(summary, json_out, _summary)


def _summary(s: dict[str, Any]) -> Group:
    d, c = s["documents"], s["chunks"]
    lines = table(
        f"ingest -> version {s['version']}", ["documents", "count"],
        [(k, d[k]) for k in ("added", "changed", "unchanged", "removed", "failed")]
        + [("chunks embedded", c["embedded"]), ("chunks reused", c["reused"])],
    )  # fmt: skip
    if not s["failures"]:
        return Group(lines)
    failed = table("not ingested", ["document", "reason"],
                   [(f["uri"], f["reason"]) for f in s["failures"]])  # fmt: skip
    return Group(lines, failed)


@app.command()
def query(
    ctx: typer.Context,
    name: str,
    text: str,
    k: Annotated[int, typer.Option(help="How many chunks.")] = 5,
    mode: Annotated[str, typer.Option(help=MODES_HELP)] = "hybrid",
    where: Annotated[
        str | None,
        typer.Option(help='Metadata filter JSON: {"lang": "en", "year": {"gte": 2024}}.'),
    ] = None,
    mmr: Annotated[
        float | None, typer.Option(help="MMR diversity: relevance weight 0..1 (e.g. 0.5).")
    ] = None,
    rerank: Annotated[
        str | None, typer.Option(help="A local cross-encoder folder to rerank with.")
    ] = None,
    per_document: Annotated[
        int, typer.Option(help="At most this many chunks from one document; 0: no limit.")
    ] = 2,
    fusion: Annotated[str | None, typer.Option(help=f"Hybrid's merge: {FUSION_HELP}.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The chunks that answer TEXT, each with its source, heading path and offsets."""
    results = state(ctx).client.kbs.query(
        name, text, k=k, mode=mode, where=parse_json_object(where, "where"), mmr=mmr,
        reranker=rerank, per_document=per_document, fusion=fusion,
    )  # fmt: skip
    emit(results, json_out, lambda rows: table(
        f"{mode} results", ["#", "score", "source", "section", "offsets", "text"],
        [(n, f"{r['score']:.4f}", r["uri"].rsplit("/", 1)[-1], " > ".join(r["heading_path"]),
          f"{r['start']}-{r['end']}", _snippet(r["text"])) for n, r in enumerate(rows, 1)],
        numbers=("#", "score"),
    ), empty=f"nothing in {name} matches; see what it holds: `stoa kb show {name}`")  # fmt: skip


def _snippet(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@app.command("delete-docs")
def delete_docs(
    ctx: typer.Context,
    name: str,
    uris: Annotated[
        list[str],
        typer.Argument(
            help="Files or folders as ingest took them (gone ones too), or document URIs "
            "as `kb show --json` lists them; a folder removes every document under it."
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Remove documents and their chunks; the removal is a new version."""
    result = state(ctx).client.kbs.delete_documents(name, uris)
    emit(result, json_out, lambda r: f"removed {len(r['removed'])} -> version {r['version']}")


@app.command("eval")
def eval_kb(
    ctx: typer.Context,
    name: str,
    qa: Annotated[Path, typer.Argument(help='JSONL: {"query": ..., "relevant": [URI or path]}.')],
    k: Annotated[int, typer.Option(help="Cut-off for hit@k, recall@k and nDCG@k.")] = 5,
    mode: Annotated[
        list[str] | None, typer.Option(help=f"{MODES_HELP} Repeatable; default all three.")
    ] = None,
    fusion: Annotated[str | None, typer.Option(help=f"Hybrid's merge: {FUSION_HELP}.")] = None,
    per_document: Annotated[
        int, typer.Option(help="At most this many chunks from one document; 0: no limit.")
    ] = 2,
    json_out: JsonOpt = False,
) -> None:
    """hit@k, recall@k, MRR, nDCG@k and latency per mode, side by side; logged as a run."""
    if not qa.is_file():
        raise InvalidInputError(f"{qa} is not a file", field="qa", fix="give a JSONL file")
    try:
        text = qa.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{qa} is not UTF-8 text", field="qa") from None
    options: dict[str, Any] = {"k": k, "fusion": fusion, "per_document": per_document}
    if mode:
        options["modes"] = mode
    report = state(ctx).client.kbs.eval(name, text, **options)
    emit(report, json_out, eval_table)


def eval_table(report: dict[str, Any]) -> Any:
    k = report["k"]
    return table(
        f"retrieval quality at k={k} ({report['questions']} questions, run {report['run_id']})",
        ["mode", f"hit@{k}", f"recall@{k}", "MRR", f"nDCG@{k}", "p50 ms", "p95 ms"],
        [(mode, f"{m['hit_at_k']:.3f}", f"{m['recall_at_k']:.3f}", f"{m['mrr']:.3f}",
          f"{m['ndcg_at_k']:.3f}", f"{m['latency_ms']['p50']:.1f}",
          f"{m['latency_ms']['p95']:.1f}") for mode, m in report["modes"].items()],
    )  # fmt: skip
