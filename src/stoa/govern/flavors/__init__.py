"""Save and load models of each framework in a format that never runs code on load.

``detect_flavor`` picks the flavor from a live object (``client.models.log``) and
``flavor_for_path`` from a stored artifact (``register`` from a file or folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from stoa.core.errors import InvalidInputError
from stoa.govern.flavors.causal_lm_flavor import CausalLMFlavor
from stoa.govern.flavors.lightgbm_flavor import LightGBMFlavor
from stoa.govern.flavors.sentence_transformers_flavor import SentenceTransformersFlavor
from stoa.govern.flavors.sklearn_flavor import SklearnFlavor
from stoa.govern.flavors.xgboost_flavor import XGBoostFlavor


class Flavor(Protocol):
    name: str

    def matches(self, obj: Any) -> bool:
        """Whether this flavor knows how to save ``obj``."""

    def matches_path(self, path: Path, fmt: str) -> bool:
        """Whether a stored artifact is one of this flavor's saves."""

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        """Write ``obj`` under ``folder``; return the artifact path and the spec to keep."""

    def load(self, path: Path, spec: dict[str, Any]) -> Any: ...


# Order matters: the XGBoost and LightGBM wrappers are scikit-learn estimators too.
FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        XGBoostFlavor(),
        LightGBMFlavor(),
        SentenceTransformersFlavor(),
        CausalLMFlavor(),
        SklearnFlavor(),
    )
}


# The flavors Stoa ships in this package; entry-point flavors join FLAVORS when first needed.
BUILTIN_FLAVORS = tuple(FLAVORS)
_PLUGINS_LOADED = False


def _load_plugins() -> None:
    """Flavors other packages (and Stoa's own develop area) declare under the
    ``stoa.flavors`` entry point group: the registry never imports them by name."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from importlib.metadata import entry_points

    for entry in entry_points(group="stoa.flavors"):
        if entry.name not in FLAVORS:
            FLAVORS[entry.name] = entry.load()()


def get_flavor(name: str) -> Flavor:
    if name not in FLAVORS:
        _load_plugins()
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown flavor {name!r}",
            field="flavor",
            fix=f"choose one of {', '.join(sorted(FLAVORS))}",
        ) from None


def detect_flavor(obj: Any) -> Flavor:
    for flavor in FLAVORS.values():
        if flavor.matches(obj):
            return flavor
    raise InvalidInputError(
        f"no flavor knows how to save a {type(obj).__module__}.{type(obj).__qualname__}",
        field="model",
        fix=f"pass a model of one of {', '.join(sorted(FLAVORS))}, or save it yourself "
        "and register the file",
    )


def flavor_for_path(path: Path, fmt: str) -> str | None:
    """The flavor a stored artifact was saved with, or None when no flavor claims it.

    ``fmt`` is the format the gate detected, so the file is not read twice.
    """
    _load_plugins()
    for flavor in FLAVORS.values():
        if flavor.matches_path(path, fmt):
            return flavor.name
    return None


__all__ = ["FLAVORS", "Flavor", "detect_flavor", "flavor_for_path", "get_flavor"]
