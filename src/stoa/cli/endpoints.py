"""``stoa endpoints`` (create, list, show, set-traffic, archive, predict), ``stoa feedback``
and ``stoa serve MODEL@ALIAS``: each a thin shell over ``client.endpoints``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Group

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, fields, note, table, when
from stoa.core.errors import InvalidInputError

app = typer.Typer(no_args_is_help=True, help="Serve solutions and models behind endpoints.")

VariantOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--variant",
        "-v",
        help="NAME=REF:WEIGHT (a live share), NAME=REF:shadow or NAME=REF:shadow=PCT; REF is "
        "a solution (support@2) or model:NAME@VERSION. Repeat for each variant.",
    ),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        help="KEY=VALUE: max_batch_size, max_wait_ms, timeout_s, shadow_queue, log_inputs, "
        "log_traces.",
    ),
]


def parse_options(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"{item!r} is not KEY=VALUE", field="option", fix="write --option timeout_s=10"
            )
        try:
            out[key] = json.loads(raw)
        except ValueError:
            raise InvalidInputError(
                f"{raw!r} is not a number or true/false", field=f"option {key}"
            ) from None
    return out


def _detail(info: Any) -> Group:
    head = fields(
        f"endpoint {info.name}",
        [
            ("description", info.description),
            ("config", f"v{info.version}"),
            ("updated", when(info.updated_at)),
            ("archived", "yes" if info.archived else None),
            ("options", ", ".join(f"{k}={v}" for k, v in sorted(info.options.items()))),
        ],
    )
    return Group(head, _variants_table(info.variants))


def _variants_table(variants: Any) -> Any:
    return table(
        None,
        ["variant", "target", "mode", "share", "overrides"],
        [
            (
                v.name,
                v.target + ("" if v.requested == v.target else f" (from {v.requested})"),
                v.mode,
                f"{v.share:.1%}",
                json.dumps(v.overrides) if v.overrides else "",
            )
            for v in variants
        ],
        numbers=["share"],
        fixed=["variant", "mode"],
    )


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    variant: VariantOpt = None,
    option: OptionOpt = None,
    description: Annotated[str, typer.Option(help="What it serves.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Put variants of a solution (or a model) behind one name."""
    if not variant:
        raise InvalidInputError(
            "give at least one --variant",
            field="variant",
            fix="e.g. --variant a=support@1:50 --variant b=support@2:50",
        )
    info = state(ctx).client.endpoints.create(
        name, list(variant), options=parse_options(option), description=description
    )
    emit(info, json_out, _detail)


@app.command("list")
def list_(
    ctx: typer.Context,
    archived: Annotated[bool, typer.Option(help="Include archived endpoints.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Every endpoint and its current split."""
    infos = state(ctx).client.endpoints.list(archived=archived)
    emit(
        infos,
        json_out,
        lambda items: table(
            None,
            ["endpoint", "config", "split", "updated"],
            [
                (
                    i.name + (" (archived)" if i.archived else ""),
                    f"v{i.version}",
                    ", ".join(
                        f"{v.name} {v.share:.0%}" + (" shadow" if v.mode == "shadow" else "")
                        for v in i.variants
                    ),
                    when(i.updated_at),
                )
                for i in items
            ],
            fixed=["config"],
            times=["updated"],
        ),
        empty="no endpoints yet; create one with `stoa endpoints create` or `stoa serve`",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    json_out: JsonOpt = False,
) -> None:
    """The current config and its history."""
    info = state(ctx).client.endpoints.show(name)

    def render(i: Any) -> Group:
        history = table(
            "history",
            ["config", "split", "note", "by", "at"],
            [
                (
                    f"v{c.version}",
                    ", ".join(f"{v.name} {v.share:.0%}" for v in c.variants),
                    c.note,
                    c.created_by,
                    when(c.created_at),
                )
                for c in i.history
            ],
            fixed=["config"],
            times=["at"],
        )
        return Group(_detail(i), history)

    emit(info, json_out, render)


@app.command("set-traffic")
def set_traffic(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    weights: Annotated[
        list[str] | None,
        typer.Argument(help="VARIANT=WEIGHT for each variant to change (a shadow: percent)."),
    ] = None,
    variant: VariantOpt = None,
    option: OptionOpt = None,
    note_text: Annotated[str, typer.Option("--note", help="Why (kept in the history).")] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Change weights, variants or options; serving processes follow within seconds."""
    parsed: dict[str, float] | None = None
    if weights:
        parsed = {}
        for item in weights:
            key, sep, raw = item.partition("=")
            try:
                parsed[key] = float(raw)
            except ValueError:
                sep = ""
            if not sep or not key:
                raise InvalidInputError(
                    f"{item!r} is not VARIANT=WEIGHT",
                    field="weights",
                    fix="e.g. stoa endpoints set-traffic support a=90 b=10",
                )
    client = state(ctx).client
    if not yes and not json_out:
        before = client.endpoints.show(name)
        shares = ", ".join(f"{v.name} {v.share:.0%}" for v in before.variants)
        typer.confirm(f"change {name} (now {shares})?", abort=True)
    info = client.endpoints.set_traffic(
        name,
        weights=parsed,
        variants=list(variant) if variant else None,
        options=parse_options(option),
        note=note_text,
    )
    emit(info, json_out, _detail)


@app.command("archive")
def archive(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    json_out: JsonOpt = False,
) -> None:
    """Stop serving an endpoint; its history and logbook stay."""
    info = state(ctx).client.endpoints.archive(name)
    emit(info, json_out, lambda i: f"archived endpoint {i.name}")


@app.command("predict")
def predict(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    input: Annotated[str, typer.Option("--input", "-i", help="JSON, or plain text.")],
    unit: Annotated[str | None, typer.Option(help="The unit id (user, session).")] = None,
    variant: Annotated[str | None, typer.Option(help="Force a variant (write scope).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send one request through the endpoint, logged like any other."""
    try:
        value: Any = json.loads(input)
    except ValueError:
        value = input
    result = state(ctx).client.endpoints.predict(name, value, unit_id=unit, variant=variant)
    emit(
        result,
        json_out,
        lambda r: fields(
            f"prediction {r['prediction_id']}",
            [
                ("variant", r["variant"]),
                ("status", r["status"]),
                ("output", json.dumps(r["output"], ensure_ascii=False)),
                ("latency", f"{r['latency_ms']:.1f} ms"),
            ],
        ),
    )


def feedback(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(help="The prediction's id.")],
    kind: Annotated[str, typer.Argument(help="click, thumb, rating, conversion, label or yours.")],
    value: Annotated[str, typer.Argument(help='The value, as JSON (true, 4, "spam").')],
    source: Annotated[str, typer.Option(help="user, human, judge or system.")] = "human",
    key: Annotated[str | None, typer.Option(help="An idempotency key.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Attach one feedback event to a prediction (durable when this returns)."""
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    event = {"prediction_id": prediction_id, "kind": kind, "value": parsed, "source": source}
    if key:
        event["idempotency_key"] = key
    result = state(ctx).client.endpoints.feedback(event)
    emit(result, json_out, lambda r: "recorded" if r["accepted"] else "already recorded (same key)")


def serve(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="MODEL@ALIAS (or model:REF, solution:REF), or endpoint:NAME to serve an "
            "endpoint as it is, every variant included."
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Endpoint name (default: the name).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    option: OptionOpt = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Serve on Ray Serve, as replicas (docs/scale.md).")
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            help="With --ray: auto, ray://HOST:10001 or HOST:6379 (default: RAY_ADDRESS, "
            "else a local Ray on this machine)."
        ),
    ] = None,
    replicas: Annotated[
        int | None, typer.Option(help="With --ray: this many replicas (default 1).")
    ] = None,
    autoscale: Annotated[
        str | None, typer.Option(help="With --ray: MIN:MAX replicas, by requests in flight.")
    ] = None,
    replica_cpus: Annotated[
        float | None,
        typer.Option(min=0.1, help="With --ray: CPUs Ray reserves per replica (default 1)."),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="With --ray --address: deploy, then return.")
    ] = False,
) -> None:
    """Serve one registered model (or solution) at once, as `mlflow models serve` does:
    an endpoint named after it, MLflow's /invocations, and the rest of the API. With
    --ray, the same app runs as Ray Serve replicas."""
    from stoa.cli.server import run_server

    ray_only = {"--address": address, "--replicas": replicas, "--autoscale": autoscale,
                "--replica-cpus": replica_cpus, "--detach": detach or None}  # fmt: skip
    given = [flag for flag, value in ray_only.items() if value is not None]
    if given and not ray:
        raise InvalidInputError(
            f"{', '.join(given)} need(s) --ray", field="ray", fix="add --ray, or drop them"
        )
    if ray and workers != 1:
        raise InvalidInputError(
            "--workers is for the in-process server; Ray scales by replicas",
            field="workers",
            fix="use --replicas N or --autoscale MIN:MAX",
        )
    from stoa.serve.ray.endpoints import check_detach, parse_scale, serve_on_ray

    scale = parse_scale(replicas, autoscale)  # before the endpoint changes or a cluster starts
    check_detach(detach, address)
    endpoint = _serve_endpoint(state(ctx).client, ref, name, parse_options(option))
    if not ray:
        note(f"serving endpoint {endpoint}: POST http://{host}:{port}/invocations")
        run_server(ctx, host=host, port=port, workers=workers, default_endpoint=endpoint)
        return
    state(ctx).client.close()
    serve_on_ray(state(ctx).settings, endpoint, scale, address=address, host=host, port=port,
                 cpus=replica_cpus or 1.0, detach=detach, say=note)  # fmt: skip


def _serve_endpoint(client: Any, ref: str, name: str | None, options: dict[str, Any] | None) -> str:
    """The endpoint to serve: ``endpoint:NAME`` as it is, or one made (or moved) to send
    all traffic to a model or solution."""
    from stoa.serve.endpoints import split_target

    if ref.startswith("endpoint:"):
        endpoint = ref.split(":", 1)[1]
        if name is not None or options:
            raise InvalidInputError(
                "--name and --option change an endpoint; endpoint:NAME serves it as it is",
                field="ref",
                fix="use `stoa endpoints set-traffic` to change it first",
            )
        client.endpoints.show(endpoint)  # an unknown one fails here, in one line
        return endpoint
    kind, target = split_target(ref if ":" in ref else f"model:{ref}")
    endpoint = name or target.split("@")[0]
    wanted = [f"main={kind}:{target}:100"]
    existing = {e.name: e for e in client.endpoints.list()}
    if endpoint in existing:
        resolved = client.of_kind(kind).show(target).ref
        current = existing[endpoint].variants
        if [v.target for v in current] != [f"{kind}:{resolved}"] or options:
            client.endpoints.set_traffic(
                endpoint, variants=wanted, options=options, note=f"stoa serve {ref}"
            )
    else:
        client.endpoints.create(endpoint, wanted, options=options, description=f"stoa serve {ref}")
    return endpoint
