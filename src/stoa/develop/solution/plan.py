"""A spec compiled for running: expressions compiled, templates parsed, names checked.

Compiling is what registration checks and what a run reuses. Every CEL expression is
compiled against the names it may read at its step (``input``, ``tags`` and the
steps before it); every Jinja template is parsed and walked for sandbox escapes; a
respond step's template may read the same names. References to the registry (models,
prompts, knowledge bases, solutions) are checked separately, in ``references.py``,
because they depend on what is stored, not on the text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template
from pydantic import ValidationError

from stoa.core.errors import InvalidInputError, StoaError
from stoa.develop.solution.expr import Expression, compile_expression
from stoa.develop.solution.spec import (
    GenerateStep,
    RespondStep,
    RulesStep,
    Spec,
    SpecError,
    dotted,
    from_validation,
    line_of,
    parse_spec,
)
from stoa.govern.prompts import compile_template, template_variables


@dataclass
class CompiledStep:
    index: int
    step: Any  # one of the spec's step models
    when: Expression | None
    expressions: dict[str, Expression] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.step.id

    @property
    def kind(self) -> str:
        return self.step.kind


@dataclass
class Plan:
    spec: Spec
    steps: list[CompiledStep]
    lines: dict[tuple[Any, ...], int]
    positions: dict[str, int]


def compile_plan(
    text: str | bytes, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Plan:
    """Parse, apply ``overrides`` (step id → changed fields), validate and compile."""
    spec, lines = parse_spec(text)
    if overrides:
        spec = apply_overrides(spec, overrides)
    steps = [_compile_step(i, step, spec, lines) for i, step in enumerate(spec.steps)]
    return Plan(spec, steps, lines, {s.id: s.index for s in steps})


def apply_overrides(spec: Spec, overrides: Mapping[str, Mapping[str, Any]]) -> Spec:
    """The spec with some steps' fields replaced, validated again as a whole."""
    if not isinstance(overrides, Mapping):
        raise SpecError(
            "overrides must map step ids to changed fields",
            line=None,
            field="overrides",
            fix='write {"answer": {"params": {"max_tokens": 64}}}',
        )
    data = spec.model_dump(mode="json", exclude_unset=True)
    ids = [s["id"] for s in data["steps"]]
    for step_id, changes in overrides.items():
        if step_id not in ids:
            raise SpecError(
                f"overrides name step {step_id!r}, which the solution lacks",
                line=None,
                field=f"overrides.{step_id}",
                fix=f"step ids: {', '.join(ids)}",
            )
        if not isinstance(changes, Mapping) or {"id", "kind"} & set(changes):
            raise SpecError(
                "an override changes fields other than id and kind",
                line=None,
                field=f"overrides.{step_id}",
                fix='give the fields to change, e.g. {"k": 8}',
            )
        data["steps"][ids.index(step_id)].update(changes)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        error = from_validation(exc, data, {})
        raise SpecError(
            f"the overrides make the spec invalid: {error.field}: {error.message}",
            line=None,
            field="overrides",
            fix=error.fix,
        ) from None


def _compile_step(i: int, step: Any, spec: Spec, lines: dict[tuple[Any, ...], int]) -> CompiledStep:
    known = {"input", "tags", *(s.id for s in spec.steps[:i])}

    @contextlib.contextmanager
    def located(*where: Any) -> Iterator[str]:
        """A check's error, given the step and the YAML line it is about."""
        path = ("steps", i, *where)
        try:
            yield dotted(path)
        except SpecError:
            raise
        except StoaError as exc:
            raise SpecError(f"step {step.id!r}: {exc.message}", line=line_of(lines, path),
                            field=dotted(path), fix=exc.fix) from None  # fmt: skip

    def expr(source: str, *where: Any) -> Expression:
        with located(*where) as field:
            return compile_expression(source, where=field, known=known)

    def template(source: str, *where: Any) -> Template:
        with located(*where) as field:
            compiled = compile_template(source, field=field)
            unknown = sorted(set(template_variables(source)) - known)
            if unknown:  # it would fail on every run: say so now
                raise InvalidInputError(
                    f"the template reads {', '.join(unknown)}, which is neither the input "
                    "nor a step before it",
                    field=field,
                    fix=f"it can read {', '.join(sorted(known))}",
                )
            return compiled

    compiled = CompiledStep(i, step, expr(step.when, "when") if step.when else None)
    if isinstance(step, RulesStep):
        for j, rule in enumerate(step.rules):
            compiled.expressions[f"rules.{j}"] = expr(rule.when, "rules", j, "when")
            for action in ("respond", "reject"):
                text = getattr(rule, action)
                if text is not None:
                    compiled.templates[f"rules.{j}"] = template(text, "rules", j, action)
    elif isinstance(step, RespondStep):
        if step.template is not None:
            compiled.templates["template"] = template(step.template, "template")
        for name, source in step.data.items():
            compiled.expressions[f"data.{name}"] = expr(source, "data", name)
    elif isinstance(step, GenerateStep):
        for name, source in step.vars.items():
            compiled.expressions[f"vars.{name}"] = expr(source, "vars", name)
    for name in ("text", "query", "input"):
        if isinstance(getattr(step, name, None), str):
            compiled.expressions[name] = expr(getattr(step, name), name)
    for name, source in getattr(step, "filter", {}).items():
        compiled.expressions[f"filter.{name}"] = expr(source, "filter", name)
    return compiled


def overrides_key(overrides: Mapping[str, Any] | None) -> str:
    return json.dumps(overrides or {}, sort_keys=True, default=str)
