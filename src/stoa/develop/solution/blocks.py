"""What each kind of step does: one function per kind, called by the runner (``call``
steps nest a run, so the runner does them itself).

A block reads the context, does its work through the areas that own it (the registry
loads models, ``KnowledgeBases`` retrieves, providers generate) and returns a
``StepResult``: the outputs stored in the context under the step's id, a short
decision for the trace, and whether the run ends here or jumps forward.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError, StoaError
from stoa.develop.llm.provider import Generation, Message, Passage
from stoa.develop.llm.providers import ProviderSpec, load_provider
from stoa.develop.solution.plan import CompiledStep
from stoa.govern.prompts import render_template

#: The runner's ``Environment`` (registry, knowledge bases, settings, caches); typed
#: loosely here because the runner imports this module.
Environment = Any


@dataclass
class Ending:
    """The run ends with this response."""

    status: str
    output: dict[str, Any]


@dataclass
class StepResult:
    outputs: dict[str, Any]
    decision: str = ""
    ending: Ending | None = None
    route: str | None = None
    tags: list[str] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)


Block = Callable[[CompiledStep, dict[str, Any], Environment], StepResult]


def _where(step: CompiledStep, name: str) -> str:
    return f"steps.{step.id}.{name}"


def run_rules(step: CompiledStep, ctx: dict[str, Any], env: Environment) -> StepResult:
    """Rules in order: ``tag`` rules add and go on; the first respond, reject or route
    that matches decides."""
    tags: list[str] = []
    matched: list[int] = []
    for j, rule in enumerate(step.step.rules):
        if not step.expressions[f"rules.{j}"].truth(ctx, where=_where(step, f"rules[{j}].when")):
            continue
        matched.append(j)
        outputs = {"matched": matched, "tags": tags}
        if rule.tag is not None:
            tags.append(rule.tag)
            ctx["tags"] = [*ctx["tags"], rule.tag]
            continue
        decision = f"rule {j} ({rule.when}) → {rule.action}"
        if rule.route is not None:
            return StepResult({**outputs, "action": "route"}, decision, route=rule.route, tags=tags)
        text = render_template(step.templates[f"rules.{j}"], ctx, field=_where(step, f"rules[{j}]"))
        if rule.reject is not None:
            reply = {"text": text, "reason": text}
            return StepResult(
                {**outputs, "action": "reject"}, decision, Ending("rejected", reply), tags=tags
            )
        return StepResult(
            {**outputs, "action": "respond"}, decision, Ending("ok", {"text": text}), tags=tags
        )
    return StepResult(
        {"matched": matched, "tags": tags, "action": None},
        f"{len(matched)} tag rule(s) matched" if matched else "no rule matched",
        tags=tags,
    )


def run_classify(step: CompiledStep, ctx: dict[str, Any], env: Environment) -> StepResult:
    value = step.expressions["text"].evaluate(ctx, where=_where(step, "text"))
    model, version = env.model(step.step.model)
    labels, probabilities = _predict(model, value, step)
    best = int(np.argmax(probabilities))
    label, confidence = labels[best], float(probabilities[best])
    outputs = {
        "label": label,
        "confidence": confidence,
        "probabilities": {str(k): float(p) for k, p in zip(labels, probabilities, strict=True)},
        "model": version,
    }
    for threshold in step.step.thresholds:
        if confidence < threshold.below:
            decision = f"{label} at {confidence:.2f} < {threshold.below}"
            if threshold.route is not None:
                return StepResult(
                    outputs, f"{decision} → route {threshold.route}", route=threshold.route
                )
            ctx["tags"] = [*ctx["tags"], threshold.tag]
            return StepResult(outputs, f"{decision} → tag {threshold.tag}", tags=[threshold.tag])
    return StepResult(outputs, f"{label} at {confidence:.2f}")


def _predict(model: Any, value: Any, step: CompiledStep) -> tuple[list[Any], np.ndarray]:
    row = [value] if isinstance(value, str) else value
    try:
        if callable(getattr(model, "predict_proba", None)):
            proba = model.predict_proba(row)
            if proba is not None:
                classes = list(np.asarray(model.classes_).tolist())
                return [str(c) for c in classes], np.asarray(proba, dtype=float)[0]
        label = np.asarray(model.predict(row)).tolist()[0]
    except StoaError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"the model could not classify {type(value).__name__} input: "
            f"{type(exc).__name__}: {exc}",
            field=_where(step, "text"),
            fix="give the model the kind of value it was trained on (text or a row)",
        ) from None
    return [str(label)], np.array([1.0])


def run_embed(step: CompiledStep, ctx: dict[str, Any], env: Environment) -> StepResult:
    text = step.expressions["text"].evaluate(ctx, where=_where(step, "text"))
    if not isinstance(text, str):
        raise InvalidInputError(
            f"the text to embed is {type(text).__name__}, not text", field=_where(step, "text")
        )
    embedder = env.embedder(step.step.embedder)
    vector = embedder.embed([text])[0]
    return StepResult(
        {
            "vector": [float(v) for v in vector],
            "dimension": int(vector.shape[0]),
            "embedder": embedder.name,
        },
        f"{vector.shape[0]} dimensions",
    )


def run_retrieve(step: CompiledStep, ctx: dict[str, Any], env: Environment) -> StepResult:
    spec = step.step
    query = step.expressions["query"].evaluate(ctx, where=_where(step, "query"))
    where = {
        name: step.expressions[f"filter.{name}"].evaluate(ctx, where=_where(step, f"filter.{name}"))
        for name in spec.filter
    }
    results = env.kbs.query(spec.kb, query, k=spec.k, mode=spec.mode, where=where or None)
    if spec.min_score is not None:
        results = [r for r in results if r.score >= spec.min_score]
    passages = [
        {
            "n": n,
            "text": r.text,
            "source": r.uri,
            "score": float(r.score),
            "heading": " > ".join(r.heading_path),
            "metadata": r.metadata,
        }
        for n, r in enumerate(results, start=1)
    ]
    top = passages[0]["score"] if passages else None
    return StepResult(
        {"passages": passages, "count": len(passages), "top_score": top},
        f"{len(passages)} passage(s)" + (f", top {top:.3f}" if top is not None else ""),
    )


def run_generate(step: CompiledStep, ctx: dict[str, Any], env: Environment) -> StepResult:
    spec = step.step
    values = {
        name: step.expressions[f"vars.{name}"].evaluate(ctx, where=_where(step, f"vars.{name}"))
        for name in spec.vars
    }
    messages = env.messages(spec, values, ctx)
    passages = (
        [
            Passage(n=p["n"], text=p["text"], source=p.get("source", ""), score=p.get("score", 0.0))
            for p in (ctx.get(spec.passages) or {}).get("passages", [])
        ]
        if spec.passages
        else []
    )
    attempts = [
        ProviderSpec(spec.provider, spec.model, spec.options),
        *(ProviderSpec(f.provider, f.model, f.options) for f in spec.fallbacks),
    ]
    failures: list[str] = []
    for provider_spec in attempts:
        try:
            generation = _generate_once(env, provider_spec, messages, spec, passages)
        except Exception as exc:  # a provider error or a timeout: try the next one
            failures.append(f"{provider_spec.label()}: {_reason(exc)}")
            continue
        usage = generation.usage
        outputs = {
            "text": generation.text,
            "citations": generation.citations,
            "provider": generation.provider,
            "model": generation.model,
            "finish_reason": generation.finish_reason,
            "cached": generation.cached,
            "usage": usage.to_dict(),
        }
        decision = f"answered by {provider_spec.label()}" + (
            f" after {len(failures)} failure(s)" if failures else ""
        )
        return StepResult(
            outputs,
            decision,
            tokens=usage.total_tokens,
            cost_usd=usage.cost_usd,
            attributes={
                "gen_ai.request.model": generation.model,
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
                "stoa.fallback_failures": failures or None,
            },
        )
    raise GenerationFailed(
        f"every provider failed: {'; '.join(failures)}",
        field=_where(step, "provider"),
        fix="check the providers' configuration, or add a fallback such as provider: extractive",
    )


class GenerationFailed(StoaError):
    """A generate step whose provider and every fallback failed."""

    code = "generation_failed"
    http_status = 502
    exit_code = 1


def _reason(exc: Exception) -> str:
    if isinstance(exc, concurrent.futures.TimeoutError):
        return "timed out"
    return exc.message if isinstance(exc, StoaError) else f"{type(exc).__name__}: {exc}"


def _generate_once(
    env: Environment,
    spec: ProviderSpec,
    messages: list[Message],
    step: Any,
    passages: list[Passage],
) -> Generation:
    provider = load_provider(spec, registry=env.registry, settings=env.settings)

    def call() -> Generation:
        if step.cache:
            return env.cached_generate(provider, spec, messages, step.params, passages)
        return provider.generate(messages, step.params, passages=passages)

    if step.timeout_s is None:
        return call()
    # The provider keeps running in its thread after a timeout; the run moves on.
    future = _POOL.submit(call)
    return future.result(timeout=step.timeout_s)


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="stoa-generate")


def run_respond(step: CompiledStep, ctx: dict[str, Any], env: Environment) -> StepResult:
    spec = step.step
    output: dict[str, Any] = {}
    if "template" in step.templates:
        output["text"] = render_template(
            step.templates["template"], ctx, field=_where(step, "template")
        )
    for name in spec.data:
        output[name] = step.expressions[f"data.{name}"].evaluate(
            ctx, where=_where(step, f"data.{name}")
        )
    return StepResult(output, f"responded ({spec.status})", Ending(spec.status, output))


BLOCKS: dict[str, Block] = {
    "rules": run_rules,
    "classify": run_classify,
    "embed": run_embed,
    "retrieve": run_retrieve,
    "generate": run_generate,
    "respond": run_respond,
}


class TimedCache:
    """Values kept for ``ttl_s`` seconds: aliases are re-read now and then, not per run."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        value = load()
        with self._lock:
            self._items[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def messages_from(
    system: str | None, user: str | None, fallback: Mapping[str, Any]
) -> list[Message]:
    """The chat turns of a generate step: the rendered prompts, or the input's text."""
    turns = []
    if system:
        turns.append(Message(role="system", content=system))
    if user is None:
        text = fallback.get("text") if isinstance(fallback, Mapping) else None
        if not isinstance(text, str):
            raise InvalidInputError(
                "a generate step without a prompt sends input.text, and the input has none",
                field="input.text",
                fix="give the input a text field, or name a prompt in the step",
            )
        user = text
    turns.append(Message(role="user", content=user))
    return turns
