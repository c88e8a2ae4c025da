"""Where Stoa keeps its state; the embedded defaults need no configuration at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Read from ``STOA_*`` environment variables; the CLI passes the same keys as options."""

    model_config = SettingsConfigDict(env_prefix="STOA_", extra="ignore")

    home: Path = Field(default=Path(".stoa"), description="Folder for the embedded stores.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite at HOME/stoa.db."
    )
    blob_url: str | None = Field(
        default=None, description="fsspec URL of the blob store; default HOME/blobs."
    )
    url: str | None = Field(
        default=None, description="A Stoa server to talk to instead of the local home."
    )
    token: str | None = Field(default=None, description="Bearer token for the server at url.")
    scan_policy: Path | None = Field(
        default=None, description="A scan policy file extending the default policy."
    )
    max_upload_mb: int = Field(
        default=16384, ge=1, description="The largest upload the server reads, in MiB."
    )
    max_json_mb: int = Field(
        default=64, ge=1, description="The largest JSON body the server reads, in MiB."
    )
    webhooks: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Registry webhooks, as JSON: "
        '{"NAME": {"url": "https://…", "secret_env": "VAR", "events": ["alias.moved"]}}.',
    )
    embedders: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named embedders a server offers, as JSON: "
        '{"NAME": {"kind": "openai", "model": "…", "url": "https://…/v1", '
        '"api_key_env": "VAR"}}. Only these reach the network, and only they carry a key.',
    )

    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named generation providers, as JSON: "
        '{"NAME": {"kind": "openai", "url": "https://…/v1", "api_key_env": "VAR", '
        '"model": "…", "timeout_s": 30, "max_retries": 3, '
        '"prices": {"MODEL": {"prompt": 0.15, "completion": 0.6}}}} (USD per million '
        "tokens). Only these reach the network, and only they carry a key.",
    )
    cpu_hour_usd: float = Field(
        default=0.05,
        ge=0,
        description="Price of one CPU-hour, the cost basis of models run on this machine.",
    )

    # -- serving (docs/serving.md) ---------------------------------------------------
    logbook_queue: int = Field(
        default=20_000,
        ge=1,
        description="Predictions a server process holds before writing; when full, "
        "requests wait (backpressure), then get 503. Never dropped silently.",
    )
    logbook_batch: int = Field(
        default=1000, ge=1, description="Predictions written in one transaction at most."
    )
    logbook_flush_ms: int = Field(
        default=200,
        ge=1,
        description="Longest a prediction waits in memory before it is written: what a "
        "kill -9 can lose.",
    )
    logbook_full_wait_ms: int = Field(
        default=2000,
        ge=0,
        description="How long a request waits for room in a full logbook before its 503.",
    )
    rate_limit_per_s: float | None = Field(
        default=None,
        gt=0,
        description="Data-plane requests per second per caller (token, or address on an "
        "open server), with a burst of rate_limit_burst; unset for no limit.",
    )
    rate_limit_burst: int = Field(default=50, ge=1, description="Requests a caller may burst.")
    log_format: str = Field(
        default="text",
        pattern="^(text|json)$",
        description="Server logs as readable text or as one JSON object per line.",
    )

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'stoa.db'}"

    @property
    def resolved_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return str(self.resolved_home / "blobs")
