"""``client.models``: register, log, load, pull and scan-gated downloads of model versions."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, field_validator

from stoa.client._operation import Upload, operation, remote_variant
from stoa.client.registry import Versions
from stoa.develop import tracking
from stoa.govern import models
from stoa.govern.types import VersionInfo


class ReviewInfo(BaseModel):
    """An admin's decision on a version's bytes after a licence review."""

    decision: Literal["approved", "rejected"]
    #: The version the decision was made on: the same bytes under any name share it.
    ref: str
    note: str = ""
    decided_by: str
    decided_at: datetime

    @field_validator("decided_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _load_over_http(resource: Models, ref: str) -> Any:
    info = resource.show(ref)
    models.ensure_loadable(info)
    with tempfile.TemporaryDirectory(prefix="stoa-") as tmp:
        path = resource.download(info.ref, Path(tmp) / "artifact")
        return models.load_artifact(info, path)


def _pull_over_http(
    resource: Models, source: str, name: str, *, license: str | None = None, description: str = ""
) -> VersionInfo:
    """Fetch here under the default policy's pre-checks; the server's gate scans the upload."""
    from stoa.govern.pull import fetch
    from stoa.govern.scan.policy import default_policy

    license = models.check_license(license)
    with tempfile.TemporaryDirectory(prefix="stoa-pull-") as tmp:
        fetched = fetch(default_policy(), source, license, Path(tmp) / "artifact")
        return resource.register(
            name, fetched, license=license, description=description, metadata={"source": source}
        )


class Models(Versions):
    """Model versions: nothing is stored before the gate has judged it."""

    name = "models"
    kind = "model"

    def _check_download(self, info: VersionInfo) -> None:
        models.ensure_allowed(info)

    @operation("POST", "/models", scope="write", status=201, local_only={"progress": None})
    def register(
        self,
        name: str,
        path: Annotated[Path | str, Upload()],
        *,
        flavor: str | None = None,
        license: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        run_id: str | None = None,
        datasets: list[str] | None = None,
        progress: Any = None,
    ) -> VersionInfo:
        """Scan a model file or folder, store it and record the version with its verdict.

        A blocked or pending version is recorded too, and cannot be loaded or downloaded.
        """
        local = self._local
        return models.register_model(
            local.registry, local.gate, name, Path(path), actor=local.actor, flavor=flavor,
            license=license, description=description, tags=tags, metadata=metadata, spec=spec,
            run_id=tracking.resolve_run_id(local.db, run_id), datasets=datasets or (),
            progress=progress,
        )  # fmt: skip

    @operation("GET", "/models/{ref}/review", scope="read")
    def review(self, ref: str) -> ReviewInfo | None:
        """The admin decision that applies to this version's bytes (``approve``/``reject``
        on it, or on the same bytes under another name), or null when none was made."""
        local = self._local
        info = local.registry.get(self.kind, ref)
        found = local.registry.content_review(self.kind, info.sha256)
        return None if found is None else ReviewInfo.model_validate(found, from_attributes=True)

    def log(self, name: str, model: Any, **options: Any) -> VersionInfo:
        """Save a live model in its flavor's safe format, then ``register`` it."""
        with models.saved(model) as (path, described):
            return self.register(name, path, **described, **options)

    @remote_variant(_load_over_http)
    def load(self, ref: str) -> Any:
        """The live model; anything the gate did not allow is refused."""
        return models.load_model(self._local.registry, ref)

    @remote_variant(_pull_over_http)
    def pull(
        self, source: str, name: str, *, license: str | None = None, description: str = ""
    ) -> VersionInfo:
        """Policy, then download, then scan, then register: see ``stoa.govern.pull``."""
        from stoa.govern.pull import pull_model

        local = self._local
        return pull_model(
            local.registry, local.scan_gate.policy, source, name, actor=local.actor,
            license=license, description=description,
        )  # fmt: skip
