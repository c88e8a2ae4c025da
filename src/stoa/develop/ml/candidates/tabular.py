"""Tabular kinds: scikit-learn, XGBoost and LightGBM behind the same preprocessing.

Numbers are imputed (median) and, for linear models, scaled; categories are imputed and
one-hot encoded with unknown values ignored. The preprocessing is saved with skops and
the model in its framework's native format, so nothing loads through pickle.

Every estimator gets the candidate's seed as ``random_state`` unless the params set one,
and the boosters run in a single thread (LightGBM also in its deterministic mode), so
the same data and seed train the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.ml.candidates.base import (
    CodedLabels,
    Inputs,
    Modality,
    Task,
    as_inputs,
    register_kind,
)


def _preprocessor(frame: Any, scale: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in frame.columns if frame[c].dtype.kind in "biuf"]
    other = [c for c in frame.columns if c not in numeric]
    steps = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
    transformers = [("num", make_pipeline(*steps), numeric)] if numeric else []
    if other:
        categorical = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        transformers.append(("cat", categorical, other))
    return ColumnTransformer(transformers, remainder="drop")


class _Tabular(CodedLabels):
    """Shared fit/predict/save around one estimator built by ``_estimator``."""

    kind: ClassVar[str] = ""
    modalities: ClassVar[tuple[Modality, ...]] = ("tabular",)
    tasks: ClassVar[tuple[Task, ...]] = ("classification", "regression")
    scale: ClassVar[bool] = False
    native: ClassVar[str] = "skops"  # how the estimator itself is saved

    def __init__(self, task: Task, params: dict[str, Any], seed: int = 0):
        self.task = task
        self.params = params
        self.seed = seed
        self.classes_: np.ndarray | None = None
        self.preprocess: Any = None
        self.model: Any = None
        self._estimator()  # bad params fail now, not after the data is loaded

    @classmethod
    def param_names(cls, task: Task | None) -> set[str] | None:
        raise NotImplementedError

    def _estimator(self) -> Any:
        raise NotImplementedError

    def _seeded(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """The params over ``defaults``, with the seed as random_state unless one is set."""
        return {"random_state": self.seed, **defaults, **self.params}

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None:
        x = as_inputs(x, "tabular")
        self.preprocess = _preprocessor(x.frame, self.scale)
        features = self.preprocess.fit_transform(x.frame)
        self.model = self._estimator()
        self.model.fit(features, self._targets(y))

    def columns(self) -> list[str]:
        names = getattr(self.preprocess, "feature_names_in_", None)
        return [] if names is None else [str(c) for c in names]

    def _numeric(self) -> list[str]:
        return [c for name, _, cols in self.preprocess.transformers_ if name == "num" for c in cols]

    def _features(self, x: Inputs | Any) -> Any:
        frame = as_inputs(x, "tabular", self.columns(), self._numeric()).frame
        return self.preprocess.transform(frame)

    def predict(self, x: Inputs | Any) -> np.ndarray:
        return self._labels(self.model.predict(self._features(x)))

    def predict_proba(self, x: Inputs | Any) -> np.ndarray | None:
        if self.task != "classification" or not hasattr(self.model, "predict_proba"):
            return None
        return np.asarray(self.model.predict_proba(self._features(x)))

    def save(self, folder: Path) -> Path:
        import skops.io

        out = self._folder(folder)
        skops.io.dump(self.preprocess, out / "preprocess.skops")
        self._save_model(out)
        return out

    def _save_model(self, out: Path) -> None:
        import skops.io

        skops.io.dump(self.model, out / "model.skops")

    def _load_model(self, path: Path) -> Any:
        from stoa.govern.flavors.sklearn_flavor import load_skops

        return load_skops(path / "model.skops")

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> Any:
        from stoa.govern.flavors.sklearn_flavor import load_skops

        self = cls(task=spec["task"], params=spec.get("params", {}), seed=spec.get("seed", 0))
        self.preprocess = load_skops(path / "preprocess.skops")
        self.model = self._load_model(path)
        self._restore(spec)
        return self


def _sklearn(name: str, classifier: str, regressor: str | None, scale: bool = False) -> type:
    """A kind wrapping one scikit-learn estimator class per task."""
    paths = {"classification": classifier, "regression": regressor}

    def estimator_class(task: Task) -> Any:
        import importlib

        module, cls_name = str(paths[task]).rsplit(".", 1)
        return getattr(importlib.import_module(module), cls_name)

    def _estimator(self: Any) -> Any:
        cls = estimator_class(self.task)
        seeded = "random_state" in cls().get_params()
        try:
            return cls(**(self._seeded({}) if seeded else self.params))
        except TypeError as exc:
            raise InvalidInputError(f"{name}: {exc}", field="params") from None

    def param_names(cls: Any, task: Task | None) -> set[str]:
        return {
            p for t in ([task] if task else cls.tasks) for p in estimator_class(t)().get_params()
        }

    tasks: tuple[Task, ...] = ("classification", "regression") if regressor else ("classification",)
    kind = type(name, (_Tabular,), {"kind": name, "tasks": tasks, "scale": scale,
                                     "_estimator": _estimator,
                                     "param_names": classmethod(param_names)})  # fmt: skip
    return register_kind(kind)


_sklearn("logistic_regression", "sklearn.linear_model.LogisticRegression", None, scale=True)
_sklearn("ridge", "sklearn.linear_model.RidgeClassifier", "sklearn.linear_model.Ridge", True)
_sklearn("random_forest", "sklearn.ensemble.RandomForestClassifier",
         "sklearn.ensemble.RandomForestRegressor")  # fmt: skip
_sklearn("gradient_boosting", "sklearn.ensemble.HistGradientBoostingClassifier",
         "sklearn.ensemble.HistGradientBoostingRegressor")  # fmt: skip


@register_kind
class XGBoostKind(_Tabular):
    kind = "xgboost"

    def _estimator(self) -> Any:
        import xgboost

        cls = xgboost.XGBClassifier if self.task == "classification" else xgboost.XGBRegressor
        try:
            return cls(**self._seeded({"n_jobs": 1}))
        except TypeError as exc:
            raise InvalidInputError(f"xgboost: {exc}", field="params") from None

    @classmethod
    def param_names(cls, task: Task | None) -> set[str]:
        """The scikit-learn wrapper's params (XGBoost's own aliases, such as eta, are
        refused with the wrapper's name in the fix)."""
        import xgboost

        return set(xgboost.XGBClassifier().get_params()) | set(xgboost.XGBRegressor().get_params())

    def _save_model(self, out: Path) -> None:
        self.model.save_model(str(out / "model.ubj"))

    def _load_model(self, path: Path) -> Any:
        model = self._estimator()
        model.load_model(str(path / "model.ubj"))
        return model


@register_kind
class LightGBMKind(_Tabular):
    kind = "lightgbm"

    def _estimator(self) -> Any:
        import lightgbm

        cls = lightgbm.LGBMClassifier if self.task == "classification" else lightgbm.LGBMRegressor
        # LightGBM picks row- or column-wise histograms by timing them unless told, and
        # only its deterministic mode promises the same trees from the same data.
        defaults = {"verbose": -1, "n_jobs": 1, "deterministic": True, "force_row_wise": True}
        try:
            return cls(**self._seeded(defaults))
        except TypeError as exc:
            raise InvalidInputError(f"lightgbm: {exc}", field="params") from None

    @classmethod
    def param_names(cls, task: Task | None) -> set[str] | None:
        """The scikit-learn wrapper's params plus every LightGBM parameter and alias, which
        the wrapper passes through; None (any name) if this LightGBM cannot list them."""
        import lightgbm

        try:
            from lightgbm.basic import _ConfigAliases

            aliases = _ConfigAliases._get_all_param_aliases()
        except (ImportError, AttributeError):
            return None
        native = {name for names in aliases.values() for name in names} | set(aliases)
        return set(lightgbm.LGBMClassifier().get_params()) | native

    def _save_model(self, out: Path) -> None:
        self.model.booster_.save_model(str(out / "model.txt"))

    def _load_model(self, path: Path) -> Any:
        import lightgbm

        return _BoosterModel(lightgbm.Booster(model_file=str(path / "model.txt")), self.task)


class _BoosterModel:
    """A LightGBM Booster loaded from text, with the sklearn predict API selection uses."""

    def __init__(self, booster: Any, task: Task):
        self.booster = booster
        self.task = task

    def predict_proba(self, features: Any) -> np.ndarray:
        raw = np.asarray(self.booster.predict(features))
        return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, features: Any) -> np.ndarray:
        if self.task == "classification":
            return self.predict_proba(features).argmax(axis=1)
        return np.asarray(self.booster.predict(features))
