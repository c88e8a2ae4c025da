"""``llm_prompt``: a language model classifying by prompt, as one more selection candidate.

The prompt is the instructions and the label set (with descriptions when given) as the
system turn, a few labelled training texts as user/assistant turns, then the input. The
answer is constrained to the label set: a provider that scores choices (the ``local``
one) gives a probability per label; any other generates with ``choices`` and the
snapped answer counts as a one-hot probability. An answer outside the label set is
scored as the most frequent training label and counted in ``invalid_answers``.

Few-shot examples are ``shots`` per label, either the training texts nearest each input
by TF-IDF cosine (``shot_selection: similar``, dynamic few-shot) or drawn once with the
seed (``fixed``). The candidate holds no weights: it saves its prompt and example pool
as JSON and names the model it ran, so a loaded one must be ``bind``-ed to a provider
(``stoa select`` and the solution runner do that) before it predicts.

Each row costs a model call, so selection evaluates it on a stated sample of the test
rows (``sample``) and times ``latency_samples`` single-row calls (see ``select``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.llm.openai_compat import snap_to_choices
from stoa.develop.ml.candidates.base import Inputs, Modality, Task, as_inputs, register_kind

#: Training texts kept per label as the pool ``similar`` picks from: enough to find a
#: near neighbour, small enough that the saved JSON and the TF-IDF index stay tiny.
POOL_PER_LABEL = 64
MAX_SHOTS = 8
MAX_EXAMPLE_CHARS = 400  # a long ticket as an example costs prompt tokens on every call
SHOT_SELECTIONS = ("similar", "fixed")
DEFAULT_INSTRUCTIONS = (
    "Classify the user's text into exactly one of the labels below. Answer with the label only."
)

#: ``loader(spec) -> Provider``; it may also have ``model_bytes(spec) -> int``.
Loader = Callable[[Any], Any]


def _check_params(params: dict[str, Any]) -> None:
    shots = params["shots"]
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= MAX_SHOTS:
        raise InvalidInputError(
            f"shots must be an integer from 0 to {MAX_SHOTS}, not {shots!r}",
            field="params.shots",
            fix="1 or 2 examples per label suit a small model's context",
        )
    if params["shot_selection"] not in SHOT_SELECTIONS:
        raise InvalidInputError(
            f"shot_selection {params['shot_selection']!r} is not known",
            field="params.shot_selection",
            fix=f"use one of {', '.join(SHOT_SELECTIONS)}",
        )
    for name in ("sample", "latency_samples"):
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a positive integer", field=f"params.{name}")
    for name in ("provider", "model"):
        if not isinstance(params[name], str) or not params[name]:
            raise InvalidInputError(f"{name} must be a non-empty string", field=f"params.{name}")
    if not isinstance(params["options"], dict):
        raise InvalidInputError("options must be a mapping", field="params.options")
    labels = params["labels"]
    if labels is not None and (
        not isinstance(labels, dict)
        or any(not isinstance(v, str) or not v.strip() for v in labels.values())
    ):
        raise InvalidInputError(
            "labels maps each label to a short description",
            field="params.labels",
            fix='pass {"billing": "questions about invoices", ...}',
        )
    if params["instructions"] is not None and not isinstance(params["instructions"], str):
        raise InvalidInputError("instructions must be text", field="params.instructions")


@register_kind
class LLMPrompt:
    """Few-shot prompting of any provider, with the answer constrained to the labels."""

    kind: ClassVar[str] = "llm_prompt"
    modalities: ClassVar[tuple[Modality, ...]] = ("text",)
    tasks: ClassVar[tuple[Task, ...]] = ("classification",)
    defaults: ClassVar[dict[str, Any]] = {
        "provider": "local",
        "model": "smollm2@champion",
        "options": {},
        "shots": 2,
        "shot_selection": "similar",
        "labels": None,
        "instructions": None,
        "sample": 120,
        "latency_samples": 20,
    }

    def __init__(
        self, task: Task = "classification", params: dict[str, Any] | None = None, seed: int = 0
    ):
        self.task = task
        self.params = {**self.defaults, **dict(params or {})}
        _check_params(self.params)
        self.seed = seed
        self.classes_: np.ndarray | None = None
        self.column_: str | None = None
        self.pool_texts_: list[str] = []
        self.pool_labels_: list[str] = []
        self.fallback_: str | None = None  # the most frequent training label
        self.model_ref_: str | None = None
        self.model_bytes_ = 0
        self.invalid_answers = 0
        self.answers = 0
        self.billed_usd = 0.0  # what a priced remote provider charged for those answers
        self._provider: Any = None
        self._index: Any = None  # (vectorizer, matrix) over the pool, for "similar"

    @classmethod
    def param_names(cls, task: Task | None) -> set[str]:
        return set(cls.defaults)

    # -- selection hooks --------------------------------------------------------

    def evaluation_sample(self) -> tuple[int, int]:
        """(test rows to score, single-row latency calls): every row is a model call."""
        return self.params["sample"], self.params["latency_samples"]

    def provider_spec(self) -> Any:
        from stoa.develop.llm.providers import ProviderSpec

        return ProviderSpec(self.params["provider"], self.params["model"], self.params["options"])

    def bind(self, loader: Loader) -> None:
        """Attach the provider that answers. Candidates are built without store access,
        so whoever holds the stores (selection, the solution runner) passes a loader."""
        spec = self.provider_spec()
        self._provider = loader(spec)
        self.model_ref_ = str(getattr(self._provider, "model", "") or self.params["model"])
        sizer = getattr(loader, "model_bytes", None)
        if sizer is not None:
            self.model_bytes_ = int(sizer(spec))

    def extras(self) -> dict[str, Any]:
        """Counts for the leaderboard row: answers asked and those outside the labels."""
        per_answer = self.billed_usd / self.answers if self.answers else 0.0
        return {"invalid_answers": self.invalid_answers, "answers": self.answers,
                "model_ref": self.model_ref_, "billed_usd_per_answer": per_answer}  # fmt: skip

    def referenced_bytes(self) -> int:
        """The model is referenced, not copied, but a deployment needs its bytes."""
        return self.model_bytes_

    # -- training ---------------------------------------------------------------

    def fit(self, x: Inputs | Any, y: np.ndarray) -> None:
        """Keep a seeded pool of labelled examples; the model itself is not trained."""
        inputs = as_inputs(x, "text")
        self.column_ = inputs.column
        y = np.asarray(y)
        if len(y) != len(inputs):
            raise InvalidInputError(f"{len(inputs)} texts but {len(y)} labels", field="y")
        if len(np.unique(y)) < 2:
            raise InvalidInputError("training needs at least two classes", field="y")
        self.classes_ = np.unique(y)
        self._check_label_text()
        counts = Counter(y.tolist())
        self.fallback_ = str(max(self.classes_.tolist(), key=lambda c: counts[c]))
        similar = self.params["shot_selection"] == "similar"
        keep = POOL_PER_LABEL if similar else self.params["shots"]
        rng = np.random.default_rng(self.seed)
        chosen: list[int] = []
        for label in self.classes_:
            rows = np.flatnonzero(y == label)
            chosen.extend(rng.permutation(rows)[:keep].tolist())
        order = rng.permutation(len(chosen))  # labels interleaved, not in blocks
        self.pool_texts_ = [_clip(inputs.texts[chosen[i]]) for i in order]
        self.pool_labels_ = [str(y[chosen[i]]) for i in order]
        self._index = None

    def _check_label_text(self) -> None:
        assert self.classes_ is not None
        blank = [c for c in self.classes_.tolist() if not str(c).strip()]
        if blank:
            raise InvalidInputError("a label is empty, so the model could not answer it", field="y")
        described = self.params["labels"]
        if described is not None:
            missing = [str(c) for c in self.classes_ if str(c) not in described]
            if missing:
                raise InvalidInputError(
                    f"no description for label {', '.join(map(repr, missing))}",
                    field="params.labels",
                    fix="describe every training label, or leave labels out",
                )

    # -- prompting --------------------------------------------------------------

    def labels(self) -> list[str]:
        """The label set as the model must answer it."""
        self._require_fitted()
        assert self.classes_ is not None
        return [str(c) for c in self.classes_]

    def system_prompt(self) -> str:
        described = self.params["labels"] or {}
        lines = [self.params["instructions"] or DEFAULT_INSTRUCTIONS, "", "Labels:"]
        for label in self.labels():
            note = described.get(label)
            lines.append(f"- {label}: {note}" if note else f"- {label}")
        return "\n".join(lines)

    def examples(self, text: str) -> list[tuple[str, str]]:
        """The (text, label) shots for one input: per label, its nearest pool texts
        (``similar``) or the seeded draw (``fixed``); the nearest come last, next to
        the input, where a small model weighs them most."""
        shots = self.params["shots"]
        if shots == 0 or not self.pool_texts_:
            return []
        pairs = list(zip(self.pool_texts_, self.pool_labels_, strict=True))
        if self.params["shot_selection"] == "fixed":
            return pairs
        vectorizer, matrix = self._similarity_index()
        sims = (matrix @ vectorizer.transform([text]).T).toarray().ravel()
        picked: list[int] = []
        for label in self.labels():
            rows = [i for i, lab in enumerate(self.pool_labels_) if lab == label]
            rows.sort(key=lambda i: -sims[i])
            picked.extend(rows[:shots])
        picked.sort(key=lambda i: sims[i])
        return [pairs[i] for i in picked]

    def _similarity_index(self) -> tuple[Any, Any]:
        if self._index is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(sublinear_tf=True)
            self._index = (vectorizer, vectorizer.fit_transform(self.pool_texts_))
        return self._index

    def messages(self, text: str) -> list[Any]:
        """The whole prompt for one input."""
        from stoa.develop.llm.provider import Message

        turns = [Message(role="system", content=self.system_prompt())]
        for example, label in self.examples(text):
            turns.append(Message(role="user", content=example))
            turns.append(Message(role="assistant", content=label))
        turns.append(Message(role="user", content=_clip(text)))
        return turns

    # -- predicting -------------------------------------------------------------

    def predict_with_proba(self, x: Inputs | Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities from one model call per row."""
        proba = self.predict_proba(x)
        assert self.classes_ is not None
        return self.classes_[np.argmax(proba, axis=1)], proba

    def predict(self, x: Inputs | Any) -> np.ndarray:
        return self.predict_with_proba(x)[0]

    def predict_proba(self, x: Inputs | Any) -> np.ndarray:
        self._require_fitted()
        provider = self._require_bound()
        texts = as_inputs(x, "text", [self.column_] if self.column_ else None).texts
        labels = self.labels()
        out = np.zeros((len(texts), len(labels)))
        for row, text in enumerate(texts):
            out[row] = self._answer(provider, self.messages(text), labels)
        return out

    def _answer(self, provider: Any, messages: list[Any], labels: list[str]) -> np.ndarray:
        self.answers += 1
        scorer = getattr(provider, "score_choices", None)
        if scorer is not None:
            try:
                return np.asarray(scorer(messages, labels), dtype=float)
            except InvalidInputError as exc:
                if exc.field != "choices":  # llama.cpp scores nothing: generate instead
                    raise
        generation = _generate(provider, messages, labels)
        if getattr(provider, "kind", "local") != "local":  # local cost is CPU, timed apart
            self.billed_usd += generation.usage.cost_usd
        text = snap_to_choices(generation.text, labels).strip()
        probs = np.zeros(len(labels))
        if text in labels:
            probs[labels.index(text)] = 1.0
        else:
            self.invalid_answers += 1
            assert self.fallback_ is not None
            probs[labels.index(self.fallback_)] = 1.0
        return probs

    def _require_fitted(self) -> None:
        if self.classes_ is None:
            raise InvalidInputError("llm_prompt is not fitted", field="candidate", fix="call fit")

    def _require_bound(self) -> Any:
        if self._provider is None:
            raise InvalidInputError(
                "this llm_prompt candidate is not bound to a provider, so it cannot predict",
                field="candidate",
                fix="call candidate.bind(loader) with loader(ProviderSpec) -> Provider, e.g. "
                "lambda s: load_provider(s, registry=..., settings=...); "
                "stoa select and solutions do this for you",
            )
        return self._provider

    # -- saving -----------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.task,
            "params": dict(self.params),
            "classes": None if self.classes_ is None else self.classes_.tolist(),
            "seed": self.seed,
            "columns": [self.column_] if self.column_ else [],
            "model_ref": self.model_ref_,
            "invalid_answers": self.invalid_answers,
            "answers": self.answers,
        }

    def save(self, folder: Path) -> Path:
        """``candidate.json``: prompt settings, labels and the example pool; no weights."""
        self._require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {**self.spec(), "pool": {"texts": self.pool_texts_, "labels": self.pool_labels_},
               "fallback": self.fallback_}  # fmt: skip
        (folder / "candidate.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
        return folder

    @classmethod
    def load(cls, path: Path, spec: dict[str, Any]) -> LLMPrompt:
        """An unbound candidate: ``bind`` it before predicting."""
        path = Path(path)
        file = path / "candidate.json" if path.is_dir() else path
        try:
            doc = json.loads(file.read_text())
            pool = doc["pool"]
            candidate = cls(params=doc["params"], seed=int(doc.get("seed", 0)))
            candidate.classes_ = np.asarray(doc["classes"])
            candidate.pool_texts_ = [str(t) for t in pool["texts"]]
            candidate.pool_labels_ = [str(label) for label in pool["labels"]]
            candidate.fallback_ = str(doc["fallback"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(
                f"not a saved llm_prompt candidate: {type(exc).__name__}: {exc}",
                field="artifact",
                fix="load the folder that llm_prompt's save wrote",
            ) from None
        candidate.column_ = (doc.get("columns") or [None])[0]
        candidate.model_ref_ = doc.get("model_ref")
        return candidate


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "…"


def _generate(provider: Any, messages: list[Any], labels: Sequence[str]) -> Any:
    """The answer of a provider that cannot score choices, asked to keep to the labels
    (a provider that cannot even do that answers freely, and is snapped afterwards)."""
    from stoa.develop.llm.provider import GenerationParams

    longest = max(len(label) for label in labels)
    limit = max(8, min(64, longest))  # a label is rarely more tokens than characters
    try:
        params = GenerationParams(choices=tuple(labels), max_tokens=limit, temperature=0.0)
        return provider.generate(messages, params)
    except InvalidInputError as exc:
        if exc.field != "choices":
            raise
        return provider.generate(messages, GenerationParams(max_tokens=limit))
