"""XGBoost in its native UBJSON format, for Boosters and the scikit-learn wrappers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")


class XGBoostFlavor:
    name = "xgboost"

    def matches(self, obj: Any) -> bool:
        return type(obj).__module__.startswith("xgboost.")

    def matches_path(self, path: Path, fmt: str) -> bool:
        return fmt in ("xgboost-json", "xgboost-ubj")

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        path = folder / "model.ubj"
        obj.save_model(str(path))
        return path, {"class": type(obj).__name__}

    def load(self, path: Path, spec: dict[str, Any]) -> Any:
        import xgboost

        cls_name = spec.get("class", "Booster")
        model = getattr(xgboost, cls_name)() if cls_name in _WRAPPERS else xgboost.Booster()
        # From memory: XGBoost guesses a file's format from its extension, and stored
        # artifacts have none; from a buffer it reads JSON or UBJSON by content.
        model.load_model(bytearray(path.read_bytes()))
        return model
