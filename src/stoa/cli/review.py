"""``stoa review``: human review queues, judge-human agreement and quality over time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Group

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, fields, table, when
from stoa.core.errors import InvalidInputError

app = typer.Typer(no_args_is_help=True, help="Review predictions by hand; measure judges.")
queues_app = typer.Typer(no_args_is_help=True, help="Create and list review queues.")
app.add_typer(queues_app, name="queues")

ReviewerOpt = Annotated[
    str | None,
    typer.Option(help="Who is reviewing (default: your token's name, else STOA_USER)."),
]
SinceOpt = Annotated[datetime | None, typer.Option(help="From this time (ISO 8601, UTC).")]


def _spec(text: str) -> dict[str, Any]:
    """A spec from a YAML/JSON file, or written inline."""
    path = Path(text)
    try:
        source = path.read_text() if len(text) < 4096 and path.is_file() else text
        spec = yaml.safe_load(source)
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(
            f"the spec is not readable YAML: {str(exc).splitlines()[0]}",
            field="spec",
            fix="give a YAML file, or inline YAML such as '{rules: [{random: 0.1}]}'",
        ) from None
    if not isinstance(spec, dict):
        raise InvalidInputError(
            "the spec must be a YAML mapping",
            field="spec",
            fix="give a YAML file, or inline YAML such as '{rules: [{random: 0.1}]}'",
        )
    return spec


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@queues_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The queue's name.")],
    endpoint: Annotated[str, typer.Option("--endpoint", "-e", help="The endpoint it reviews.")],
    spec: Annotated[
        str,
        typer.Option(help="Rules and labels: a YAML file or inline YAML (see docs/review.md)."),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Create a queue that fills by rule from an endpoint's predictions."""
    queue = state(ctx).client.reviews.create_queue(name, endpoint, _spec(spec))
    emit(queue, json_out, lambda q: f"created review queue {q['name']} on {q['endpoint']}")


@queues_app.command("list")
def list_(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e", help="Only this one.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every review queue, with its rules and labels."""
    rows = state(ctx).client.reviews.list_queues(endpoint=endpoint)
    emit(
        rows,
        json_out,
        lambda qs: table(
            None,
            ["queue", "endpoint", "rules", "labels"],
            [
                (
                    q["name"],
                    q["endpoint"],
                    ", ".join(_short(r, 60) for r in q["spec"]["rules"]),
                    ", ".join(e["name"] for e in q["spec"]["labels"]),
                )
                for q in qs
            ],
        ),
        empty="no review queues",
    )


@app.command("fill")
def fill(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    json_out: JsonOpt = False,
) -> None:
    """Queue the new predictions its rules pick (`next` does this too)."""
    done = state(ctx).client.reviews.fill(queue)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(done["by_reason"].items()))
    emit(
        done,
        json_out,
        lambda d: (
            f"added {d['added']} item(s)"
            + (f" ({reasons})" if reasons else "")
            + f" from {d['predictions_scanned']} predictions and "
            f"{d['feedback_scanned']} feedback events"
            + ("; more to read: run it again" if d["more"] else "")
        ),
    )


def _render_item(item: dict[str, Any]) -> Group:
    head = fields(
        f"item {item['id']} ({item['queue']}, queued for {item['reason']})",
        [
            ("prediction", item["prediction_id"]),
            ("variant", item.get("variant")),
            ("input", _short(item.get("input"))),
            ("output", _short(item.get("output"))),
            ("held by", item.get("claimed_by")),
            ("claim ends", when(item.get("claimed_until"))),
            ("labels", " / ".join(e["name"] for e in item["labels"])),
        ],
    )
    context = table(
        "retrieved context (* = cited)",
        ["n", "source", "passage"],
        [
            (f"{p.get('n', '')}{'*' if p.get('cited') else ''}", p.get("source", ""),
             _short(p.get("text", ""), 200))
            for p in item.get("context") or []
        ],
    )  # fmt: skip
    how = f"label it: stoa review label {item['id']} LABEL" + (
        " [--correction TEXT]" if item.get("corrections") else ""
    )
    return Group(head, context, how) if item.get("context") else Group(head, how)


@app.command("next")
def next_(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    reviewer: ReviewerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Claim the next item and print it: input, context, output and label schema."""
    item = state(ctx).client.reviews.next(queue, reviewer=reviewer)
    if item is None:
        emit(None, json_out, lambda _: f"queue {queue} has nothing left to review")
        return
    emit(item, json_out, _render_item)


@app.command("label")
def label(
    ctx: typer.Context,
    item: Annotated[int, typer.Argument(help="The item's id (from `next`).")],
    value: Annotated[str, typer.Argument(metavar="LABEL", help="One of the queue's labels.")],
    correction: Annotated[str | None, typer.Option(help="What the answer should be.")] = None,
    reviewer: ReviewerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Label an item; stored as feedback with source human."""
    done = state(ctx).client.reviews.label(item, value, correction=correction, reviewer=reviewer)
    emit(done, json_out, lambda d: f"item {d['id']} labelled {d['label']} by {d['reviewer']}")


@app.command("release")
def release(
    ctx: typer.Context,
    item: Annotated[int, typer.Argument(help="The item's id.")],
    reviewer: ReviewerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give a claimed item back to the queue."""
    done = state(ctx).client.reviews.release(item, reviewer=reviewer)
    emit(done, json_out, lambda d: f"item {d['id']} is open again")


@app.command("stats")
def stats(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    json_out: JsonOpt = False,
) -> None:
    """Open, claimed and done items, by label and by reason; median time to label."""
    found = state(ctx).client.reviews.stats(queue)

    def render(s: dict[str, Any]) -> Group:
        median = s["median_s_to_label"]
        head = fields(
            f"queue {s['queue']} ({s['endpoint']})",
            [("open", str(s["open"])), ("claimed", str(s["claimed"])), ("done", str(s["done"])),
             ("median to label", f"{median:.0f} s" if median is not None else "-")],
        )  # fmt: skip
        labels = table("by label", ["label", "items"], s["by_label"].items(), numbers=["items"])
        reasons = table("by reason", ["reason", "items"], s["by_reason"].items(), numbers=["items"])
        return Group(head, labels, reasons)

    emit(found, json_out, render)


def _figure(entry: dict[str, Any]) -> str:
    if entry["value"] is None:
        return "-"
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


@app.command("agreement")
def agreement(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    criterion: Annotated[str, typer.Option(help="The judge criterion.")] = "correctness",
    queue: Annotated[str | None, typer.Option(help="Only this queue's labels.")] = None,
    since: SinceOpt = None,
    weights: Annotated[str, typer.Option(help="linear or quadratic (ordinal labels).")] = "linear",
    min_items: Annotated[int, typer.Option(help="Items needed to replace reviewers.")] = 100,
    min_kappa: Annotated[float, typer.Option(help="Kappa lower bound needed.")] = 0.6,
    json_out: JsonOpt = False,
) -> None:
    """Judge-human agreement, and whether the judge can replace human review."""
    report = state(ctx).client.reviews.agreement(
        endpoint, criterion=criterion, queue=queue, since=since, weights=weights,
        min_items=min_items, min_kappa=min_kappa,
    )  # fmt: skip

    def render(r: dict[str, Any]) -> Group:
        level = f"{r['confidence']:.0%}"
        head = fields(
            f"{r['endpoint']} / {r['criterion']}: {r['n']} items scored by both",
            [(f"kappa ({level} CI)", _figure(r["kappa"])),
             (f"weighted kappa, {r['weights']}", _figure(r["weighted_kappa"]) if r["ordinal"]
              else None),
             ("spearman rho", _figure(r["spearman"])),
             ("judge replaces reviewers", "yes" if r["verdict"]["replace"] else "no"),
             ("why", r["verdict"]["reason"])],
        )  # fmt: skip
        names = r["confusion"]["labels"]
        grid = table(
            "rows: human, columns: judge",
            ["human \\ judge", *names],
            [(n, *row) for n, row in zip(names, r["confusion"]["counts"], strict=True)],
            numbers=names,
        )
        return Group(head, grid)

    emit(report, json_out, render)


@app.command("quality")
def quality(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    bucket: Annotated[str, typer.Option(help="hour, day or seconds.")] = "day",
    since: SinceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Accuracy, macro F1 and calibration per window and variant, from label feedback."""
    rows = state(ctx).client.reviews.quality(endpoint, bucket=bucket, since=since)

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    emit(
        rows,
        json_out,
        lambda items: table(
            None,
            ["from", "variant", "n", "accuracy", "f1", "ece"],
            [
                (
                    when(r["start"]),
                    r["variant"],
                    r["n"],
                    number(r["accuracy"]),
                    number(r["f1"]),
                    number(r["ece"]),
                )
                for r in items
            ],
            numbers=["n", "accuracy", "f1", "ece"],
            times=["from"],
        ),
        empty="no labelled predictions with a predicted label",
    )
