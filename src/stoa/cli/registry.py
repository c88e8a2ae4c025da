"""``stoa models|prompts|datasets``: the commands every kind shares, built once per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stoa.cli import predict
from stoa.cli.context import JsonOpt, existing_path, parse_json_object, parse_pairs, state
from stoa.cli.output import (
    emit,
    lineage_table,
    note,
    storing_progress,
    table,
    version_detail,
    version_table,
    when,
)
from stoa.core.errors import InvalidInputError

TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeatable.")]
DescOpt = Annotated[str, typer.Option("--description", "-d", help="What this version is.")]
MetaOpt = Annotated[
    str | None, typer.Option("--metadata", help="A JSON object of free-form metadata.")
]


#: How each kind's first version is made, for the line an empty list prints.
_FIRST = {
    "model": "stoa models register NAME PATH",
    "prompt": "stoa prompts register NAME --template TEXT",
    "dataset": "stoa datasets register NAME PATH",
    "solution": "stoa solutions register FILE.yaml",
}


def detail(client: Any, kind: str, info: Any) -> Any:
    """``version_detail`` with the licence decision that applies to a model, when its
    findings show a licence review."""
    review = None
    if kind == "model" and info.scan is None:
        info = client.models.show(info.ref)  # what approve or archive answer lacks the scan
    codes = [str(f.get("code", "")) for f in info.findings]
    if kind == "model" and any(code.startswith("license-") for code in codes):
        review = client.models.review(info.ref)
    return version_detail(info, review)


def refused_if_blocked(status: str) -> None:
    """Exit 1 when the gate blocked the version or held it for review: it cannot be used."""
    if status in ("blocked", "pending"):
        raise typer.Exit(1)


def kind_app(kind: str) -> typer.Typer:
    plural = f"{kind}s"
    app = typer.Typer(help=f"Register, list and manage {plural}.", no_args_is_help=True)

    @app.command("list")
    def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
        """List every named series with its latest version and aliases."""
        rows = state(ctx).client.of_kind(kind).list()
        emit(
            rows,
            json_out,
            lambda rs: table(
                None,
                ["name", "latest", "aliases", "created"],
                [
                    (
                        s.name,
                        s.latest_version,
                        ", ".join(f"{a}→{v}" for a, v in s.aliases.items()),
                        when(s.created_at),
                    )
                    for s in rs
                ],
                numbers=("latest",),
                times=("created",),
            ),
            empty=f"no {plural} yet; register one with `{_FIRST[kind]}`",
        )

    @app.command()
    def show(
        ctx: typer.Context,
        ref: Annotated[str, typer.Argument(help="NAME, NAME@3 or NAME@ALIAS")],
        json_out: JsonOpt = False,
    ) -> None:
        """Show one version: its status now and why, its facts, and the scan's findings."""
        client = state(ctx).client
        emit(client.of_kind(kind).show(ref), json_out, lambda v: detail(client, kind, v))

    @app.command()
    def versions(
        ctx: typer.Context,
        name: str,
        status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """List every version of NAME in order."""
        emit(state(ctx).client.of_kind(kind).versions(name, status), json_out, version_table)

    @app.command()
    def search(
        ctx: typer.Context,
        tag: TagOpt = None,
        name: Annotated[str | None, typer.Option(help="Only this series.")] = None,
        status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many rows.")] = 1000,
        json_out: JsonOpt = False,
    ) -> None:
        """Find versions whose tags all match KEY=VALUE exactly."""
        rows = (
            state(ctx)
            .client.of_kind(kind)
            .search(parse_pairs(tag, "tag"), name=name, status=status, limit=limit)
        )
        emit(rows, json_out, version_table, empty=f"no {kind} version matches these filters")
        if len(rows) == limit:
            note(f"stopped at --limit {limit}; there may be more matches")

    @app.command()
    def approve(
        ctx: typer.Context,
        ref: str,
        note: Annotated[str, typer.Option(help="Why: kept in the audit log.")] = "",
        json_out: JsonOpt = False,
    ) -> None:
        """Release a version held for licence review (status pending)."""
        client = state(ctx).client
        info = client.of_kind(kind).approve(ref, note=note)
        emit(info, json_out, lambda v: detail(client, kind, v))

    @app.command()
    def reject(
        ctx: typer.Context,
        ref: str,
        note: Annotated[str, typer.Option(help="Why: kept in the audit log.")] = "",
        json_out: JsonOpt = False,
    ) -> None:
        """Block a version held for licence review for good."""
        client = state(ctx).client
        info = client.of_kind(kind).reject(ref, note=note)
        emit(info, json_out, lambda v: detail(client, kind, v))

    @app.command()
    def archive(ctx: typer.Context, ref: str, json_out: JsonOpt = False) -> None:
        """Archive a version: it stays readable but can no longer be loaded or aliased."""
        client = state(ctx).client
        emit(client.of_kind(kind).archive(ref), json_out, lambda v: detail(client, kind, v))

    @app.command()
    def alias(
        ctx: typer.Context, name: str, version: int, alias: str, json_out: JsonOpt = False
    ) -> None:
        """Point ALIAS (e.g. champion) at VERSION of NAME; the move is recorded."""
        info = state(ctx).client.of_kind(kind).set_alias(name, version, alias)
        emit(info, json_out, lambda a: f"{a.name}@{a.alias} → version {a.version}")

    @app.command()
    def unalias(ctx: typer.Context, name: str, alias: str, json_out: JsonOpt = False) -> None:
        """Remove ALIAS from NAME; the removal is recorded."""
        state(ctx).client.of_kind(kind).delete_alias(name, alias)
        result = {"kind": kind, "name": name, "alias": alias, "removed": True}
        emit(result, json_out, lambda r: f"removed {r['name']}@{r['alias']}")

    @app.command()
    def aliases(ctx: typer.Context, name: str, json_out: JsonOpt = False) -> None:
        """The history of alias moves on NAME: who moved which alias, and when."""
        rows = state(ctx).client.of_kind(kind).alias_history(name)
        emit(
            rows,
            json_out,
            lambda rs: table(
                f"alias history of {name}",
                ["at", "who", "alias", "from", "to"],
                [
                    (
                        when(r.at),
                        r.actor,
                        r.detail.get("alias"),
                        r.detail.get("from"),
                        r.detail.get("to"),
                    )
                    for r in rs
                ],
                times=("at",),
            ),
            empty=f"no alias of {name} has moved yet; set one with "
            f"`stoa {plural} alias {name} VERSION ALIAS`",
        )

    @app.command()
    def lineage(ctx: typer.Context, ref: str, json_out: JsonOpt = False) -> None:
        """Walk lineage up (what it came from) and down (what came from it)."""
        emit(state(ctx).client.of_kind(kind).lineage(ref), json_out, lineage_table)

    @app.command()
    def download(
        ctx: typer.Context,
        ref: str,
        dest: Annotated[Path, typer.Argument(help="File or folder to write; must not exist.")],
        json_out: JsonOpt = False,
    ) -> None:
        """Write a verified copy of the artifact to DEST."""
        resource = state(ctx).client.of_kind(kind)
        info = resource.show(ref)  # one version, even if an alias moves meanwhile
        path = resource.download(info.ref, dest)
        result = {"ref": info.ref, "path": str(path), "artifact": info.artifact,
                  "sha256": info.sha256, "size": info.size}  # fmt: skip
        emit(result, json_out, lambda r: f"wrote {r['path']} ({r['ref']}, {r['size']} bytes)")

    return app


models_app = kind_app("model")
prompts_app = kind_app("prompt")
datasets_app = kind_app("dataset")
solutions_app = kind_app("solution")
models_app.command("load")(predict.load)
models_app.command("predict")(predict.predict)


@models_app.command("register")
def register_model(
    ctx: typer.Context,
    name: str,
    path: Annotated[Path, typer.Argument(help="A model file or folder.")],
    flavor: Annotated[
        str | None,
        typer.Option(
            help="sklearn, xgboost, lightgbm or sentence-transformers; detected when left out."
        ),
    ] = None,
    license: Annotated[
        str | None, typer.Option("--license", help="SPDX identifier, e.g. MIT.")
    ] = None,
    description: DescOpt = "",
    tag: TagOpt = None,
    metadata: MetaOpt = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", "--run-id", help="The run that produced it (id or a 6+ character prefix)."
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option(help="Dataset REF it was trained on; repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a model file or folder; the gate decides whether it may be loaded."""
    with storing_progress(existing_path(path)) as progress:
        info = state(ctx).client.models.register(
            name,
            path,
            flavor=flavor,
            license=license,
            description=description,
            tags=parse_pairs(tag, "tag"),
            metadata=parse_json_object(metadata, "metadata"),
            run_id=run_id,
            datasets=dataset or [],
            progress=progress,
        )
    emit(info, json_out, lambda v: detail(state(ctx).client, "model", v))
    refused_if_blocked(info.status)


@models_app.command("pull")
def pull_model(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="A local path, an fsspec URL, or hf://org/model[@revision].")
    ],
    name: str,
    license: Annotated[
        str | None, typer.Option(help="The licence, when the source does not state it (SPDX).")
    ] = None,
    description: DescOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Import a third-party model: licence and hash policy, download, scan, register."""
    client = state(ctx).client
    info = client.models.pull(source, name, license=license, description=description)
    emit(info, json_out, lambda v: detail(client, "model", v))
    refused_if_blocked(info.status)


@datasets_app.command("register")
def register_dataset(
    ctx: typer.Context,
    name: str,
    path: Annotated[Path, typer.Argument(help="A CSV, Parquet or JSONL file.")],
    description: DescOpt = "",
    tag: TagOpt = None,
    metadata: MetaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a dataset file; its format, schema and row count are recorded."""
    with storing_progress(existing_path(path)) as progress:
        info = state(ctx).client.datasets.register(
            name,
            path,
            description=description,
            tags=parse_pairs(tag, "tag"),
            metadata=parse_json_object(metadata, "metadata"),
            progress=progress,
        )
    emit(info, json_out, version_detail)


@prompts_app.command("register")
def register_prompt(
    ctx: typer.Context,
    name: str,
    path: Annotated[Path | None, typer.Argument(help="A file holding the Jinja2 template.")] = None,
    template: Annotated[
        str | None, typer.Option(help="The template text, instead of PATH.")
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(help="A declared variable; repeatable. Checked against the template."),
    ] = None,
    description: DescOpt = "",
    tag: TagOpt = None,
    metadata: MetaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a prompt template from PATH or --template."""
    if (path is None) == (template is None):
        raise InvalidInputError("give exactly one of PATH or --template", field="template")
    try:
        text = template if template is not None else existing_path(path).read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text", field="template") from None
    info = state(ctx).client.prompts.register(
        name,
        text,
        variables=var,
        description=description,
        tags=parse_pairs(tag, "tag"),
        metadata=parse_json_object(metadata, "metadata"),
    )
    emit(info, json_out, version_detail)


@prompts_app.command("render")
def render_prompt(
    ctx: typer.Context,
    ref: str,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="VARIABLE=VALUE; repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Render a prompt version with the given values."""
    values = parse_pairs(set_, "set")
    client = state(ctx).client
    text = client.prompts.render(ref, values)
    info = client.prompts.show(ref)
    for name in sorted(set(values) - set(info.spec.get("variables", []))):
        note(f"warning: {name} is not a variable of {info.ref}, so it was not used")
    emit({"ref": ref, "values": values, "text": text}, json_out, lambda r: r["text"])
