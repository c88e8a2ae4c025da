"""scikit-learn through skops: a zip of JSON and arrays that loads without unpickling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stoa.core.errors import RefusedError

# Modules whose types a skops file may construct on load.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.")


class SklearnFlavor:
    name = "sklearn"

    def matches(self, obj: Any) -> bool:
        return any(c.__module__.startswith("sklearn.") for c in type(obj).__mro__) and hasattr(
            obj, "get_params"
        )

    def matches_path(self, path: Path, fmt: str) -> bool:
        return fmt == "skops"

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        import skops.io

        path = folder / "model.skops"
        skops.io.dump(obj, path)
        return path, {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}

    def load(self, path: Path, spec: dict[str, Any]) -> Any:
        return load_skops(path)


def load_skops(path: Path) -> Any:
    """Load a skops file trusting only scikit-learn, NumPy and SciPy types."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=path)
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_MODULES)]
    if foreign:
        raise RefusedError(
            f"the skops file constructs types outside scikit-learn: {', '.join(foreign)}",
            field="model",
            fix="re-save the model with only scikit-learn, NumPy and SciPy types",
        )
    return skops.io.load(path, trusted=untrusted)
