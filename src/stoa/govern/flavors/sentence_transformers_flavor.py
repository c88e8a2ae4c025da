"""sentence-transformers as a ``save_pretrained`` folder with safetensors weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SentenceTransformersFlavor:
    name = "sentence-transformers"

    def matches(self, obj: Any) -> bool:
        return any(
            c.__module__.startswith("sentence_transformers.")
            and c.__name__ == "SentenceTransformer"
            for c in type(obj).__mro__
        )

    def matches_path(self, path: Path, fmt: str) -> bool:
        return path.is_dir() and (
            (path / "modules.json").is_file()
            or (path / "config_sentence_transformers.json").is_file()
        )

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        path = folder / "model"
        obj.save(str(path), safe_serialization=True)
        dims = getattr(obj, "get_embedding_dimension", None) or obj.get_sentence_embedding_dimension
        return path, {"dimensions": dims()}

    def load(self, path: Path, spec: dict[str, Any]) -> Any:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            str(path), device="cpu", trust_remote_code=False, local_files_only=True
        )
