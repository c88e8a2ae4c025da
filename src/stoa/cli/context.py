"""The settings and client shared by every command, built once from the global options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from stoa.cli.output import note
from stoa.client import Client
from stoa.core.errors import InvalidInputError
from stoa.core.settings import Settings

#: The --json flag every list and show command takes.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class State:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._client: Client | None = None

    @property
    def client(self) -> Any:
        """The client, built on first use; opening a home that did not exist says so."""
        if self._client is None:
            home = self.settings.resolved_home
            new_home = not self.settings.url and not home.exists()
            self._client = Client(settings=self.settings)
            if new_home:
                note(f"created a new Stoa home at {home} (choose another with --home or STOA_HOME)")
        return self._client

    def close(self) -> None:
        """Close the client when the command ends: a prediction a command made is written
        to the logbook then, not lost with the process."""
        if self._client is not None:
            self._client.close()
            self._client = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = State(Settings())
    return root.obj


def parse_pairs(items: list[str] | None, field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"{item!r} is not KEY=VALUE", field=field, fix=f"write --{field} key=value"
            )
        out[key] = value
    return out


def parse_number_pairs(items: list[str] | None, field: str, example: str) -> dict[str, float]:
    """``KEY=NUMBER`` pairs (weights, thresholds); a value that is no number names its key."""
    out: dict[str, float] = {}
    for key, value in parse_pairs(items, field).items():
        try:
            out[key] = float(value)
        except ValueError:
            raise InvalidInputError(
                f"{field} {value!r} for {key} is not a number", field=field, fix=f"write {example}"
            ) from None
    return out


def parse_json_object(text: str | None, field: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInputError(
            "is not valid JSON", field=field, fix=f'pass --{field} \'{{"key": "value"}}\''
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError("must be a JSON object", field=field)
    return value


def existing_path(path: Path, field: str = "path") -> Path:
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist", field=field, fix="check the path")
    return path


RayOpt = Annotated[
    bool, typer.Option("--ray", help="Run on a Ray cluster (docs/scale.md); same output.")
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --ray: auto, ray://HOST:10001 or HOST:6379 (default: RAY_ADDRESS, else "
        "a local Ray on this machine).",
    ),
]


def ray_target(ray: bool, address: str | None) -> bool | str:
    """What ``client.*(ray=…)`` takes: False, True, or the address of a cluster."""
    if address is not None and not ray:
        raise InvalidInputError("--address needs --ray", field="address", fix="add --ray")
    return address if ray and address is not None else ray
