"""``stoa alerts``: rules on an endpoint's metrics, the alerts they raise, and
acknowledging them (docs/alerts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, table, when
from stoa.core.errors import InvalidInputError
from stoa.measure.alerts import parse_rules_yaml

app = typer.Typer(no_args_is_help=True, help="Alert rules and the alerts they raise.")
rules_app = typer.Typer(no_args_is_help=True, help="Create, list and disable alert rules.")
app.add_typer(rules_app, name="rules")


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _rules_table(rules: list[dict[str, Any]]) -> Any:
    return table(
        None,
        ["name", "endpoint", "condition", "for", "state", "last"],
        [
            (
                r["name"] + ("" if r["enabled"] else " (disabled)"),
                r["endpoint"],
                f"{r['signal']} {r['op']} {r['threshold']:g} over {r['window']}",
                r["for"] or "",
                r["state"],
                _value(r.get("last_value")),
            )
            for r in rules
        ],
        numbers=["last"],
        fixed=["state"],
    )


@rules_app.command("create")
def create(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="YAML: one rule, a list, or {rules: [...]}.")],
    json_out: JsonOpt = False,
) -> None:
    """Create every rule in the file, or none when one is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}", field="path") from None
    created = state(ctx).client.alerts.create_rules(parse_rules_yaml(text))
    emit(created, json_out, _rules_table)


@rules_app.command("list")
def list_rules(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include disabled rules.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Rules by name, with their state and last value."""
    rules = state(ctx).client.alerts.list_rules(include_disabled=all_)
    hint = "no alert rules yet; create one with `stoa alerts rules create FILE.yaml`"
    emit(rules, json_out, _rules_table, empty=hint)


@rules_app.command("disable")
def disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The rule's name.")],
    json_out: JsonOpt = False,
) -> None:
    """Stop evaluating a rule; its alerts stay listed, an open one resolves."""
    rule = state(ctx).client.alerts.disable_rule(name)
    emit(rule, json_out, lambda r: f"disabled alert rule {r['name']}")


@app.command("list")
def list_alerts(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved alerts.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 1000).")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Alerts still firing, newest first (every alert with --all)."""
    alerts = state(ctx).client.alerts.list(active_only=not all_, limit=limit)
    emit(
        alerts,
        json_out,
        lambda items: table(
            None,
            ["id", "rule", "endpoint", "state", "value", "started", "acked by"],
            [
                (
                    a["id"],
                    a["rule"],
                    a["endpoint"],
                    a["state"],
                    _value(a["value"]),
                    when(a["started_at"]),
                    a.get("acked_by") or "",
                )
                for a in items
            ],
            numbers=["id", "value"],
            fixed=["state"],
            times=["started"],
        ),
        empty="no alerts firing" if not all_ else "no alerts yet",
    )


@app.command("ack")
def ack(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert's id (see `stoa alerts list`).")],
    json_out: JsonOpt = False,
) -> None:
    """Acknowledge an alert; doing it twice keeps the first acknowledgement."""
    alert = state(ctx).client.alerts.ack(alert_id)
    emit(
        alert, json_out, lambda a: f"alert {a['id']} ({a['rule']}) acknowledged by {a['acked_by']}"
    )


@app.command("evaluate")
def evaluate(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Evaluate every rule once now and print what changed."""
    moves = state(ctx).client.alerts.evaluate()

    def render(items: list[dict[str, Any]]) -> Any:
        return table(
            None,
            ["rule", "change", "value", "alert"],
            [
                (
                    m["rule"],
                    m["error"] if "error" in m else f"{m['from']} -> {m['to']}",
                    _value(m.get("value")),
                    m.get("alert_id") or "",
                )
                for m in items
            ],
            numbers=["value", "alert"],
        )

    emit(moves, json_out, render, empty="no rule changed state")
