import io
import re
import shutil
from pathlib import Path

from rich.console import Console


def test_demo_runs_the_lifecycle_and_says_how_to_browse_it(monkeypatch, tmp_path):
    from stoa.demo.run import run_demo

    # The demo uses its own temporary home, whatever the environment points at.
    monkeypatch.setenv("STOA_DATABASE_URL", f"sqlite:///{tmp_path / 'must-stay-empty.db'}")
    monkeypatch.setenv("STOA_BLOB_URL", str(tmp_path / "must-stay-empty"))

    buffer = io.StringIO()
    out = run_demo(Console(file=buffer, width=200), keep=True)
    text = buffer.getvalue()
    home = Path(re.search(r"stoa --home (\S+) server", text).group(1))
    assert (home / "stoa.db").exists(), "the kept home holds what the dashboard shows"
    assert "http://127.0.0.1:8000/ui" in text
    shutil.rmtree(home)
    for step in [
        "register dataset",
        "train and log model",
        "set alias",
        "register prompt",
        "scan: clean pickle allowed",
        "scan: malicious pickle blocked",
        "pull: licence held for review",
        "load champion",
        "walk lineage",
        "search runs",
        "register local LLM",
        "select: ticket intents",
        "select: churn (tabular)",
        "knowledge base: ingest docs",
        "knowledge base: re-ingest",
        "knowledge base: evaluate",
        "solution: support assistant",
        "solution: evaluate with judges",
        "serve: a day of traffic",
        "scale: Ray Serve and Ray Data",
        "dashboard: render every page",
    ]:
        assert step in text
    scale = out["scale"]  # the day's endpoint on Ray answers as in process, and logs it all
    assert scale["identical"] == scale["replayed"] == scale["logged"] == 60
    assert scale["metrics_counted"] == 60 and scale["metrics_replicas"] == 2
    assert scale["batch_rows"] == scale["batch_identical"] == 300
    assert out["model"].status == "allowed" and out["model"].flavor == "sklearn"
    assert out["blocked"].status == "blocked"
    assert "os.system" in out["blocked"].findings[0]["message"]
    assert out["clean"].status == "allowed" and out["clean"].format == "pickle"
    assert (out["held"].status, out["held"].license) == ("pending", "CC-BY-NC-4.0")
    assert out["approved"].status == "allowed"
    assert out["declared"].status == "pending"  # a declared licence clears nothing
    assert out["copy"].status == "allowed"  # the approval follows the bytes
    tickets = out["tickets"]
    kinds = {r["kind"] for r in tickets["leaderboard"]}
    assert {"tfidf_linear", "embedding_head", "zero_shot", "llm_prompt"} <= kinds
    assert out["llm"].status == "allowed" and out["llm"].flavor == "causal-lm"
    llm = next(r for r in tickets["leaderboard"] if r["kind"] == "llm_prompt")
    assert "skipped" not in llm and "failed" not in llm, llm.get("rejected_because")
    assert llm["sample"] == {"rows": 10, "of": 480, "latency_calls": 3}
    assert llm["metrics"]["f1_macro"] >= 0 and llm["cost_per_1k"] > 0 and llm["size_mb"] > 90
    assert tickets["recommendation"] and tickets["registered"]["alias"] == "ticket-intent@champion"
    assert out["churn"]["leaderboard"][0]["metrics"]["roc_auc_ovr"] > 0.75
    assert out["accuracy"] > 0.9
    assert out["run"].status == "finished"
    assert [r.info.id for r in out["runs"]] == [out["run"].id]
    assert [n.type for n in out["lineage"].upstream] == ["run", "dataset"]
    assert out["kb_ingest"]["documents"]["added"] >= 9
    assert out["kb_ingest"]["documents"]["failed"] == 0
    assert out["kb_reingest"]["chunks"] == {"embedded": 0, "reused": 0}
    modes = out["kb_eval"]["modes"]
    for metric in ("mrr", "hit_at_k"):  # the quality bar, on the shipped QA set
        assert modes["hybrid"][metric] >= max(modes["vector"][metric], modes["lexical"][metric])
    runs = out["assistant"]
    assert len(runs) == 12 and all(r["status"] != "error" for r in runs), runs
    spans = [s for r in runs for s in r["trace"]["spans"]]
    kinds = {
        s["attributes"]["stoa.step.kind"] for s in spans if "stoa.step.kind" in s["attributes"]
    }
    assert kinds == {"call", "rules", "classify", "respond", "embed", "retrieve", "generate"}
    assert {r["status"] for r in runs} >= {"ok", "rejected", "handoff"}
    generated = [r for r in runs if "answer" in r["path"]]
    assert generated and all(r["tokens"] > 0 and r["cost_usd"] > 0 for r in generated)
    report = out["assistant_eval"]
    assert set(report["scores"]) == {"embedding", "llm:local:smollm2@1"}
    assert report["scores"]["embedding"]["correctness"]["n"] == report["sample"] == 4
    llm_judge = report["scores"]["llm:local:smollm2@1"]
    assert all(s["n"] == 4 and s["errors"] == 0 for s in llm_judge.values()), llm_judge
    traffic = out["traffic"]  # a simulated day through a real server, over HTTP
    assert traffic["requests"] >= 2000 and traffic["users"] >= 200
    assert traffic["errors_seen"] == 0
    rows = {(r["variant"], r["mode"]): r for r in traffic["variants"]}
    live = [rows[("a", "live")], rows[("b", "live")]]
    # Every answered request is in the logbook, split about evenly by sticky assignment.
    assert sum(r["predictions"] for r in live) == traffic["requests"]
    assert all(0.4 < r["predictions"] / traffic["requests"] < 0.6 for r in live)
    assert all(r["p50_latency_ms"] is not None for r in live)
    feedback = traffic["feedback"]
    assert feedback["sent"] == feedback["accepted"] > traffic["requests"] // 2
    assert feedback["duplicates"] > 0  # the resent batch counted once, by idempotency key
    logged = sum(n for r in traffic["variants"] for n in r["feedback"].values())
    assert logged == feedback["accepted"]
    assert all({"click", "rating", "conversion"} <= set(r["feedback"]) for r in live)
    shadows = traffic["shadow_runs"]  # mirrored, bounded: run and logged, or skipped
    assert shadows["ran"] == rows.get(("s", "shadow"), {"predictions": 0})["predictions"]
    assert shadows["ran"] + shadows["skipped"] > 0
    assert set(traffic["quality"]) == {"a", "b"}
    assert all(0 < q < 1 for q in traffic["quality"].values())
    assert out["dashboard_pages"] >= 19  # every page named by dashboard_pages rendered 200
    assert not (tmp_path / "must-stay-empty.db").exists()
    assert not (tmp_path / "must-stay-empty").exists()
