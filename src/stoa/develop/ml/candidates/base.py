"""The one interface every candidate kind implements, and the registry of kinds.

A candidate is a kind plus params. It trains on a ``TrainingData`` (tabular features
or one text column), predicts labels or values, gives class probabilities when it
can, and saves itself in a format whose loader runs no code (skops, native XGBoost or
LightGBM, safetensors folders), so the winner can pass the registry gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from stoa.core.errors import InvalidInputError

Task = Literal["classification", "regression"]
Modality = Literal["tabular", "text"]


@dataclass
class Inputs:
    """What a candidate sees: a feature frame (tabular) or a list of strings (text)."""

    modality: Modality
    frame: Any = None  # pandas.DataFrame of features, for tabular
    texts: list[str] = field(default_factory=list)  # for text

    def __len__(self) -> int:
        return len(self.texts) if self.modality == "text" else len(self.frame)

    def take(self, index: Any) -> Inputs:
        """The rows at positional ``index`` (an array of ints or a slice)."""
        if self.modality == "text":
            idx = np.arange(len(self.texts))[index]
            return Inputs("text", texts=[self.texts[i] for i in np.atleast_1d(idx)])
        return Inputs("tabular", frame=self.frame.iloc[index])


class Candidate(Protocol):
    """What selection calls. ``classes_`` orders predict_proba's columns."""

    kind: ClassVar[str]
    modalities: ClassVar[tuple[Modality, ...]]
    tasks: ClassVar[tuple[Task, ...]]
    classes_: np.ndarray | None

    def fit(self, x: Inputs, y: np.ndarray) -> None: ...

    def predict(self, x: Inputs) -> np.ndarray: ...

    def predict_proba(self, x: Inputs) -> np.ndarray | None: ...

    def save(self, folder: Path) -> Path:
        """Write the fitted model under ``folder``; return the artifact (file or folder)."""

    def spec(self) -> dict[str, Any]:
        """JSON the loader needs besides the artifact (kind, params, classes, columns)."""

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> Candidate:
        """The fitted candidate back from ``save``'s artifact; runs no code from it."""


class CodedLabels:
    """What classifiers trained on label codes share: classes in, codes out, spec on disk.

    Estimators see labels as 0..k-1 (XGBoost insists); predictions come back as the
    original labels, and the classes travel in the spec so a loaded model answers alike.
    """

    kind: ClassVar[str] = ""
    task: Task
    params: dict[str, Any]
    classes_: np.ndarray | None = None

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.task != "classification":
            return y.astype(float)
        self.classes_, codes = np.unique(y, return_inverse=True)
        return codes

    def _labels(self, out: Any) -> np.ndarray:
        if self.task == "classification":
            assert self.classes_ is not None
            return self.classes_[np.asarray(out).astype(int)]
        return np.asarray(out, dtype=float)

    def spec(self) -> dict[str, Any]:
        classes = None if self.classes_ is None else self.classes_.tolist()
        return {"kind": self.kind, "task": self.task, "params": self.params, "classes": classes}

    def _folder(self, folder: Path) -> Path:
        out = folder / self.kind
        out.mkdir(parents=True, exist_ok=True)
        (out / "candidate.json").write_text(json.dumps(self.spec()))
        return out

    def _restore(self, spec: dict[str, Any]) -> None:
        if spec.get("classes") is not None:
            self.classes_ = np.asarray(spec["classes"])


class Skipped(Exception):
    """A kind that cannot run here (no provider configured, say): reported, never faked."""


KINDS: dict[str, type] = {}


def register_kind(cls: type) -> type:
    """Make a kind available to ``make`` and ``load``; one class per kind name."""
    if KINDS.get(cls.kind, cls) is not cls:
        raise ValueError(f"candidate kind {cls.kind!r} is already registered")
    KINDS[cls.kind] = cls
    return cls


def make(kind: str, task: Task, params: dict[str, Any] | None = None, **extra: Any) -> Any:
    """A fresh candidate of ``kind``; unknown kinds and bad params are clear errors."""
    _load_builtin_kinds()
    cls = KINDS.get(kind)
    if cls is None:
        raise InvalidInputError(
            f"unknown candidate kind {kind!r}",
            field="kind",
            fix=f"use one of {', '.join(sorted(KINDS))}",
        )
    if task not in cls.tasks:
        raise InvalidInputError(
            f"{kind} does not do {task}", field="kind", fix=f"it does {', '.join(cls.tasks)}"
        )
    try:
        return cls(task=task, params=dict(params or {}), **extra)
    except TypeError as exc:
        raise InvalidInputError(f"{kind}: {exc}", field="params") from None


def load(path: Path, spec: dict[str, Any]) -> Any:
    """Load a saved candidate from its artifact and spec."""
    _load_builtin_kinds()
    cls = KINDS.get(spec.get("kind", ""))
    if cls is None:
        raise InvalidInputError(f"unknown candidate kind {spec.get('kind')!r}", field="spec")
    return cls.load(path, spec)


def _load_builtin_kinds() -> None:
    import importlib

    for module in ("tabular", "text_tfidf", "embeddings"):
        try:
            importlib.import_module(f"stoa.develop.ml.candidates.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"stoa.develop.ml.candidates.{module}":
                raise
