"""Run a registered solution: steps in order over a context, one span per step.

The context starts as ``{"input": …, "tags": []}``; each step that runs adds its
outputs under its id, and a skipped step adds nothing (read optional steps with
``has(step.field)``). A run ends at the first response (a respond step, a rule's
respond or reject), or after the last step with that step's outputs as the answer.

Everything slow to load is loaded once per process and shared by every run: compiled
plans (by version hash and overrides), models (by artifact hash), providers and
embedders (by what they load). Registry references are resolved at most every
``RESOLVE_TTL_S`` seconds, so a moved alias takes effect within that time without a
database round trip on every request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stoa.core.errors import InvalidInputError, StoaError
from stoa.core.settings import Settings
from stoa.develop.llm.provider import Generation, GenerationParams, Message, Passage, Provider
from stoa.develop.llm.providers import ProviderSpec
from stoa.develop.solution import trace as tracing
from stoa.develop.solution.blocks import BLOCKS, StepResult, TimedCache, messages_from
from stoa.develop.solution.plan import Plan, compile_plan, overrides_key
from stoa.govern import prompts
from stoa.govern.models import ensure_allowed, load_model
from stoa.govern.registry import Registry

RESOLVE_TTL_S = 2.0
#: How deep ``call`` steps may nest; registration refuses cycles, this bounds the rest.
MAX_DEPTH = 8


@dataclass
class RunResult:
    solution: str
    status: str
    output: dict[str, Any]
    ended_by: str | None
    path: list[str]
    tags: list[str]
    latency_ms: float
    tokens: int
    cost_usd: float
    trace: tracing.Trace
    error: dict[str, Any] | None = None
    steps: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "solution": self.solution,
            "status": self.status,
            "output": self.output,
            "ended_by": self.ended_by,
            "path": self.path,
            "tags": self.tags,
            "latency_ms": round(self.latency_ms, 3),
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "error": self.error,
            "trace": self.trace.to_dict(),
        }


class Environment:
    """The stores a run reads and the per-process caches it fills."""

    def __init__(self, registry: Registry, kbs: Any, settings: Settings, cache: Any = None):
        self.registry = registry
        self.kbs = kbs
        self.settings = settings
        self.generation_cache = cache
        self._refs = TimedCache(RESOLVE_TTL_S)
        self._depth = 0

    # -- registry -----------------------------------------------------------------

    def version(self, kind: str, ref: str) -> Any:
        return self._refs.get((kind, ref), lambda: self.registry.get(kind, ref))

    def model(self, ref: str) -> tuple[Any, str]:
        info = self.version("model", ref)
        ensure_allowed(info)
        load = lambda: self._bound(load_model(self.registry, info.ref))  # noqa: E731
        return _shared(("model", info.sha256), load), info.ref

    def _bound(self, model: Any) -> Any:
        """A model that calls a provider (an ``llm_prompt`` candidate) gets it from here."""
        if callable(getattr(model, "bind", None)):
            from stoa.develop.llm.providers import load_provider

            registry, settings = self.registry, self.settings
            model.bind(lambda spec: load_provider(spec, registry=registry, settings=settings))
        return model

    def plan(self, ref: str, overrides: Mapping[str, Any] | None) -> tuple[Plan, str]:
        info = self.version("solution", ref)
        key = ("plan", info.sha256, overrides_key(overrides))
        text = lambda: self.registry.blobs.read_bytes(info.sha256)  # noqa: E731
        return _shared(key, lambda: compile_plan(text(), overrides)), info.ref

    def prompt(self, ref: str) -> Any:
        info = self.version("prompt", ref)

        def load() -> Any:
            source = self.registry.blobs.read_bytes(info.sha256).decode("utf-8")
            return prompts.compile_template(source, field=f"prompt {info.ref}")

        return _shared(("prompt", info.sha256), load)

    def embedder(self, name: str) -> Any:
        from stoa.develop.rag.embed import load_embedder, parse_embedder

        spec = parse_embedder(name, configured=self.settings.embedders)
        return load_embedder(spec)

    # -- generation ---------------------------------------------------------------

    def messages(
        self, step: Any, values: Mapping[str, Any], ctx: Mapping[str, Any]
    ) -> list[Message]:
        system = self._render(step.system, values) if step.system else None
        user = self._render(step.prompt, values) if step.prompt else None
        return messages_from(system, user, ctx.get("input") or {})

    def _render(self, ref: str, values: Mapping[str, Any]) -> str:
        return prompts.render_template(self.prompt(ref), values, field=f"prompt {ref}")

    def cached_generate(
        self,
        provider: Provider,
        spec: ProviderSpec,
        messages: list[Message],
        params: GenerationParams,
        passages: list[Passage],
    ) -> Generation:
        from stoa.develop.llm.cache import cached_generate

        if self.generation_cache is None:
            return provider.generate(messages, params, passages=passages)
        identity = spec.key()
        if spec.provider == "local" and spec.model:
            identity += "@" + self.version("model", spec.model).sha256
        return cached_generate(
            provider,
            messages,
            params,
            passages=passages,
            cache=self.generation_cache,
            identity=identity,
        )

    def forget(self) -> None:
        """Re-read every reference on the next run (after moving an alias, in tests)."""
        self._refs.clear()


_SHARED: dict[Any, Any] = {}


def _shared(key: Any, load: Any) -> Any:
    """Per-process: two environments on the same stores share loaded models and plans."""
    if key not in _SHARED:
        _SHARED[key] = load()
    return _SHARED[key]


def as_input(value: Any) -> dict[str, Any]:
    """The request input: a JSON object, or a bare string taken as ``{"text": …}``."""
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise InvalidInputError(
        f"the input is {type(value).__name__}; it must be a JSON object or a string",
        field="input",
        fix='pass {"text": "…"} or a plain string',
    )


def run_solution(
    env: Environment,
    ref: str,
    value: Any,
    *,
    overrides: Mapping[str, Any] | None = None,
    trace: tracing.Trace | None = None,
    parent: tracing.Span | None = None,
) -> RunResult:
    """Run ``ref`` on one input. Step failures come back as ``status: "error"`` with the
    trace up to the failure; only a bad reference or a bad input raises."""
    started = time.perf_counter()
    plan, version = env.plan(ref, overrides)
    own_trace = trace is None
    trace = trace or tracing.Trace()
    root = trace.start(f"solution {version}", parent, **{"stoa.solution": version})
    ctx: dict[str, Any] = {"input": as_input(value), "tags": []}
    path: list[str] = []
    tokens, cost = 0, 0.0
    status, output, ended_by, error = "ok", {}, None, None
    skip_to: int | None = None
    last: StepResult | None = None
    for compiled in plan.steps:
        if skip_to is not None and compiled.index < skip_to:
            continue
        skip_to = None
        if compiled.when is not None:
            try:
                runs = compiled.when.truth(ctx, where=f"steps.{compiled.id}.when")
            except StoaError as exc:
                status, error = "error", {"step": compiled.id, "message": str(exc)}
                break
            if not runs:
                continue
        span = trace.start(
            f"{compiled.kind} {compiled.id}",
            root,
            **{"stoa.step.kind": compiled.kind, "stoa.step.id": compiled.id},
        )
        try:
            if compiled.kind == "call":
                result = _run_call(compiled, ctx, env, trace, span)
            else:
                result = BLOCKS[compiled.kind](compiled, ctx, env)
        except Exception as exc:  # one step's failure ends the run, with its trace
            message = str(exc) if isinstance(exc, StoaError) else f"{type(exc).__name__}: {exc}"
            trace.end(span, error=message)
            status, error = "error", {"step": compiled.id, "message": message}
            break
        path.append(compiled.id)
        ctx[compiled.id] = result.outputs
        tokens += result.tokens
        cost += result.cost_usd
        trace.end(
            span,
            **{
                "stoa.decision": result.decision,
                "stoa.outputs": result.outputs,
                "stoa.tokens": result.tokens or None,
                "stoa.cost_usd": result.cost_usd or None,
                **result.attributes,
            },
        )
        last = result
        if result.ending is not None:
            status, output, ended_by = result.ending.status, result.ending.output, compiled.id
            break
        if result.route is not None:
            skip_to = plan.positions[result.route]
    else:
        output = dict(last.outputs) if last is not None else {}
    latency = (time.perf_counter() - started) * 1000
    trace.end(
        root,
        error=error["message"] if error else None,
        **{"stoa.status": status, "stoa.path": path, "stoa.tokens": tokens},
    )
    if own_trace:
        tracing.export(trace)
    return RunResult(
        version,
        status,
        output,
        ended_by,
        path,
        list(ctx["tags"]),
        latency,
        tokens,
        cost,
        trace,
        error,
        steps={k: v for k, v in ctx.items() if k not in ("input", "tags")},
    )


def _run_call(
    compiled: Any, ctx: dict[str, Any], env: Environment, trace: tracing.Trace, span: tracing.Span
) -> StepResult:
    """A nested run whose spans hang under this step's span, in the same trace."""
    value = compiled.expressions["input"].evaluate(ctx, where=f"steps.{compiled.id}.input")
    if env._depth >= MAX_DEPTH:
        raise InvalidInputError(f"call steps nest deeper than {MAX_DEPTH}", field="call")
    env._depth += 1
    try:
        result = run_solution(env, compiled.step.solution, value, trace=trace, parent=span)
    finally:
        env._depth -= 1
    if result.status == "error":
        raise InvalidInputError(
            f"{result.solution} failed: {result.error['message']}",  # type: ignore[index]
            field=f"steps.{compiled.id}",
        )
    outputs = {
        "output": result.output,
        "status": result.status,
        "solution": result.solution,
        "path": result.path,
    }
    return StepResult(
        outputs,
        f"{result.solution} → {result.status}",
        tokens=result.tokens,
        cost_usd=result.cost_usd,
    )
