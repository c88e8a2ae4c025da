"""The ``stoa`` console script; errors become one line on stderr and an exit code here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from stoa import __version__
from stoa.cli import alerts as alerts_commands
from stoa.cli import batch as batch_commands
from stoa.cli import doctor as doctor_commands
from stoa.cli import endpoints, kb, predictions, registry, runs, scan, select, solutions, tokens
from stoa.cli import experiments as experiments_commands
from stoa.cli import feedback as feedback_commands
from stoa.cli import home as home_commands
from stoa.cli import judges as judges_commands
from stoa.cli import metrics as metrics_commands
from stoa.cli import monitor as monitor_commands
from stoa.cli import review as review_commands
from stoa.cli import server as server_commands
from stoa.cli.context import JsonOpt, State, state
from stoa.cli.output import console, emit
from stoa.core.errors import StoaError
from stoa.core.settings import Settings

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

# typer >= 0.20 keeps Exit and Abort in typer.exceptions, not in its vendored click; older
# typer re-exports click's. Catch whichever classes exist, so neither becomes a traceback.
_EXITS = tuple({typer.Exit, getattr(click_exceptions, "Exit", typer.Exit)})
_ABORTS = tuple({typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)})
# A bare group (`stoa`, `stoa models`) asks for its help (older click prints it itself).
_BARE_GROUP = getattr(click_exceptions, "NoArgsIsHelpError", ())

app = typer.Typer(
    name="stoa",
    help="Stoa: govern, develop, serve and measure AI solutions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: flags read as flags (Rich panels label them <bool>), and it fits 80
    # columns. Sub-apps inherit both settings.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(registry.models_app, name="models")
app.add_typer(registry.prompts_app, name="prompts")
app.add_typer(registry.datasets_app, name="datasets")
app.add_typer(solutions.app, name="solutions")
app.add_typer(runs.app, name="runs")
app.add_typer(kb.app, name="kb")
app.add_typer(tokens.app, name="tokens")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(predictions.app, name="predictions")
app.add_typer(alerts_commands.app, name="alerts")
app.add_typer(review_commands.app, name="review")
app.add_typer(metrics_commands.app, name="metrics")
app.add_typer(judges_commands.app, name="judges")
app.add_typer(monitor_commands.app, name="monitor")
app.add_typer(experiments_commands.app, name="experiments")
app.add_typer(feedback_commands.app, name="feedback")
app.add_typer(batch_commands.app, name="batch")
app.command(name="serve")(endpoints.serve)
app.command(name="server")(server_commands.server)
app.command(name="scan")(scan.scan)
app.command(name="select")(select.select)
app.command(name="init")(home_commands.init)
app.command(name="status")(home_commands.status)
app.command(name="doctor")(doctor_commands.doctor)


def _print_version(value: bool) -> None:
    if value:
        print(f"stoa {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(envvar="STOA_HOME", help="Folder for the embedded stores (default ./.stoa)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="STOA_DATABASE_URL", help="SQLAlchemy URL (default SQLite in HOME)."),
    ] = None,
    blob_url: Annotated[
        str | None,
        typer.Option(envvar="STOA_BLOB_URL", help="fsspec URL for blobs (default HOME/blobs)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(envvar="STOA_URL", help="Talk to this Stoa server instead of the local home."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="STOA_TOKEN", help="Bearer token for --url.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options here apply to every command and override the STOA_* variables."""
    values = {
        "home": home,
        "database_url": database_url,
        "blob_url": blob_url,
        "url": url,
        "token": token,
    }
    ctx.obj = State(Settings(**{k: v for k, v in values.items() if v is not None}))
    ctx.call_on_close(ctx.obj.close)


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    min_age: Annotated[
        int, typer.Option(help="Spare anything younger than this many seconds (at least 60).")
    ] = 3600,
    json_out: JsonOpt = False,
) -> None:
    """Delete blobs nothing references and temporaries a crash left (admin)."""
    report = state(ctx).client.admin.gc(min_age_s=min_age, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    text = f"{verb} {report['blobs']} unreferenced blobs ({report['blob_bytes'] / 2**20:.1f} MiB)"
    if not dry_run:
        text += (f", and {report['temporaries']} temporaries "
                 f"({report['temporary_bytes'] / 2**20:.1f} MiB)")  # fmt: skip
    emit(report, json_out, lambda _: text)


@app.command()
def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep/--clean",
            help="Keep the demo home, to browse it in the dashboard (default), or delete it.",
        ),
    ] = True,
) -> None:
    """Run the lifecycle end to end on embedded defaults in a new home, and say how to
    browse everything it made in the dashboard."""
    from stoa.demo.run import run_demo

    run_demo(console, keep=keep)


def main() -> None:
    """Entry point: map every deliberate error onto exit codes 1 and 2, with one line each."""
    try:
        code = app(standalone_mode=False)
    except _BARE_GROUP as exc:
        help_text = exc.format_message()  # empty when the help was printed already
        if help_text:
            print(help_text)
        sys.exit(0)
    except click_exceptions.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except _EXITS as exc:
        sys.exit(exc.exit_code)
    except _ABORTS:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except StoaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        import httpx
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, httpx.HTTPError):
            print(f"error: cannot reach the Stoa server: {exc}", file=sys.stderr)
            sys.exit(1)
        if isinstance(exc, SQLAlchemyError):
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            print(f"error: the database refused the operation: {first}", file=sys.stderr)
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
