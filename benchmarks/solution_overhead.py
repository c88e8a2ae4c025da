"""The solution runner's per-step overhead over calling the same blocks directly.

Two pipelines, each run both ways on the same inputs in one process:

- ``support``: rules (three CEL rules), a TF-IDF + logistic-regression classifier
  (scikit-learn), and a respond template: the cheap front of a support assistant.
- ``chain``: twenty respond-free rules steps (one CEL rule each) and a final respond:
  almost no work per step, so the runner's own bookkeeping is all there is to see.

"Direct" calls the same compiled CEL programs, the same model's ``predict_proba`` and
the same Jinja template in a plain loop, with no context, spans or trace. Overhead per
step = (runner p50 - direct p50) ÷ steps run. Target (issue 15): under 1 ms p50.

    .venv/bin/python benchmarks/solution_overhead.py [--runs 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cel
from jinja2.sandbox import ImmutableSandboxedEnvironment

from stoa.client import LocalClient
from stoa.core.settings import Settings

TEXTS = [
    "I forgot my password and cannot log in",
    "I was charged twice for my order",
    "the app crashes when I save a file",
    "how do I export my data to CSV",
]
SUPPORT = """\
name: support
steps:
  - id: policy
    kind: rules
    rules:
      - when: 'input.text.contains("password") && input.text.contains("send")'
        reject: We never ask for your password.
      - when: size(input.text) > 400
        tag: long
      - when: input.text.startsWith("URGENT")
        tag: urgent
  - id: intent
    kind: classify
    model: tickets@1
  - id: final
    kind: respond
    template: "Routing your {{ intent.label }} question ({{ '%.2f' % intent.confidence }})."
"""


def _chain(steps: int) -> str:
    lines = ["name: chain", "steps:"]
    for i in range(steps):
        lines += [f"  - id: s{i}", "    kind: rules", "    rules:",
                  f"      - when: size(input.text) > {1000 + i}", f"        tag: t{i}"]  # fmt: skip
    lines += ["  - id: final", "    kind: respond", "    template: '{{ input.text }}'"]
    return "\n".join(lines) + "\n"


def _model() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["reset my password", "locked out", "refund my order", "charged twice", "app crashes",
             "error when saving", "export to csv", "download my data"] * 5  # fmt: skip
    labels = ["account", "account", "billing", "billing", "bug", "bug", "howto", "howto"] * 5
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)


def _p50(fn: Any, runs: int) -> float:
    for text in TEXTS * 5:  # warm
        fn(text)
    times = []
    for i in range(runs):
        text = TEXTS[i % len(TEXTS)]
        started = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        client = LocalClient(settings=Settings(home=Path(tmp) / "home"), actor="bench")
        model = _model()
        client.models.log("tickets", model)
        client.solutions.register(SUPPORT)
        client.solutions.register(_chain(20))
        loaded = client.models.load("tickets@1")
        env = ImmutableSandboxedEnvironment()
        template = env.from_string(
            "Routing your {{ intent.label }} question ({{ '%.2f' % intent.confidence }})."
        )
        rules = [cel.compile('input.text.contains("password") && input.text.contains("send")'),
                 cel.compile("size(input.text) > 400"),
                 cel.compile('input.text.startsWith("URGENT")')]  # fmt: skip
        chain_rules = [cel.compile(f"size(input.text) > {1000 + i}") for i in range(20)]
        echo = env.from_string("{{ input.text }}")

        def support_direct(text: str) -> str:
            ctx = {"input": {"text": text}}
            for rule in rules:
                rule.execute(ctx)
            proba = loaded.predict_proba([text])[0]
            best = int(proba.argmax())
            intent = {"label": str(loaded.classes_[best]), "confidence": float(proba[best])}
            return template.render(intent=intent)

        def chain_direct(text: str) -> str:
            ctx = {"input": {"text": text}}
            for rule in chain_rules:
                rule.execute(ctx)
            return echo.render(input=ctx["input"])

        out: dict[str, Any] = {"runs": runs}
        for name, steps, direct in (("support", 3, support_direct), ("chain", 21, chain_direct)):
            ran = client.solutions.run(name, TEXTS[0])
            assert ran["status"] == "ok" and len(ran["path"]) == steps, ran
            runner = _p50(lambda text, name=name: client.solutions.run(name, text), runs)
            plain = _p50(direct, runs)
            out[name] = {
                "steps": steps,
                "direct_p50_ms": round(plain, 4),
                "runner_p50_ms": round(runner, 4),
                "overhead_per_step_ms": round((runner - plain) / steps, 4),
            }
        client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"runs per measurement: {result['runs']} (p50 of each)")
    for name in ("support", "chain"):
        r = result[name]
        verdict = "meets" if r["overhead_per_step_ms"] < 1 else "MISSES"
        print(f"{name:8} {r['steps']:2} steps  direct {r['direct_p50_ms']:.3f} ms  "
              f"runner {r['runner_p50_ms']:.3f} ms  overhead {r['overhead_per_step_ms']:.3f} "
              f"ms/step ({verdict} the < 1 ms target)")  # fmt: skip


if __name__ == "__main__":
    main()
