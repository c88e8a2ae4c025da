"""The solution spec: a YAML file of ordered steps, validated by pydantic models.

A solution runs its ``steps`` in order over a context that holds ``input`` (the
request), ``tags`` (what rules tagged) and each finished step's outputs under the
step's id. A step runs when its ``when`` (CEL) is true; a rule or a confidence
threshold may ``route`` forward to a later step, skipping the ones between; a
``respond`` step, a rule's ``respond`` or ``reject`` end the run with a response.
Routes only go forward, so a run always ends: a backward route is refused at
registration. ``stoa solutions schema`` prints the JSON Schema these models publish.

Errors name the YAML line: the loader keeps each node's line, and a pydantic error's
location is looked up in that map.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stoa.core.errors import InvalidInputError
from stoa.develop.llm.provider import GenerationParams

MAX_SPEC_BYTES = 1 << 20
MAX_STEPS = 200
_ID = r"^[a-z][a-z0-9_]{0,62}$"
_ID_RE = re.compile(_ID)


class SpecError(InvalidInputError):
    """A spec that cannot be registered; ``line`` is where in the YAML it went wrong."""

    def __init__(self, message: str, *, line: int | None, field: str | None, fix: str | None):
        where = f"line {line}: " if line else ""
        super().__init__(where + message, field=field, fix=fix)
        self.line = line


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- rules -------------------------------------------------------------------------


class Rule(_Strict):
    """``when`` matches, then exactly one action: respond, reject, route or tag."""

    when: str = Field(description="CEL condition over the context.")
    respond: str | None = Field(default=None, description="End the run with this answer (Jinja).")
    reject: str | None = Field(
        default=None, description="End the run, refused for this reason (Jinja)."
    )
    route: str | None = Field(default=None, description="Jump forward to this step id.")
    tag: str | None = Field(default=None, description="Add this tag and go on.")

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        actions = [a for a in ("respond", "reject", "route", "tag") if getattr(self, a) is not None]
        if len(actions) != 1:
            raise ValueError(
                "a rule takes exactly one action of respond, reject, route or tag"
                + (f", not {' and '.join(actions)}" if actions else "")
            )
        return self

    @property
    def action(self) -> str:
        return next(
            a for a in ("respond", "reject", "route", "tag") if getattr(self, a) is not None
        )


class _Step(_Strict):
    id: str = Field(pattern=_ID, description="Names the step's outputs in the context.")
    when: str | None = Field(default=None, description="CEL: run the step only when true.")
    description: str = ""


class RulesStep(_Step):
    kind: Literal["rules"]
    rules: list[Rule] = Field(min_length=1, max_length=500)


# --- classify ------------------------------------------------------------------------


class Threshold(_Strict):
    below: float = Field(gt=0, le=1, description="Applies when the top probability is under this.")
    route: str | None = None
    tag: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Threshold:
        if (self.route is None) == (self.tag is None):
            raise ValueError("a threshold takes exactly one of route or tag")
        return self


class ClassifyStep(_Step):
    kind: Literal["classify"]
    model: str = Field(description="A registered model reference, e.g. tickets@champion.")
    text: str = Field(default="input.text", description="CEL: the value the model reads.")
    thresholds: list[Threshold] = Field(default_factory=list, max_length=20)


# --- embed, retrieve -----------------------------------------------------------------


class EmbedStep(_Step):
    kind: Literal["embed"]
    embedder: str = Field(default="minilm", description="minilm, or a name in STOA_EMBEDDERS.")
    text: str = "input.text"


class RetrieveStep(_Step):
    kind: Literal["retrieve"]
    kb: str = Field(description="A knowledge base name.")
    query: str = Field(default="input.text", description="CEL: the query text.")
    k: int = Field(default=4, ge=1, le=100)
    mode: Literal["vector", "lexical", "hybrid"] = "hybrid"
    filter: dict[str, str] = Field(
        default_factory=dict,
        description="Metadata filters: field → CEL expression giving the value to match.",
    )
    min_score: float | None = Field(default=None, description="Drop passages scored lower.")


# --- generate ------------------------------------------------------------------------


class Fallback(_Strict):
    provider: str
    model: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


class GenerateStep(_Step):
    kind: Literal["generate"]
    provider: str = Field(default="local", description="local, extractive, or a configured name.")
    model: str = Field(default="", description="A registered model for local; a served name else.")
    options: dict[str, Any] = Field(default_factory=dict, description="Provider options.")
    prompt: str | None = Field(default=None, description="A registered prompt, e.g. answer@2.")
    system: str | None = Field(default=None, description="A registered prompt for the system turn.")
    vars: dict[str, str] = Field(
        default_factory=dict, description="Prompt variable → CEL expression giving its value."
    )
    passages: str | None = Field(
        default=None, description="The id of a retrieve step whose passages the answer may cite."
    )
    params: GenerationParams = Field(default_factory=GenerationParams)
    fallbacks: list[Fallback] = Field(default_factory=list, max_length=5)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    cache: bool = Field(default=False, description="Reuse answers to identical requests.")


# --- respond, call ---------------------------------------------------------------------


class RespondStep(_Step):
    kind: Literal["respond"]
    template: str | None = Field(default=None, description="Jinja over the context: the answer.")
    data: dict[str, str] = Field(
        default_factory=dict, description="Extra output fields: name → CEL expression."
    )
    status: str = Field(default="ok", pattern=r"^[a-z][a-z0-9_]{0,31}$")

    @model_validator(mode="after")
    def _something(self) -> RespondStep:
        if self.template is None and not self.data:
            raise ValueError("a respond step needs a template, data, or both")
        return self


class CallStep(_Step):
    kind: Literal["call"]
    solution: str = Field(description="A registered solution reference, e.g. triage@2.")
    input: str = Field(default="input", description="CEL: the input handed to it.")


Step = Annotated[
    RulesStep | ClassifyStep | EmbedStep | RetrieveStep | GenerateStep | RespondStep | CallStep,
    Field(discriminator="kind"),
]
STEP_KINDS = ("rules", "classify", "embed", "retrieve", "generate", "respond", "call")


class Spec(_Strict):
    """A solution: its name, what it is for, and its steps."""

    name: str | None = Field(default=None, description="The solution's name in the registry.")
    description: str = ""
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _ids_and_routes(self) -> Spec:
        order: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            if step.id in order:
                raise _StepProblem(i, "id", f"step id {step.id!r} is used twice")
            order[step.id] = i
        for i, step in enumerate(self.steps):
            for where, target in _routes(step):
                if target not in order:
                    close = difflib.get_close_matches(target, list(order), n=1)
                    raise _StepProblem(
                        i,
                        where,
                        f"routes to {target!r}, which is no step id"
                        + (f"; did you mean {close[0]!r}?" if close else ""),
                    )
                if order[target] <= i:
                    raise _StepProblem(
                        i,
                        where,
                        f"routes back to {target!r}, which runs before it: routes only jump "
                        "forward, so that a run always ends (a backward route is a cycle)",
                    )
            if isinstance(step, GenerateStep) and step.passages is not None:
                source = order.get(step.passages)
                if source is None or source >= i or self.steps[source].kind != "retrieve":
                    raise _StepProblem(
                        i, "passages", f"{step.passages!r} is not a retrieve step before this one"
                    )
        return self


def _routes(step: Any) -> list[tuple[str, str]]:
    if isinstance(step, RulesStep):
        return [(f"rules.{j}.route", r.route) for j, r in enumerate(step.rules) if r.route]
    if isinstance(step, ClassifyStep):
        return [
            (f"thresholds.{j}.route", t.route) for j, t in enumerate(step.thresholds) if t.route
        ]
    return []


class _StepProblem(ValueError):
    """A cross-field problem in one step, with where it is, for the line lookup."""

    def __init__(self, index: int, where: str, message: str):
        super().__init__(message)
        self.index, self.where = index, where


# --- parsing -------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _lines_of(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            out[child] = key.start_mark.line + 1
            _lines_of(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines_of(item, (*path, i), out)


def parse_spec(text: str | bytes) -> tuple[Spec, dict[tuple[Any, ...], int]]:
    """The validated spec and its line map; every problem is a ``SpecError`` with a line."""
    if isinstance(text, bytes):
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError("the spec is over 1 MiB", line=None, field="spec", fix="split it")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError(
                "the spec is not UTF-8 text", line=None, field="spec", fix="save the file as UTF-8"
            ) from None
    if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise SpecError("the spec is over 1 MiB", line=None, field="spec", fix="split it")
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            f"the YAML does not parse: {problem}",
            line=mark.line + 1 if mark else None,
            field="spec",
            fix="check the indentation and quoting on that line",
        ) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines_of(node, (), lines)
    if not isinstance(data, Mapping):
        raise SpecError(
            "the spec must be a mapping with a steps list",
            line=1,
            field="spec",
            fix="start with `steps:` followed by a list of steps",
        )
    _precheck_kinds(data, lines)
    try:
        return Spec.model_validate(data), lines
    except ValidationError as exc:
        raise from_validation(exc, data, lines) from None


def _precheck_kinds(data: Mapping[str, Any], lines: dict[tuple[Any, ...], int]) -> None:
    """A missing or misspelt ``kind`` is the commonest mistake; say it plainly."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping):
            raise SpecError(
                f"step {i + 1} is not a mapping",
                line=lines.get(("steps", i)),
                field=f"steps[{i}]",
                fix="write each step as `- id: …` followed by `kind: …` and its fields",
            )
        kind = step.get("kind")
        label = f"step {step.get('id', i + 1)!r}"
        if kind is None:
            raise SpecError(
                f"{label} has no kind",
                line=lines.get(("steps", i)),
                field=f"steps[{i}].kind",
                fix=f"add `kind:` with one of {', '.join(STEP_KINDS)}",
            )
        if kind not in STEP_KINDS:
            close = difflib.get_close_matches(str(kind), STEP_KINDS, n=1)
            raise SpecError(
                f"{label} has unknown kind {kind!r}",
                line=lines.get(("steps", i, "kind")),
                field=f"steps[{i}].kind",
                fix=(f"did you mean {close[0]!r}? " if close else "")
                + f"kinds: {', '.join(STEP_KINDS)}",
            )


def from_validation(
    exc: ValidationError, data: Mapping[str, Any], lines: dict[tuple[Any, ...], int]
) -> SpecError:
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _StepProblem):
        loc = ("steps", cause.index, *_split_where(cause.where))
        message = str(cause)
    else:
        # A discriminated union puts the kind in the location: steps.2.generate.model.
        loc = tuple(p for i, p in enumerate(loc) if not (i == 2 and p in STEP_KINDS))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        elif error["type"] == "missing":
            message = f"the required field {loc[-1]!r} is missing"
    field = dotted(loc)
    label = _step_label(data, loc)
    return SpecError(
        f"{label}{message}",
        line=line_of(lines, loc),
        field=field or "spec",
        fix=_fix_for(error, loc),
    )


def _split_where(where: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in where.split("."))


def line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _step_label(data: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        steps = data.get("steps") or []
        if loc[1] < len(steps) and isinstance(steps[loc[1]], Mapping) and "id" in steps[loc[1]]:
            return f"step {steps[loc[1]]['id']!r}: "
    return ""


def _fix_for(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str | None:
    if isinstance(error.get("ctx", {}).get("error"), _StepProblem):
        return "route to a later step id, or move the step"
    if error["type"] == "string_type":
        return "quote the value: YAML reads yes, no, on, off, true, false and numbers as non-text"
    if error["type"] == "extra_forbidden" and len(loc) >= 3 and loc[0] == "steps":
        return "remove it, or check its spelling against `stoa solutions schema`"
    if loc and loc[-1] == "id":
        return "ids are lower-case letters, digits and _, starting with a letter"
    return "see `stoa solutions schema` for the fields each kind takes"


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, for editors and CI validation of solution files."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Stoa solution"
    return schema
