"""LightGBM in its native text format; loads back as a ``lightgbm.Booster``.

The scikit-learn wrappers cannot be rebuilt from the text format alone, so a saved
``LGBMClassifier`` loads as the Booster it wraps (its ``predict`` gives probabilities).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class LightGBMFlavor:
    name = "lightgbm"

    def matches(self, obj: Any) -> bool:
        return type(obj).__module__.startswith("lightgbm.")

    def matches_path(self, path: Path, fmt: str) -> bool:
        return fmt == "lightgbm-text"

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        booster = obj.booster_ if hasattr(obj, "booster_") else obj
        path = folder / "model.txt"
        booster.save_model(str(path))
        return path, {"class": type(obj).__name__}

    def load(self, path: Path, spec: dict[str, Any]) -> Any:
        import lightgbm

        return lightgbm.Booster(model_file=str(path))
