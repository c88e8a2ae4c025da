"""Tabular kinds: scikit-learn, XGBoost and LightGBM behind the same preprocessing.

Numbers are imputed (median) and, for linear models, scaled; categories are imputed and
one-hot encoded with unknown values ignored. The preprocessing is saved with skops and
the model in its framework's native format, so nothing loads through pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.ml.candidates.base import CodedLabels, Inputs, Modality, Task, register_kind


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

    def __init__(self, task: Task, params: dict[str, Any]):
        self.task = task
        self.params = params
        self.classes_: np.ndarray | None = None
        self.preprocess: Any = None
        self.model: Any = None
        self._estimator()  # bad params fail now, not after the data is loaded

    def _estimator(self) -> Any:
        raise NotImplementedError

    def fit(self, x: Inputs, y: np.ndarray) -> None:
        self.preprocess = _preprocessor(x.frame, self.scale)
        features = self.preprocess.fit_transform(x.frame)
        self.model = self._estimator()
        self.model.fit(features, self._targets(y))

    def _features(self, x: Inputs) -> Any:
        return self.preprocess.transform(x.frame)

    def predict(self, x: Inputs) -> np.ndarray:
        return self._labels(self.model.predict(self._features(x)))

    def predict_proba(self, x: Inputs) -> np.ndarray | None:
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

        self = cls(task=spec["task"], params=spec.get("params", {}))
        self.preprocess = load_skops(path / "preprocess.skops")
        self.model = self._load_model(path)
        self._restore(spec)
        return self


def _sklearn(name: str, classifier: str, regressor: str | None, scale: bool = False) -> type:
    """A kind wrapping one scikit-learn estimator class per task."""

    def _estimator(self: Any) -> Any:
        import importlib

        path = classifier if self.task == "classification" else regressor
        module, cls_name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), cls_name)
        try:
            return cls(**self.params)
        except TypeError as exc:
            raise InvalidInputError(f"{name}: {exc}", field="params") from None

    tasks: tuple[Task, ...] = ("classification", "regression") if regressor else ("classification",)
    kind = type(name, (_Tabular,), {"kind": name, "tasks": tasks, "scale": scale,
                                     "_estimator": _estimator})  # fmt: skip
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
            return cls(**{"n_jobs": 1, **self.params})
        except TypeError as exc:
            raise InvalidInputError(f"xgboost: {exc}", field="params") from None

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
        try:
            return cls(**{"verbose": -1, "n_jobs": 1, **self.params})
        except TypeError as exc:
            raise InvalidInputError(f"lightgbm: {exc}", field="params") from None

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
