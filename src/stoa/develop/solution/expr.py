"""Conditions and values in solution specs: CEL, compiled once, never ``eval``.

CEL (Google's Common Expression Language, through the maintained
``common-expression-language`` package) cannot call Python, import, loop forever or
touch files: an expression sees only the variables it is given. A spec is checked
when it is registered: every expression must parse, and may read only ``input``,
``tags`` and the steps that run before it, so a typo is an error at registration
with the step and the names it could have meant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from stoa.core.errors import InvalidInputError

#: Longest expression a spec may hold: conditions are short; a huge one is a mistake.
MAX_EXPRESSION = 4096
#: Names CEL reserves, and the ones the runner binds itself.
RESERVED = frozenset(
    {
        "input",
        "tags",
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)


#: CEL's standard functions and macros: an expression may call nothing else.
FUNCTIONS = frozenset({
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string",
    "bytes", "bool", "type", "dyn", "duration", "timestamp", "has", "all", "exists", "exists_one",
    "map", "filter", "max", "min", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getFullYear", "getHours", "getMilliseconds", "getMinutes", "getMonth", "getSeconds",
})  # fmt: skip


class ExpressionError(InvalidInputError):
    """An expression that fails to compile, reads an unknown name, or fails at run time."""


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and the top-level names it reads."""

    source: str
    program: Any
    names: frozenset[str]

    def evaluate(self, context: Mapping[str, Any], *, where: str) -> Any:
        """The value over ``context``; only the names it reads are converted for CEL."""
        scope = {name: context[name] for name in self.names if name in context}
        try:
            return self.program.execute(scope)
        except Exception as exc:  # CEL's own runtime error: a missing key, a bad type
            raise ExpressionError(
                f"{self.source!r} failed: {_short(exc)}",
                field=where,
                fix="guard optional values with has(step.field), or check the types",
            ) from None

    def truth(self, context: Mapping[str, Any], *, where: str) -> bool:
        value = self.evaluate(context, where=where)
        if not isinstance(value, bool):
            raise ExpressionError(
                f"{self.source!r} gave {type(value).__name__} {value!r}, not true or false",
                field=where,
                fix="a condition must be a boolean expression, e.g. intent.confidence < 0.5",
            )
        return value


def compile_expression(source: Any, *, where: str, known: Iterable[str]) -> Expression:
    """Compile ``source``; it may read only ``known`` top-level names."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("must be a non-empty CEL expression", field=where)
    if len(source) > MAX_EXPRESSION:
        raise ExpressionError(f"is over {MAX_EXPRESSION} characters", field=where)
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ExpressionError(
            f"{source!r} is not valid CEL: {_short(exc)}",
            field=where,
            fix='write CEL, e.g. input.text.contains("refund") && size(input.text) < 500',
        ) from None
    names = frozenset(_top_level(program, source))
    calls = sorted(f for f in program.references()["functions"] if not _operator(f))
    strange = [f for f in calls if f not in FUNCTIONS]
    if strange:
        raise ExpressionError(
            f"{source!r} calls {strange[0]!r}, which is not a CEL function",
            field=where,
            fix="use CEL's own functions: size, contains, startsWith, matches, int, double, has…",
        )
    allowed = set(known)
    unknown = sorted(names - allowed)
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, sorted(allowed), n=1)
        raise ExpressionError(
            f"{source!r} reads {name!r}, which is neither the input nor a step that runs before it",
            field=where,
            fix=f"did you mean {close[0]!r}?"
            if close
            else f"it can read {', '.join(sorted(allowed))}",
        )
    return Expression(source, program, names)


def _top_level(program: Any, source: str) -> set[str]:
    """The variables a program reads, less the ones its macros bind (``exists(x, …)``)."""
    bound = {m.group(2) for m in _MACRO_VARIABLE.finditer(source)}
    return {str(ref).split(".", 1)[0] for ref in program.variables()} - bound


_MACRO_VARIABLE = re.compile(r"\.(all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")


def _operator(name: str) -> bool:
    """CEL names its operators ``_&&_``, ``!_``, ``@in``: never plain words."""
    return name.startswith("@") or not re.fullmatch(r"\w+", name)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "…"
