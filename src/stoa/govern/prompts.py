"""Prompt versions: Jinja2 templates checked and rendered in a sandbox, never with eval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from stoa.core.blobs import StoredArtifact
from stoa.core.errors import InvalidInputError
from stoa.govern.registry import Registry, check_version_input
from stoa.govern.types import VersionInfo

MAX_TEMPLATE_BYTES = 1 << 20
#: Rendering may not build anything bigger than this many items or digits.
MAX_RENDER_SIZE = 1_000_000


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on ``*`` and ``**``, which it leaves unbounded:
    ``{{ 9**9**9 }}`` or ``{{ "x" * 10**10 }}`` would otherwise hang or exhaust a worker."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        numbers = isinstance(left, int | float) and isinstance(right, int | float)
        if (
            operator == "**"
            and numbers
            and abs(right) * max(1.0, math.log10(abs(left) or 1)) > MAX_RENDER_SIZE
        ):
            raise SecurityError("the power is too large to compute")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_RENDER_SIZE:
                    raise SecurityError("the repetition is too large to build")
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedSandbox(undefined=StrictUndefined, autoescape=False)


def template_variables(template: str) -> list[str]:
    """The variables a template reads; a syntax error names its line."""
    try:
        return sorted(meta.find_undeclared_variables(_ENV.parse(template)))
    except TemplateSyntaxError as exc:
        raise InvalidInputError(
            f"template syntax error on line {exc.lineno}: {exc.message}",
            field="template",
            fix="fix the Jinja2 syntax",
        ) from None


def compile_template(template: str, *, field: str = "template") -> Template:
    """A template parsed for the sandbox; a syntax error or a reach for a private or
    introspection attribute (``__class__``, ``mro``…) is refused before anything runs."""
    from stoa.govern.scan.gguf_scan import static_hits

    try:
        ast = _ENV.parse(template)
    except TemplateSyntaxError as exc:
        raise InvalidInputError(
            f"template syntax error on line {exc.lineno}: {exc.message}",
            field=field,
            fix="fix the Jinja2 syntax",
        ) from None
    hits = sorted(set(static_hits(ast)))
    if hits:
        line, what = hits[0]
        raise InvalidInputError(
            f"the template reaches for {what} on its line {line}, which the sandbox forbids",
            field=field,
            fix="read only the context's values, e.g. {{ answer.text }}",
        )
    return _ENV.from_string(ast)


def render_template(
    template: Template,
    values: Mapping[str, Any],
    *,
    field: str = "template",
    values_field: str | None = None,
) -> str:
    """Render a compiled template; its failures are input errors, never tracebacks. A
    sandbox refusal names ``field``; a runtime error names ``values_field``, the values
    that caused it, when it is given."""
    try:
        return template.render(**values)
    except (SecurityError, UndefinedError) as exc:
        raise InvalidInputError(f"template refused to render: {exc}", field=field) from None
    except Exception as exc:  # a template's own runtime error: bad types, division by zero
        raise InvalidInputError(
            f"template failed to render: {type(exc).__name__}: {exc}",
            field=values_field or field,
            fix="check the values passed for the template's variables",
        ) from None


def register_prompt(
    registry: Registry,
    name: str,
    template: str,
    *,
    actor: str,
    variables: Iterable[str] | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> VersionInfo:
    """Register a template; declared variables must match the ones it uses."""
    if not isinstance(template, str) or not template.strip():
        raise InvalidInputError("is empty", field="template", fix="give the template text")
    data = template.encode("utf-8")
    if len(data) > MAX_TEMPLATE_BYTES or "\x00" in template:
        raise InvalidInputError("must be text under 1 MiB without NUL bytes", field="template")
    check_version_input(name, tags, metadata, description)
    found = template_variables(template)
    if variables is not None:
        declared = sorted(set(variables))
        missing, extra = sorted(set(found) - set(declared)), sorted(set(declared) - set(found))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"used but not declared: {', '.join(missing)}")
            if extra:
                parts.append(f"declared but not used: {', '.join(extra)}")
            raise InvalidInputError(
                "; ".join(parts), field="variables", fix="make the declared list match the template"
            )
    sha = registry.blobs.put_bytes(data)
    return registry.add_version(
        "prompt",
        name,
        StoredArtifact(sha, "file", len(data)),
        status="allowed",
        actor=actor,
        fmt="jinja2",
        description=description,
        tags=tags,
        metadata=metadata,
        spec={"variables": found},
    )


def render_prompt(registry: Registry, ref: str, values: Mapping[str, Any]) -> str:
    """Render a prompt version; every declared variable must be given."""
    info = registry.get("prompt", ref)
    missing = sorted(set(info.spec.get("variables", [])) - set(values))
    if missing:
        raise InvalidInputError(
            f"missing value(s) for {', '.join(missing)}",
            field="variables",
            fix=f"pass every variable of {info.ref}: {', '.join(info.spec['variables'])}",
        )
    template = registry.blobs.read_bytes(info.sha256).decode("utf-8")
    return render_template(_ENV.from_string(template), values, values_field="variables")
