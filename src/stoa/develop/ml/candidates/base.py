"""The one interface every candidate kind implements, and the registry of kinds.

A candidate is a kind plus params. It trains on a ``TrainingData`` (tabular features
or one text column), predicts labels or values, gives class probabilities when it
can, and saves itself in a format whose loader runs no code (skops, native XGBoost or
LightGBM, safetensors folders), so the winner can pass the registry gate.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
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
    column: str | None = None  # the text column the texts came from, when known

    def __len__(self) -> int:
        return len(self.texts) if self.modality == "text" else len(self.frame)

    def take(self, index: Any) -> Inputs:
        """The rows at positional ``index`` (an array of ints or a slice)."""
        if self.modality == "text":
            idx = np.arange(len(self.texts))[index]
            texts = [self.texts[i] for i in np.atleast_1d(idx)]
            return Inputs("text", texts=texts, column=self.column)
        return Inputs("tabular", frame=self.frame.iloc[index])


def as_inputs(x: Any, modality: Modality, columns: list[str] | None = None,
              numeric: list[str] | None = None) -> Inputs:  # fmt: skip
    """What a user has, as the ``Inputs`` a candidate reads.

    Tabular: a pandas DataFrame, one row as a mapping, or a list of such rows; extra
    columns (the target, an id) are ignored, a missing one is an error naming it, and
    ``numeric`` columns given as text are parsed. Text: one string, a list or array of
    strings, a Series, a DataFrame holding the text column, or rows as mappings.
    ``columns`` are those the candidate was trained on; empty means "take them as given".
    """
    if isinstance(x, Inputs):
        if x.modality != modality:
            raise InvalidInputError(
                f"this candidate reads {modality} inputs, not {x.modality}", field="inputs"
            )
        return x
    if modality == "text":
        column = columns[0] if columns else None
        return Inputs("text", texts=_texts_from(x, column), column=column)
    return Inputs("tabular", frame=_frame_from(x, columns or [], numeric or []))


def _records(x: Any) -> Any:
    """Rows given as a mapping (one row) or a list of mappings, as a DataFrame."""
    import pandas as pd

    if isinstance(x, Mapping):
        return pd.DataFrame([dict(x)])
    if isinstance(x, list | tuple) and x and all(isinstance(r, Mapping) for r in x):
        return pd.DataFrame([dict(r) for r in x])
    return x


def _frame_from(x: Any, columns: list[str], numeric: list[str]) -> Any:
    import pandas as pd

    frame = _records(x)
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"a tabular candidate reads a pandas DataFrame, not {type(x).__name__}",
            field="inputs",
            fix=f"pass a DataFrame (or rows as dicts) with columns {', '.join(columns)}"
            if columns else "pass a DataFrame or rows as dicts",
        )  # fmt: skip
    if not columns:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"column(s) {', '.join(map(repr, missing))} missing from the input",
            field=f"inputs.{missing[0]}",
            fix=f"the model was trained on {', '.join(columns)}",
        )
    frame = frame[columns]
    for name in numeric:
        if frame[name].dtype.kind not in "biuf":
            try:
                frame = frame.assign(**{name: pd.to_numeric(frame[name])})
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"column {name!r} holds values that are not numbers",
                    field=f"inputs.{name}",
                    fix="the model was trained on numbers in this column",
                ) from None
    return frame


def _texts_from(x: Any, column: str | None) -> list[str]:
    import pandas as pd

    x = _records(x)
    if isinstance(x, str):
        values: list[Any] = [x]
    elif isinstance(x, pd.DataFrame):
        if column is not None and column in x.columns:
            values = x[column].tolist()
        elif column is None and len(x.columns) == 1:
            values = x.iloc[:, 0].tolist()
        else:
            raise InvalidInputError(
                f"the input has no text column {column!r}" if column else
                "a DataFrame of several columns does not say which one is the text",
                field=f"inputs.{column}" if column else "inputs",
                fix=f"pass a DataFrame with a {column!r} column, or a list of strings"
                if column else "pass a list of strings or a one-column DataFrame",
            )  # fmt: skip
    elif isinstance(x, pd.Series | np.ndarray | list | tuple):
        values = list(x)
    else:
        raise InvalidInputError(
            f"a text candidate reads strings, not {type(x).__name__}",
            field="inputs",
            fix="pass a list of strings, a Series or a DataFrame with the text column",
        )
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if bad:
        shown = ", ".join(map(str, bad[:5]))
        raise InvalidInputError(
            f"{len(bad)} input(s) are not text, at position(s) {shown}",
            field="inputs",
            fix="fill empty texts with a string or drop those rows",
        )
    return values


class Candidate(Protocol):
    """What selection calls. ``classes_`` orders predict_proba's columns.

    ``predict`` and ``predict_proba`` take ``Inputs`` or what a user has (see
    ``as_inputs``), so a loaded winner predicts on a DataFrame. ``seed`` seeds every
    random choice the kind makes, so the same data and seed give the same model.
    """

    kind: ClassVar[str]
    modalities: ClassVar[tuple[Modality, ...]]
    tasks: ClassVar[tuple[Task, ...]]
    classes_: np.ndarray | None
    seed: int

    def __init__(self, task: Task, params: dict[str, Any], seed: int = 0) -> None: ...

    @classmethod
    def param_names(cls, task: Task | None) -> set[str] | None:
        """The params the kind knows for ``task`` (None: any task it does), or None when
        the set is open, so that a misspelled one is refused rather than ignored."""

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None: ...

    def predict(self, x: Inputs | Any) -> np.ndarray: ...

    def predict_proba(self, x: Inputs | Any) -> np.ndarray | None:
        """Class probabilities in ``classes_`` order; None when the kind gives none."""

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
    seed: int = 0
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
        return {"kind": self.kind, "task": self.task, "params": self.params, "classes": classes,
                "seed": self.seed, "columns": self.columns()}  # fmt: skip

    def columns(self) -> list[str]:
        """The input columns the candidate was trained on (empty when unknown)."""
        return []

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


def kind_names() -> list[str]:
    """Every registered kind, the built-in ones included."""
    _load_builtin_kinds()
    return sorted(KINDS)


def kind_class(kind: str, field: str = "kind") -> Any:
    """The class of a registered kind; an unknown name is an error that lists the kinds."""
    _load_builtin_kinds()
    cls = KINDS.get(kind)
    if cls is None:
        raise InvalidInputError(
            f"unknown candidate kind {kind!r}", field=field, fix=known_keys(kind, set(KINDS))
        )
    return cls


def check_params(kind: str, task: Task | None, params: Mapping[str, Any],
                 where: str = "params") -> None:  # fmt: skip
    """Refuse a param the kind does not know: a typo must not be silently ignored."""
    known = kind_class(kind).param_names(task)
    if known is None:
        return
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInputError(
            f"{kind}: unknown param(s) {', '.join(map(repr, unknown))}",
            field=f"{where}.{unknown[0]}",
            fix=known_keys(unknown[0], known),
        )


def known_keys(key: str, known: set[str] | frozenset[str], limit: int = 40,
               listing: str | None = None) -> str:  # fmt: skip
    """A fix for an unknown key: the nearest known one, then the known ones (or
    ``listing``, a shorter way to say them)."""
    names = sorted(known)
    same_but_case = [n for n in names if n.lower() == key.lower()]
    longer = [n for n in names if key and n.startswith(key)]  # max_p95 for max_p95_ms
    close = same_but_case or longer or difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    if listing is None:
        more = f", and {len(names) - limit} more" if len(names) > limit else ""
        listing = ", ".join(names[:limit]) + more
    return f"{hint}known: {listing}"


def refuse_unknown(doc: Mapping[Any, Any], known: set[str], where: str, what: str = "") -> None:
    """An error naming the first unknown key of ``doc`` by its dotted path under ``where``,
    with the known keys as the fix; ``what`` says in words where the keys were found."""
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        raise InvalidInputError(
            f"unknown key(s) in {what or where or 'the config'}: {', '.join(unknown)}",
            field=f"{where}.{unknown[0]}" if where else unknown[0],
            fix=known_keys(unknown[0], known),
        )


def make(kind: str, task: Task, params: dict[str, Any] | None = None, *, seed: int = 0) -> Any:
    """A fresh candidate of ``kind``; unknown kinds and bad params are clear errors."""
    cls = kind_class(kind)
    if task not in cls.tasks:
        raise InvalidInputError(
            f"{kind} does not do {task}", field="kind", fix=f"it does {', '.join(cls.tasks)}"
        )
    check_params(kind, task, params or {})
    try:
        return cls(task=task, params=dict(params or {}), seed=seed)
    except TypeError as exc:
        raise InvalidInputError(f"{kind}: {exc}", field="params") from None


def load(path: Path, spec: dict[str, Any]) -> Any:
    """Load a saved candidate from its artifact and spec."""
    cls = kind_class(spec.get("kind", ""), field="spec")
    return cls.load(path, spec)


def _load_builtin_kinds() -> None:
    import importlib

    for module in ("tabular", "text_tfidf", "embeddings", "llm_prompt"):
        try:
            importlib.import_module(f"stoa.develop.ml.candidates.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"stoa.develop.ml.candidates.{module}":
                raise
