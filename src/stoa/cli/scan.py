"""``stoa scan``: scan model files and folders without registering them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stoa.cli.output import console, notes
from stoa.core.errors import InvalidInputError


def scan(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to scan.")],
    policy: Annotated[
        Path | None, typer.Option(help="A policy file that extends the default policy.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    sarif: Annotated[
        Path | None, typer.Option(help="Also write a SARIF 2.1.0 report to this file.")
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="The licence the files are distributed under (SPDX).")
    ] = None,
    require_license: Annotated[
        bool,
        typer.Option(help="Apply the policy's decision for unknown licences when none is found."),
    ] = False,
    hash_files: Annotated[
        bool,
        typer.Option(
            "--hash", help="Report each file's sha256 (always on when the policy has a deny list)."
        ),
    ] = False,
) -> None:
    """Scan files and folders. Exit 0 when all are allowed, 1 when any is blocked."""
    from stoa.govern.models import check_license
    from stoa.govern.scan.policy import load_policy
    from stoa.govern.scan.report import report_table, to_sarif
    from stoa.govern.scan.scanner import scan_paths

    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        raise InvalidInputError(f"{missing[0]} does not exist", field="paths", fix="check the path")
    loaded = load_policy(policy)
    report = scan_paths(
        paths,
        loaded,
        license=check_license(license),
        require_license=require_license,
        hash_files=hash_files or None,
    )
    if sarif is not None:
        try:
            sarif.write_text(json.dumps(to_sarif(report), indent=2))
        except OSError as exc:
            raise InvalidInputError(
                f"cannot write {sarif}: {exc.strerror}", field="sarif", fix="choose a writable path"
            ) from None
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(report_table(report))
    blocked = [f for f in report.files if f.verdict == "blocked"]
    if blocked:
        notes.print(f"{len(blocked)} of {len(report.files)} blocked")
        raise typer.Exit(1)
