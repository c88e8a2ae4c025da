"""The records the registry hands out: the same models for Python, REST and CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

Kind = Literal["model", "prompt", "dataset", "solution"]
KINDS: tuple[Kind, ...] = ("model", "prompt", "dataset", "solution")
Status = Literal["pending", "allowed", "blocked", "archived"]


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything Stoa stores is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class _Record(BaseModel):
    @field_validator("created_at", "updated_at", "at", check_fields=False)
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return _utc(value)


class VersionInfo(_Record):
    kind: Kind
    name: str
    version: int
    ref: str
    status: Status
    sha256: str
    artifact: str
    size: int
    format: str | None = None
    flavor: str | None = None
    license: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict)
    findings: list[dict[str, Any]] = Field(default_factory=list)
    gate: str = ""
    aliases: list[str] = Field(default_factory=list)
    created_at: datetime
    created_by: str = ""
    #: False when a registration found these bytes already registered and wrote nothing.
    created: bool = True
    #: The gate's full scan report; only filled in when one version is read.
    scan: dict[str, Any] | None = None


class SeriesInfo(_Record):
    kind: Kind
    name: str
    latest_version: int
    aliases: dict[str, int] = Field(default_factory=dict)
    created_at: datetime


class AliasInfo(_Record):
    kind: Kind
    name: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str


class AuditInfo(_Record):
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] = Field(default_factory=dict)


class RunInfo(_Record):
    id: str
    name: str
    status: str
    created_at: datetime
    created_by: str
    ended_at: datetime | None = None
    parent_id: str | None = None


class MetricPoint(BaseModel):
    key: str
    value: float
    step: int = 0
    timestamp: int  # milliseconds since the epoch


class RunDetail(BaseModel):
    """A run with what it logged: params, tags and each metric's latest value."""

    info: RunInfo
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)


class LineageNode(BaseModel):
    """One entity reached while walking lineage; ``depth`` counts hops from the start."""

    type: Literal["model", "prompt", "dataset", "solution", "run"]
    ref: str
    depth: int
    parent: str | None = None


class LineageInfo(BaseModel):
    start: LineageNode
    upstream: list[LineageNode] = Field(default_factory=list)
    downstream: list[LineageNode] = Field(default_factory=list)
