"""Evaluate a solution version on a JSONL set of requests with one or more judges.

Each line is ``{"input": {...} or "text", "reference": "…"?}``. Every row runs
through the solution exactly as a request would; the judges score the answer against
the input, the passages its retrieve steps found, and the reference when there is one.
The report gives each judge's mean per criterion with a bootstrap 95 % interval, the
solution's latency and cost, and how many rows ended how; it is logged as a run
(tag ``kind=solution-eval``) so versions can be compared in ``stoa runs compare``.

``sample`` evaluates a seeded random subset: with a CPU-bound LLM in the loop a full
set can take longer than the answer is worth, and the interval says what the sample
size costs in certainty.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from stoa.core.errors import InvalidInputError
from stoa.develop import tracking
from stoa.develop.judges import (
    EmbeddingJudge,
    EvalRow,
    Judge,
    LLMJudge,
    judge_usage,
    score_rows,
    summarize,
)
from stoa.develop.llm.providers import ProviderSpec, load_provider
from stoa.develop.solution.runner import Environment, run_solution

MAX_ROWS = 100_000
JUDGE_HELP = "embedding, or llm:PROVIDER[:MODEL] such as llm:local:smollm2@champion"


def parse_judges(names: Sequence[str], env: Environment) -> list[Judge]:
    """``embedding`` (offline heuristic) or ``llm:PROVIDER[:MODEL]`` (a rubric prompt:
    JSON verdicts from a served model, the expected 1-5 grade from a local one)."""
    if not names:
        raise InvalidInputError("name at least one judge", field="judges", fix=JUDGE_HELP)
    judges: list[Judge] = []
    for name in dict.fromkeys(names):
        if name == "embedding":
            judges.append(EmbeddingJudge())
            continue
        kind, _, rest = name.partition(":")
        if kind != "llm" or not rest:
            raise InvalidInputError(f"unknown judge {name!r}", field="judges", fix=JUDGE_HELP)
        provider, _, model = rest.partition(":")
        loaded = load_provider(ProviderSpec(provider, model), registry=env.registry,
                               settings=env.settings)  # fmt: skip
        # A model that scores choices (a local one, small) grades on the 1-5 scale by
        # expected digit; a served model writes a JSON verdict with its rationale.
        mode = "scale" if callable(getattr(loaded, "score_choices", None)) else "json"
        judges.append(LLMJudge(loaded, mode=mode))
    return judges


def parse_rows(text: str) -> list[dict[str, Any]]:
    """The JSONL set; a bad line is an error naming its number."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"line {number} is not JSON: {exc.msg}", field="dataset",
                                    fix="write one JSON object per line") from None  # fmt: skip
        if not isinstance(row, dict) or "input" not in row:
            raise InvalidInputError(
                f"line {number} has no input", field="dataset",
                fix='write {"input": {"text": "…"}, "reference": "…"} per line',
            )  # fmt: skip
        reference = row.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise InvalidInputError(f"line {number}: reference must be text", field="dataset")
        rows.append(row)
        if len(rows) > MAX_ROWS:
            raise InvalidInputError(f"the set is over {MAX_ROWS} rows", field="dataset",
                                    fix="evaluate a sample with --sample")  # fmt: skip
    if not rows:
        raise InvalidInputError("the set has no rows", field="dataset")
    return rows


#: One partition's share of an evaluation: its rows as judged, their scores, how they
#: ended and what the judges' model calls cost.
Partial = dict[str, Any]
#: Evaluates the row partitions it is given (``stoa solutions eval --ray`` spreads them
#: over a cluster); the parts come back in the order of the partitions.
PartitionMapper = Callable[[list[list[dict[str, Any]]]], list[Partial]]


def evaluate_partition(
    env: Environment,
    version: str,
    rows: Sequence[dict[str, Any]],
    judges: Sequence[Judge],
    *,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Partial:
    """Run and judge ``rows``; a pure function of them, so partitions can go to any
    worker and add up to what one process would report."""
    before = judge_usage(judges)
    scored: list[EvalRow] = []
    statuses: Counter[str] = Counter()
    for done, row in enumerate(rows, start=1):
        result = run_solution(env, version, row["input"], overrides=overrides)
        statuses[result.status] += 1
        answer = result.output.get("text") if isinstance(result.output, dict) else None
        scored.append(EvalRow(
            input=_question(row["input"]),
            context=[p["text"] for step in result.steps.values() if isinstance(step, dict)
                     for p in step.get("passages", [])],
            output=answer if isinstance(answer, str) else json.dumps(result.output, default=str),
            reference=row.get("reference"),
            latency_ms=result.latency_ms,
            cost_usd=result.cost_usd,
        ))  # fmt: skip
        if progress:
            progress(done, len(rows))
    return {"rows": scored, "scores": score_rows(scored, judges), "statuses": dict(statuses),
            "usage": _usage_since(before, judge_usage(judges))}  # fmt: skip


def _usage_since(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """What the judges spent between two readings (a worker's judges outlive a partition)."""
    return {name: _add(used, before.get(name, {}), sign=-1) for name, used in after.items()}


def _add(a: dict[str, Any], b: dict[str, Any], *, sign: int = 1) -> dict[str, Any]:
    """Usage ``a + sign * b``, field by field: counts and costs add, flags or, and a
    figure one side lacks (None) is taken from the other."""
    total = dict(a)
    for key, value in b.items():
        mine = total.get(key)
        if isinstance(value, bool) or isinstance(mine, bool):
            total[key] = bool(mine) or bool(value)
        elif isinstance(value, int | float) and isinstance(mine, int | float):
            total[key] = mine + sign * value
        elif mine is None:
            total[key] = value if sign > 0 else None
    return total


def evaluate_solution(
    env: Environment,
    ref: str,
    text: str,
    judges: Sequence[str],
    *,
    actor: str,
    sample: int | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    mapper: PartitionMapper | None = None,
    partition_rows: int = 50,
) -> dict[str, Any]:
    rows = parse_rows(text)
    chosen = parse_judges(judges, env)
    version = env.version("solution", ref).ref
    total = len(rows)
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise InvalidInputError("sample must be a positive number of rows", field="sample")
        if sample < total:
            rows = random.Random(seed).sample(rows, sample)
    if mapper is None:
        parts = [evaluate_partition(env, version, rows, chosen, overrides=overrides,
                                    progress=progress)]  # fmt: skip
    else:
        cut = [rows[i : i + partition_rows] for i in range(0, len(rows), partition_rows)]
        parts = mapper(cut)
    scored = [row for part in parts for row in part["rows"]]
    statuses: Counter[str] = Counter()
    usage: dict[str, dict[str, Any]] = {}
    for part in parts:
        statuses.update(part["statuses"])
        for name, used in part["usage"].items():
            usage[name] = _add(usage.get(name, {}), used)
    report = summarize(scored, [s for part in parts for s in part["scores"]],
                       [j.name for j in chosen], usage, seed=seed).to_dict()  # fmt: skip
    report.update(solution=version, statuses=dict(statuses), sample=len(rows), of=total)
    report["run_id"] = _log(env, report, version, judges, actor)
    return report


def _question(value: Any) -> str:
    if isinstance(value, dict):
        text = value.get("text")
        return text if isinstance(text, str) else json.dumps(value, default=str)
    return str(value)


def _log(env: Environment, report: dict[str, Any], version: str, judges: Sequence[str],
         actor: str) -> str:  # fmt: skip
    run = tracking.create_run(
        env.registry, f"solution-eval-{version.split('@')[0]}", actor=actor, status="running",
        params={"solution": version, "judges": ",".join(judges), "rows": report["sample"],
                "of": report["of"]},
        tags={"kind": "solution-eval"},
    )  # fmt: skip
    now = int(time.time() * 1000)
    metrics = []
    for judge, criteria in report["scores"].items():
        judge = re.sub(r"[^A-Za-z0-9_\-./: ]", "_", judge)  # llm:local:smollm2@1: no @ in keys
        for criterion, summary in criteria.items():
            if summary["mean"] == summary["mean"]:  # not NaN
                metrics.append((f"{judge}.{criterion}", summary["mean"], 0, now))
                low, high = summary["ci95"]
                metrics += [(f"{judge}.{criterion}_ci_low", low, 0, now),
                            (f"{judge}.{criterion}_ci_high", high, 0, now)]  # fmt: skip
    for key in ("p50", "p95"):
        if report["latency_ms"].get(key) is not None:
            metrics.append((f"latency_{key}_ms", report["latency_ms"][key], 0, now))
    metrics.append(("cost_usd_total", report["cost_usd"]["total"], 0, now))
    tracking.log_batch(env.registry.db, run.id, metrics=metrics)
    tracking.finish(env.registry.db, run.id)
    return run.id
