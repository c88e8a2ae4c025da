"""TF-IDF + a linear model: the traditional text baseline every selection should beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stoa.develop.ml.candidates.base import (
    CodedLabels,
    Inputs,
    Modality,
    Task,
    as_inputs,
    register_kind,
)

_VECTORIZER = {"ngram_max": 2, "min_df": 1, "sublinear_tf": True, "max_features": 200_000}
_HEAD = {"C", "alpha", "max_iter", "class_weight"}


@register_kind
class TfidfLinear(CodedLabels):
    kind: ClassVar[str] = "tfidf_linear"
    modalities: ClassVar[tuple[Modality, ...]] = ("text",)
    tasks: ClassVar[tuple[Task, ...]] = ("classification", "regression")

    def __init__(self, task: Task, params: dict[str, Any], seed: int = 0):
        self.task = task
        self.params = params
        self.seed = seed
        self.classes_: np.ndarray | None = None
        self.column_: str | None = None
        self.pipeline: Any = None

    @classmethod
    def param_names(cls, task: Task | None) -> set[str]:
        return set(_VECTORIZER) | _HEAD

    def _build(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline

        v = {**_VECTORIZER, **{k: self.params[k] for k in _VECTORIZER if k in self.params}}
        vectorizer = TfidfVectorizer(
            ngram_range=(1, v["ngram_max"]), min_df=v["min_df"], sublinear_tf=v["sublinear_tf"],
            max_features=v["max_features"], strip_accents="unicode",
        )  # fmt: skip
        if self.task == "classification":
            head = LogisticRegression(
                C=self.params.get("C", 10.0), max_iter=self.params.get("max_iter", 2000),
                class_weight=self.params.get("class_weight"), random_state=self.seed,
            )  # fmt: skip
        else:
            head = Ridge(alpha=self.params.get("alpha", 1.0), random_state=self.seed)
        return make_pipeline(vectorizer, head)

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None:
        x = as_inputs(x, "text")
        self.column_ = x.column
        self.pipeline = self._build()
        self.pipeline.fit(x.texts, self._targets(y))

    def columns(self) -> list[str]:
        return [self.column_] if self.column_ else []

    def _texts(self, x: Inputs | Any) -> list[str]:
        return as_inputs(x, "text", self.columns()).texts

    def predict(self, x: Inputs | Any) -> np.ndarray:
        return self._labels(self.pipeline.predict(self._texts(x)))

    def predict_proba(self, x: Inputs | Any) -> np.ndarray | None:
        if self.task != "classification":
            return None
        return np.asarray(self.pipeline.predict_proba(self._texts(x)))

    def save(self, folder: Path) -> Path:
        import skops.io

        out = self._folder(folder)
        skops.io.dump(self.pipeline, out / "pipeline.skops")
        return out

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> TfidfLinear:
        from stoa.govern.flavors.sklearn_flavor import load_skops

        self = cls(task=spec["task"], params=spec.get("params", {}), seed=spec.get("seed", 0))
        self.pipeline = load_skops(path / "pipeline.skops")
        self.column_ = (spec.get("columns") or [None])[0]
        self._restore(spec)
        return self
