"""``stoa models|prompts|datasets``: the commands every kind shares, built once per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stoa.cli.context import JsonOpt, existing_path, parse_json_object, parse_pairs, state
from stoa.cli.output import (
    console,
    emit,
    lineage_table,
    notes,
    storing_progress,
    table,
    version_detail,
    version_table,
)

TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeatable.")]
DescOpt = Annotated[str, typer.Option("--description", "-d", help="What this version is.")]
MetaOpt = Annotated[
    str | None, typer.Option("--metadata", help="A JSON object of free-form metadata.")
]


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
                plural,
                ["name", "latest", "aliases"],
                [
                    (s.name, s.latest_version, ", ".join(f"{a}→{v}" for a, v in s.aliases.items()))
                    for s in rs
                ],
            ),
        )

    @app.command()
    def show(
        ctx: typer.Context,
        ref: Annotated[str, typer.Argument(help="NAME, NAME@3 or NAME@ALIAS")],
        json_out: JsonOpt = False,
    ) -> None:
        """Show one version, with its status, findings, tags and aliases."""
        emit(state(ctx).client.of_kind(kind).show(ref), json_out, version_detail)

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
        emit(rows, json_out, version_table)
        if len(rows) == limit:
            notes.print(f"note: stopped at --limit {limit}; there may be more matches")

    @app.command()
    def approve(
        ctx: typer.Context,
        ref: str,
        note: Annotated[str, typer.Option(help="Why: kept in the audit log.")] = "",
        json_out: JsonOpt = False,
    ) -> None:
        """Release a version held for licence review (status pending)."""
        emit(state(ctx).client.of_kind(kind).approve(ref, note=note), json_out, version_detail)

    @app.command()
    def reject(
        ctx: typer.Context,
        ref: str,
        note: Annotated[str, typer.Option(help="Why: kept in the audit log.")] = "",
        json_out: JsonOpt = False,
    ) -> None:
        """Block a version held for licence review for good."""
        emit(state(ctx).client.of_kind(kind).reject(ref, note=note), json_out, version_detail)

    @app.command()
    def archive(ctx: typer.Context, ref: str, json_out: JsonOpt = False) -> None:
        """Archive a version: it stays readable but can no longer be loaded or aliased."""
        emit(state(ctx).client.of_kind(kind).archive(ref), json_out, version_detail)

    @app.command()
    def alias(
        ctx: typer.Context, name: str, version: int, alias: str, json_out: JsonOpt = False
    ) -> None:
        """Point ALIAS (e.g. champion) at VERSION of NAME; the move is recorded."""
        info = state(ctx).client.of_kind(kind).set_alias(name, version, alias)
        emit(info, json_out, lambda a: f"{a.name}@{a.alias} → version {a.version}")

    @app.command()
    def unalias(ctx: typer.Context, name: str, alias: str) -> None:
        """Remove ALIAS from NAME; the removal is recorded."""
        state(ctx).client.of_kind(kind).delete_alias(name, alias)
        console.print(f"removed {name}@{alias}")

    @app.command()
    def aliases(ctx: typer.Context, name: str, json_out: JsonOpt = False) -> None:
        """The history of alias moves on NAME: who moved which alias, and when."""
        rows = state(ctx).client.of_kind(kind).alias_history(name)
        emit(
            rows,
            json_out,
            lambda rs: table(
                f"alias history of {name}",
                ["at (UTC)", "who", "alias", "from", "to"],
                [
                    (
                        r.at.strftime("%Y-%m-%d %H:%M:%S"),
                        r.actor,
                        r.detail.get("alias"),
                        r.detail.get("from"),
                        r.detail.get("to"),
                    )
                    for r in rs
                ],
            ),
        )

    @app.command()
    def lineage(ctx: typer.Context, ref: str, json_out: JsonOpt = False) -> None:
        """Walk lineage up (what it came from) and down (what came from it)."""
        emit(state(ctx).client.of_kind(kind).lineage(ref), json_out, lineage_table)

    @app.command()
    def download(
        ctx: typer.Context,
        ref: str,
        dest: Annotated[Path, typer.Argument(help="File or folder to write.")],
    ) -> None:
        """Write a verified copy of the artifact to DEST."""
        path = state(ctx).client.of_kind(kind).download(ref, dest)
        console.print(f"wrote {path}")

    return app


models_app = kind_app("model")
prompts_app = kind_app("prompt")
datasets_app = kind_app("dataset")


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
    run_id: Annotated[str | None, typer.Option(help="The run that produced it.")] = None,
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
    emit(info, json_out, version_detail)
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
    info = state(ctx).client.models.pull(source, name, license=license, description=description)
    emit(info, json_out, version_detail)
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
    from stoa.core.errors import InvalidInputError

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
) -> None:
    """Render a prompt version with the given values."""
    print(state(ctx).client.prompts.render(ref, parse_pairs(set_, "set")))
