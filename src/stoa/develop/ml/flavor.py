"""The ``candidate`` flavor: a model saved by ``stoa select`` loads back as its kind.

Declared as a ``stoa.flavors`` entry point, so the registry (which sits to the left
of ``develop``) finds it without importing this module by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stoa.core.errors import InvalidInputError


class CandidateFlavor:
    name = "candidate"

    def matches(self, obj: Any) -> bool:
        return hasattr(obj, "spec") and hasattr(obj, "kind") and hasattr(obj, "save")

    def matches_path(self, path: Path, fmt: str) -> bool:
        return path.is_dir() and (path / "candidate.json").is_file()

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        return obj.save(folder), obj.spec()

    def load(self, path: Path, spec: dict[str, Any]) -> Any:
        from stoa.develop.ml.candidates.base import load

        if not spec:
            try:
                spec = json.loads((path / "candidate.json").read_text())
            except (OSError, ValueError) as exc:
                raise InvalidInputError(
                    f"candidate.json is unreadable: {exc}", field="spec"
                ) from None
        return load(path, spec)
