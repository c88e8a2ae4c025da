"""How long each dashboard page takes to render on a big home: the issue 13 target.

Run from the repository root::

    .venv/bin/python benchmarks/ui_pages.py            # 10,000 runs x 100 points, ...
    .venv/bin/python benchmarks/ui_pages.py --quick    # a smaller home, for a smoke run
    .venv/bin/python benchmarks/ui_pages.py --home /tmp/big --keep   # fill once, rerun

It fills one home through the client (runs, metric points, model versions) and, for the
knowledge base, through the knowledge-base store itself with random unit vectors (the
page reads what is stored; embedding 100,000 chunks with MiniLM would take this machine
most of an hour and say nothing about the page). Then it builds the server's app in
this process and renders every page through ASGI, with no socket, signed out on an open
loopback home, so the time is the server's own: routing, the operations' queries and the
templates. Each page is rendered ``--repeats`` times after one warm-up; the median is
compared with the target, 300 ms.

There is no peer here: MLflow's UI renders in the browser from JSON, so its server does
different work. The REST reads it calls are compared in ``api_vs_mlflow.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from api_request_cost import asgi_caller

TARGET_MS = 300.0


def fill_runs(client: Any, runs: int, points: int, seed: int = 7) -> list[str]:
    """``runs`` finished runs with two curves of ``points // 2`` steps each, params and
    tags, in batches of 500 under 50 parent runs (selections look like this)."""
    rng = random.Random(seed)
    ids: list[str] = []
    parents = [client.runs.create(name=f"sweep-{p}", status="running").id for p in range(50)]
    for i in range(runs):
        lr = rng.choice((0.1, 0.03, 0.01, 0.003))
        run = client.runs.create(
            name=f"train-{i}", status="running", parent_id=parents[i % len(parents)],
            params={"lr": str(lr), "depth": str(rng.randint(2, 12)), "seed": str(i)},
            tags={"team": f"t{i % 7}"},
        )  # fmt: skip
        steps = max(1, points // 2)
        metrics = [
            {"key": key, "value": value, "step": step, "timestamp": 1_700_000_000_000 + step}
            for step in range(steps)
            for key, value in (("loss", 1 / (1 + lr * step) + rng.random() * 0.01),
                               ("accuracy", 0.5 + 0.45 * (1 - 1 / (1 + lr * step))))
        ]  # fmt: skip
        client.runs.log_batch(run.id, metrics=metrics)
        client.runs.finish(run.id)
        ids.append(run.id)
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1:,} runs", file=sys.stderr)
    for parent in parents:
        client.runs.finish(parent)
    return ids


def fill_versions(client: Any, versions: int, work: Path) -> list[str]:
    """``versions`` model versions: 50 names, tiny distinct safetensors files."""
    import numpy as np
    from safetensors.numpy import save_file

    refs = []
    names = 50
    for i in range(versions):
        path = work / "w.safetensors"
        save_file({"w": np.full((2, 2), float(i), dtype=np.float32)}, str(path))
        info = client.models.register(f"model-{i % names:02d}", path, license="MIT",
                                      tags={"team": f"t{i % 5}"})  # fmt: skip
        refs.append(info.ref)
    client.models.set_alias("model-00", 1, "champion")
    return refs


class RandomUnitVectors:
    """Stands in for MiniLM while filling: same dimension, a vector per text seeded by its
    hash, so the ingest path (chunking, the lexical index, the vector index) is real."""

    name, version, dimension = "random-unit-vectors", "bench", 384

    def embed(self, texts: Any) -> Any:
        import numpy as np

        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=self.dimension)
                for t in texts]  # fmt: skip
        out = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dimension)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-9)


def use_random_vectors() -> None:
    """Make the default embedder spec load ``RandomUnitVectors``: while filling, and
    while rendering, since a knowledge base refuses a different embedder than its own."""
    from stoa.develop.rag import embed

    embed._LOADED[embed.EmbedderSpec()] = RandomUnitVectors()


def fill_kb(client: Any, chunks: int, work: Path, per_doc: int = 50, seed: int = 3) -> str:
    """A knowledge base of about ``chunks`` chunks in ``chunks // per_doc`` Markdown
    documents, ingested through the client with ``RandomUnitVectors`` as the embedder."""
    use_random_vectors()
    rng = random.Random(seed)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "su", "ta", "ve", "zo")
             for b in ("ran", "tel", "bor", "sim", "dal", "pex", "mur", "qin")]  # fmt: skip
    folder = work / "corpus"
    folder.mkdir(exist_ok=True)
    documents = max(1, chunks // per_doc)
    for d in range(documents):
        sections = []
        for s in range(per_doc):
            body = " ".join(rng.choice(words) for _ in range(150))
            sections.append(f"## Section {s}\n\n{body}. Contact desk{d}@example.com.\n")
        (folder / f"doc-{d:05d}.md").write_text(f"# Document {d}\n\n" + "\n".join(sections))
    name = "big-kb"
    client.kbs.create(name, description="benchmark corpus", pii="redact")
    client.kbs.ingest(name, [folder], sync=True)
    return name


def pages(run_ids: list[str], refs: list[str], kb: str | None) -> dict[str, str]:
    run, other = run_ids[len(run_ids) // 2], run_ids[len(run_ids) // 3]
    name, version = refs[-1].split("@")
    listed = {
        "overview": "/ui",
        "models": "/ui/models",
        "model series": f"/ui/models/{name}",
        "model version": f"/ui/models/{name}/{version}",
        "review": "/ui/review",
        "runs": "/ui/runs",
        "runs filtered": "/ui/runs?param=lr%3D0.1&metric=accuracy%3E0.6",
        "run": f"/ui/runs/{run}",
        "compare": f"/ui/runs/compare?ids={run}&ids={other}",
        "selections": "/ui/selections",
        "scans": "/ui/scans",
    }
    if kb:
        listed |= {"kbs": "/ui/kbs", "kb": f"/ui/kbs/{kb}",
                   "kb query": f"/ui/kbs/{kb}/query?q=kasim+lotel+desk7"}  # fmt: skip
    return listed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100, help="metric points per run")
    parser.add_argument("--versions", type=int, default=1_000)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 200 versions, 10k chunks")
    parser.add_argument("--home", type=Path, default=None, help="fill here (kept) or reuse")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.versions, args.chunks = 1_000, 200, 10_000

    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    work = Path(tempfile.mkdtemp(prefix="stoa-ui-bench-"))
    home = args.home or work / "home"
    manifest = home / "ui-bench.json"
    client = LocalClient(settings=Settings(home=home))
    if manifest.exists():
        filled = json.loads(manifest.read_text())
        print(f"reusing {home}", file=sys.stderr)
    else:
        started = time.perf_counter()
        print("filling runs …", file=sys.stderr)
        filled = {"runs": fill_runs(client, args.runs, args.points)}
        print("filling model versions …", file=sys.stderr)
        filled["versions"] = fill_versions(client, args.versions, work)
        print("filling the knowledge base …", file=sys.stderr)
        filled["kb"] = fill_kb(client, args.chunks, work) if args.chunks else None
        filled["sizes"] = {"runs": args.runs, "points": args.points,
                           "versions": args.versions, "chunks": args.chunks}  # fmt: skip
        manifest.write_text(json.dumps(filled))
        print(f"filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    if filled.get("kb"):
        use_random_vectors()
    app = create_app(client=client)
    loop = asyncio.new_event_loop()
    results = []
    for label, path in pages(filled["runs"], filled["versions"], filled.get("kb")).items():
        target, _, query = path.partition("?")
        call = asgi_caller(app, target, query, ok=(200, 404))
        try:
            status = loop.run_until_complete(call())  # warm-up: compiles the templates
        except RuntimeError as exc:
            results.append({"page": label, "path": path, "median_ms": None, "error": str(exc)})
            continue
        if status == 404:
            results.append({"page": label, "path": path, "median_ms": None})
            continue
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            loop.run_until_complete(call())
            times.append((time.perf_counter() - start) * 1000)
        results.append({"page": label, "path": path, "median_ms": statistics.median(times),
                        "max_ms": max(times)})  # fmt: skip
    sizes = filled["sizes"]
    stored = {kb["name"]: kb for kb in client.kbs.list()}
    if filled.get("kb") in stored:
        sizes["chunks"] = stored[filled["kb"]].get("chunks", sizes["chunks"])  # as chunked
    client.close()
    if args.json:
        print(json.dumps({"sizes": sizes, "pages": results}, indent=2))
        return
    print(f"\nDashboard pages, server-side render time (median of {args.repeats})")
    print(f"  home: {sizes['runs']:,} runs x {sizes['points']} points, "
          f"{sizes['versions']:,} model versions, "
          f"{sizes['chunks']:,}-chunk knowledge base")  # fmt: skip
    print(f"  {'page':15} {'median ms':>10} {'max ms':>8}  target {TARGET_MS:.0f} ms")
    slow = []
    for r in results:
        if r["median_ms"] is None:
            print(f"  {r['page']:15} {r.get('error', '(no page)'):>10}")
            slow += [r["page"]] if "error" in r else []
            continue
        ok = r["median_ms"] < TARGET_MS
        slow += [] if ok else [r["page"]]
        print(
            f"  {r['page']:15} {r['median_ms']:10.1f} {r['max_ms']:8.1f}  {'ok' if ok else 'SLOW'}"
        )
    print(f"  target met on every page: {'yes' if not slow else 'no: ' + ', '.join(slow)}")


if __name__ == "__main__":
    main()
