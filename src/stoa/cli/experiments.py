"""``stoa experiments report/analyze/promote``: A/B decisions from the command line."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.text import Text

from stoa.cli.context import JsonOpt, parse_number_pairs, state
from stoa.cli.output import emit, table

app = typer.Typer(no_args_is_help=True, help="A/B decisions on business metrics.")

MetricOpt = Annotated[
    list[str] | None, typer.Option("--metric", help="A goal metric (repeat for several).")
]
RuleOpt = Annotated[
    str, typer.Option(help="sequential (default; safe to look daily), frequentist or bayesian.")
]
AlphaOpt = Annotated[float, typer.Option(help="The false-positive rate, split over goals.")]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _p(value: Any) -> str:
    return "-" if value is None else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def report_view(r: dict[str, Any]) -> Any:
    """The comparisons as a table, then the SRM check and the decision with its reason."""
    rows = []
    for c in r["comparisons"]:
        lift = c["relative_lift"]
        seq, freq, bayes = c.get("sequential"), c.get("frequentist"), c.get("bayesian")
        rule_p = seq if r["rule"] == "sequential" else freq
        evidence = [f"p {_p(rule_p['p_value'])}" if rule_p else "",
                    f"win {bayes['chance_to_win']:.0%}" if bayes else ""]  # fmt: skip
        rows.append((
            c["variant"],
            c["metric"] + ("\n(guardrail)" if c["role"] == "guardrail" else ""),
            _num(c["control"]["estimate"]["estimate"]),
            _num(c["treatment"]["estimate"]["estimate"]),
            f"{_pct(lift['estimate'])}\n[{_pct(lift['ci_low'])}, {_pct(lift['ci_high'])}]",
            "\n".join(e for e in evidence if e),
            c["verdict"],
        ))  # fmt: skip
    head = ["variant", "metric", "A", "B", "lift [interval]", "evidence", "verdict"]
    title = f"{r.get('endpoint') or r.get('table')}: each variant against {r['control']}"
    parts: list[Any] = [
        table(title, head, rows, numbers=["A", "B"], fixed=["lift [interval]", "evidence"])
    ]
    units = ", ".join(f"{v['name']} {v['units']:,}" for v in r["variants"])
    parts.append(Text(f"units: {units} ({r['rule']} rule)"))
    srm = r.get("srm")
    if srm:
        state_ = "MISMATCH" if srm["flagged"] else "ok"
        parts.append(Text(f"sample ratio: {state_} (p = {_p(srm['p_value'])}, expected "
                          f"{_counts(srm['expected'])})"))  # fmt: skip
    parts.append(Text(f"correction: {r['correction']}"))
    decision = r["decision"]
    parts.append(Text(f"decision: {decision['label']}", style="bold"))
    parts.append(Text(f"because: {decision['reason']}"))
    return Group(*parts)


def _counts(values: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:,.0f}" for k, v in values.items()) + "}"


@app.command()
def report(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    metric: MetricOpt = None,
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            "--guardrail", help="Guardrail metrics (default: latency_p95, error_rate, cost_per_1k)."
        ),
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="From this time (UTC).")] = None,
    config_version: Annotated[
        int | None, typer.Option(help="The endpoint config to analyse (default: the current).")
    ] = None,
    control: Annotated[str | None, typer.Option(help="Default: the first live variant.")] = None,
    rule: RuleOpt = "sequential",
    alpha: AlphaOpt = 0.05,
    json_out: JsonOpt = False,
) -> None:
    """Each live variant against the control on business metrics, with the decision."""
    result = state(ctx).client.experiments.report(
        endpoint, metrics=metric or None, guardrails=guardrail, since=since,
        config_version=config_version, control=control, rule=rule, alpha=alpha,
    )  # fmt: skip
    emit(result, json_out, report_view)


@app.command()
def analyze(
    ctx: typer.Context,
    table_ref: Annotated[str, typer.Argument(metavar="TABLE", help="Dataset ref or path.")],
    variant: Annotated[str, typer.Option(help="The column naming each unit's variant.")],
    metric: Annotated[
        list[str],
        typer.Option(
            "--metric",
            help="COL:proportion, COL:mean or NUM/DEN:ratio [:lower][:guardrail]; repeat.",
        ),
    ],
    weights: Annotated[
        str | None, typer.Option(help="The planned split, e.g. a=50,b=50 (for the SRM check).")
    ] = None,
    control: Annotated[str | None, typer.Option(help="Default: the first weighted one.")] = None,
    rule: RuleOpt = "sequential",
    alpha: AlphaOpt = 0.05,
    json_out: JsonOpt = False,
) -> None:
    """The same engine on a table with one row per unit, from anywhere."""
    parsed = parse_number_pairs(weights.split(","), "weights", "a=50,b=50") if weights else None
    result = state(ctx).client.experiments.analyze(
        table_ref, variant=variant, metrics=metric, weights=parsed, control=control,
        rule=rule, alpha=alpha,
    )  # fmt: skip
    emit(result, json_out, report_view)


@app.command()
def promote(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    variant: Annotated[str, typer.Argument(help="The variant that takes all live traffic.")],
    reason: Annotated[str, typer.Option(help="Why (required with --force).")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Promote although the report does not recommend it.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Move all live traffic to the winner; the config's note records the decision."""
    result = state(ctx).client.experiments.promote(endpoint, variant, reason=reason, force=force)
    emit(result, json_out, lambda r: f"{r['endpoint']} v{r['version']}: {r['note']}")
