"""Register solution versions: the spec validated and every reference resolved first.

A solution is a registry kind like models and prompts: named, versioned, immutable,
with aliases. Registering checks what the text alone cannot: each model exists and
the gate allowed it (a blocked or pending model is an error now, not at run time),
each prompt version exists and receives every variable it declares, each knowledge
base, provider and embedder is known, and ``call`` steps form no cycle. Aliases in
references are kept as written, so moving ``champion`` changes what runs; the versions
they pointed at when the solution was registered are recorded for lineage.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from stoa.core.blobs import StoredArtifact
from stoa.core.errors import InvalidInputError, StoaError
from stoa.core.settings import Settings
from stoa.develop.llm.providers import provider_kind
from stoa.develop.solution.plan import Plan, compile_plan
from stoa.develop.solution.spec import (
    CallStep,
    ClassifyStep,
    EmbedStep,
    GenerateStep,
    RetrieveStep,
    SpecError,
    dotted,
    line_of,
)
from stoa.govern.models import ensure_allowed, ensure_loadable
from stoa.govern.registry import Registry, check_version_input
from stoa.govern.types import VersionInfo

LLM_FLAVOR = "causal-lm"


def register_solution(
    registry: Registry,
    kbs: Any,
    settings: Settings,
    text: str | bytes,
    *,
    actor: str,
    name: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> tuple[VersionInfo, list[str]]:
    """A new version of a solution, and the warnings worth reading (unused variables)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    plan = compile_plan(data)
    name = _name(plan, name)
    check_version_input(name, tags, None, description or plan.spec.description)
    warnings: list[str] = []
    resolved: dict[str, str] = {}
    for i, step in enumerate(plan.spec.steps):
        for where, check in _checks(step):
            try:
                found = check(registry, kbs, settings, warnings)
            except StoaError as exc:
                path = ("steps", i, *where)
                raise SpecError(
                    f"step {step.id!r}: {exc.message}",
                    line=line_of(plan.lines, path),
                    field=dotted(path),
                    fix=exc.fix,
                ) from None
            resolved.update(found or {})
    _check_calls(registry, name, plan)
    sha = registry.blobs.put_bytes(data)
    info = registry.add_version(
        "solution",
        name,
        StoredArtifact(sha, "file", len(data)),
        status="allowed",
        actor=actor,
        fmt="yaml",
        description=description or plan.spec.description,
        tags=tags,
        spec={
            "steps": [{"id": s.id, "kind": s.kind} for s in plan.spec.steps],
            "resolved": resolved,
            "warnings": warnings,
        },
    )
    return info, warnings


def _name(plan: Plan, name: str | None) -> str:
    if name and plan.spec.name and name != plan.spec.name:
        raise InvalidInputError(
            f"the spec names itself {plan.spec.name!r}, not {name!r}",
            field="name",
            fix="drop --name, or change the spec's name",
        )
    chosen = name or plan.spec.name
    if not chosen:
        raise InvalidInputError(
            "the solution has no name", field="name", fix="add `name:` to the spec or pass --name"
        )
    return chosen


Check = Any  # (registry, kbs, settings, warnings) -> dict of resolved references


def _checks(step: Any) -> Iterator[tuple[tuple[Any, ...], Check]]:
    if isinstance(step, ClassifyStep):
        yield ("model",), lambda r, k, s, w: _model(r, step.model, flavor=None)
    elif isinstance(step, RetrieveStep):
        yield ("kb",), lambda r, k, s, w: {f"kb:{step.kb}": k.get(step.kb).name}
    elif isinstance(step, EmbedStep):
        yield ("embedder",), lambda r, k, s, w: _embedder(step.embedder, s)
    elif isinstance(step, GenerateStep):
        yield ("provider",), lambda r, k, s, w: _provider(r, s, step.provider, step.model)
        for j, fb in enumerate(step.fallbacks):
            yield ("fallbacks", j), lambda r, k, s, w, fb=fb: _provider(r, s, fb.provider, fb.model)
        for field in ("prompt", "system"):
            if getattr(step, field):
                yield (field,), lambda r, k, s, w, field=field: _prompt(r, step, field, w)
    elif isinstance(step, CallStep):
        yield (
            ("solution",),
            lambda r, k, s, w: {step.solution: r.get("solution", step.solution).ref},
        )


def _model(registry: Registry, ref: str, *, flavor: str | None) -> dict[str, str]:
    info = registry.get("model", ref)
    ensure_allowed(info)
    ensure_loadable(info)
    if flavor is not None and info.flavor != flavor:
        raise InvalidInputError(
            f"{info.ref} is a {info.flavor} model, not a {flavor} one a provider can chat with",
            field="model",
            fix="register a GGUF or Hugging Face causal-LM folder and name it here",
        )
    return {ref: info.ref}


def _provider(registry: Registry, settings: Settings, provider: str, model: str) -> dict[str, str]:
    if provider_kind(provider, settings) == "local":
        if not model:
            raise InvalidInputError(
                "the local provider needs a registered model",
                field="model",
                fix="add model: smollm2@champion (any causal-lm model)",
            )
        return _model(registry, model, flavor=LLM_FLAVOR)
    return {}


def _embedder(name: str, settings: Settings) -> dict[str, str]:
    from stoa.develop.rag.embed import parse_embedder

    parse_embedder(name, configured=settings.embedders)
    return {}


def _prompt(
    registry: Registry, step: GenerateStep, field: str, warnings: list[str]
) -> dict[str, str]:
    ref = getattr(step, field)
    info = registry.get("prompt", ref)
    declared = set(info.spec.get("variables", []))
    missing = sorted(declared - set(step.vars))
    if missing:
        raise InvalidInputError(
            f"{info.ref} needs the variable(s) {', '.join(missing)}, which vars does not give",
            field="vars",
            fix=f"add them under vars, e.g. {missing[0]}: input.text",
        )
    unused = sorted(set(step.vars) - declared - _other_prompt_vars(registry, step, field))
    if unused:
        warnings.append(f"step {step.id!r}: vars {', '.join(unused)} are not used by {info.ref}")
    return {ref: info.ref}


def _other_prompt_vars(registry: Registry, step: GenerateStep, field: str) -> set[str]:
    other = step.system if field == "prompt" else step.prompt
    return set(registry.get("prompt", other).spec.get("variables", [])) if other else set()


def _check_calls(registry: Registry, name: str, plan: Plan) -> None:
    """``call`` steps must not lead back to this solution, however deep."""
    stack = [(s.solution, [name, s.solution]) for s in plan.spec.steps if isinstance(s, CallStep)]
    seen: set[str] = set()
    while stack:
        ref, chain = stack.pop()
        info = registry.get("solution", ref)
        if info.name == name:
            raise InvalidInputError(
                f"call steps form a cycle: {' → '.join(chain)}",
                field="steps.solution",
                fix="a solution may not call itself, directly or through others",
            )
        if info.ref in seen:
            continue
        seen.add(info.ref)
        callee = compile_plan(registry.blobs.read_bytes(info.sha256))
        stack += [
            (s.solution, [*chain, s.solution]) for s in callee.spec.steps if isinstance(s, CallStep)
        ]


def spec_text(registry: Registry, ref: str) -> str:
    info = registry.get("solution", ref)
    return registry.blobs.read_bytes(info.sha256).decode("utf-8")


def diff_versions(registry: Registry, old: str, new: str) -> str:
    """A unified diff of two versions' YAML, for review before moving an alias."""
    a, b = registry.get("solution", old), registry.get("solution", new)
    return "".join(
        difflib.unified_diff(
            spec_text(registry, a.ref).splitlines(keepends=True),
            spec_text(registry, b.ref).splitlines(keepends=True),
            fromfile=a.ref,
            tofile=b.ref,
        )
    )
