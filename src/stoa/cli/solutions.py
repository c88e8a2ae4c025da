"""``stoa solutions``: register, run, inspect and diff solution specs.

The registry commands every kind shares (list, show, versions, alias…) come from
``cli/registry.py``; this module adds the solution-only ones to the same sub-app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table

from stoa.cli.context import (
    AddressOpt,
    JsonOpt,
    RayOpt,
    existing_path,
    parse_json_object,
    parse_pairs,
    ray_target,
    state,
)
from stoa.cli.output import console, emit, fields, note, version_detail
from stoa.cli.registry import DescOpt, TagOpt, solutions_app
from stoa.core.errors import InvalidInputError

app = solutions_app


@app.command("register")
def register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The solution's YAML spec.")],
    name: Annotated[str | None, typer.Option(help="The name, when the spec has none.")] = None,
    description: DescOpt = "",
    tag: TagOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate a spec, resolve every reference, and register it as a new version."""
    try:
        text = existing_path(path).read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text", field="spec") from None
    result = state(ctx).client.solutions.register(
        text, name=name, description=description, tags=parse_pairs(tag, "tag")
    )
    for warning in result.warnings:
        note(f"warning: {warning}")
    emit(result, json_out, lambda r: version_detail(r.version))


@app.command("run")
def run(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    input: Annotated[str, typer.Option("--input", "-i", help="The input: JSON, or plain text.")],
    overrides: Annotated[
        str | None, typer.Option(help='JSON: step id → changed fields, e.g. {"docs": {"k": 8}}.')
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a solution on one input and show the answer, the path and the trace."""
    value: Any = _input(input)
    result = state(ctx).client.solutions.run(
        ref, value, overrides=parse_json_object(overrides, "overrides")
    )
    emit(result, json_out, run_view)
    if result["status"] == "error":
        raise typer.Exit(1)


def _input(text: str) -> Any:
    """JSON when it parses as an object or a string, else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict | str):
        return value
    raise InvalidInputError(
        f"the input is a JSON {type(value).__name__}; give an object or plain text",
        field="input",
        fix='write --input \'{"text": "…"}\' or --input "plain text"',
    )


def run_view(result: dict[str, Any]) -> Group:
    """The answer first, then the path and a waterfall of the steps' spans."""
    output = result["output"]
    answer = output.get("text") if isinstance(output, dict) else None
    facts = [
        ("solution", result["solution"]),
        ("status", result["status"]),
        ("answer", answer if answer is not None else json.dumps(output, default=str)),
        ("path", " → ".join(result["path"]) or "(no step ran)"),
        ("latency", f"{result['latency_ms']:.1f} ms"),
        ("tokens", result["tokens"]),
        ("cost", f"${result['cost_usd']:.6f}"),
    ]
    if result["tags"]:
        facts.append(("tags", ", ".join(result["tags"])))
    if result.get("error"):
        facts.append(("error", f"{result['error']['step']}: {result['error']['message']}"))
    spans = Table("step", "ms", "decision", box=None, pad_edge=False)
    for span in result["trace"]["spans"][1:]:
        attributes = span["attributes"]
        decision = attributes.get("stoa.decision") or span.get("message") or ""
        spans.add_row(span["name"], f"{span['duration_ms']:.1f}", str(decision))
    return Group(fields("run", facts), spans)


@app.command("eval")
def eval_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    dataset: Annotated[
        Path, typer.Argument(help='JSONL: {"input": …, "reference": "…"} per line.')
    ],
    judge: Annotated[
        list[str] | None,
        typer.Option(help="embedding, or llm:PROVIDER[:MODEL]; repeatable. Default: embedding."),
    ] = None,
    sample: Annotated[
        int | None, typer.Option(help="Evaluate this many rows, drawn seeded.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the sample and the bootstrap.")] = 0,
    ray: RayOpt = False,
    address: AddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a set of requests through a solution and score the answers with judges; with
    --ray, in partitions across a Ray cluster, into the same report."""
    target = ray_target(ray, address)
    try:
        text = existing_path(dataset).read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{dataset} is not UTF-8 text", field="dataset") from None
    report = state(ctx).client.solutions.evaluate(
        ref, text, judges=judge or ["embedding"], sample=sample, seed=seed, ray=target
    )
    emit(report, json_out, eval_view)


def eval_view(report: dict[str, Any]) -> Group:
    """One row per judge and criterion: mean and 95 % interval; then latency and cost."""
    scores = Table(
        "judge",
        "criterion",
        "mean",
        "95 % CI",
        "n",
        title=(
            f"{report['solution']}: {report['sample']} of {report['of']} row(s), "
            f"statuses {report['statuses']}, run {report['run_id']}"
        ),
        title_justify="left",
    )
    for judge, criteria in report["scores"].items():
        for criterion, s in criteria.items():
            low, high = s["ci95"]
            scores.add_row(
                judge,
                criterion,
                f"{s['mean']:.3f}",
                f"{low:.3f} to {high:.3f}",
                str(s["n"]) + (f" ({s['errors']} failed)" if s["errors"] else ""),
            )
    latency, cost = report["latency_ms"], report["cost_usd"]
    facts = [
        ("latency p50", f"{latency['p50']:.1f} ms" if latency["p50"] is not None else "-"),
        ("latency p95", f"{latency['p95']:.1f} ms" if latency["p95"] is not None else "-"),
        ("cost", f"${cost['total']:.6f} in all, ${cost['mean']:.6f} per request"),
    ]
    return Group(scores, fields("solution", facts))


@app.command("spec")
def spec(ctx: typer.Context, ref: str) -> None:
    """Print a version's YAML as registered."""
    console.print(state(ctx).client.solutions.spec(ref), markup=False, highlight=False)


@app.command("diff")
def diff(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The version to compare from.")],
    new: Annotated[str, typer.Argument(help="The version to compare to.")],
) -> None:
    """A unified diff between two versions' YAML."""
    text = state(ctx).client.solutions.diff(new, against=old)
    console.print(text or "the two versions' specs are identical", markup=False, highlight=False)


@app.command("schema")
def schema(ctx: typer.Context) -> None:
    """Print the spec's JSON Schema (for editors and CI validation)."""
    print(json.dumps(state(ctx).client.solutions.schema(), indent=2))
