"""``client.datasets``: tabular and text data versions with their schema and row count."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from stoa.client._operation import Upload, operation
from stoa.client.registry import Versions
from stoa.govern import datasets
from stoa.govern.types import VersionInfo


class Datasets(Versions):
    name = "datasets"
    kind = "dataset"

    @operation("POST", "/datasets", scope="write", status=201, local_only={"progress": None})
    def register(
        self,
        name: str,
        path: Annotated[Path | str, Upload(field="file", folders=False)],
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        progress: Any = None,
    ) -> VersionInfo:
        """A CSV, Parquet or JSONL file as a new version, described by its schema."""
        local = self._local
        return datasets.register_dataset(
            local.registry, name, Path(path), actor=local.actor, description=description,
            tags=tags, metadata=metadata, progress=progress,
        )  # fmt: skip
