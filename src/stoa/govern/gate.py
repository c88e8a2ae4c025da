"""The registry gate: every model version passes through it before it can be loaded.

A gate looks at an artifact on local disk and returns a verdict with findings. The
registry calls ``run_gate`` and stores the resulting status; a scanner plugs in by
implementing ``Gate``. Any exception inside a gate blocks the artifact: fail closed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from stoa.govern.formats import DATA_ONLY, SAFE_FORMATS, detect_format

VerdictName = Literal["allowed", "blocked", "error"]
#: Findings a person may clear: a licence the policy sends to review, licence sources
#: that disagree, and (when the policy says review) an import outside the allowlist that
#: no list calls dangerous. Anything else that blocks is final.
REVIEW_CODES = frozenset({"license-review", "license-conflict", "unknown-global-review"})


@dataclass(frozen=True)
class Finding:
    """One reason behind a verdict; ``path`` is relative to the artifact for folders."""

    code: str
    message: str
    severity: Literal["info", "low", "medium", "warning", "high", "critical"] = "high"
    path: str | None = None
    #: What the finding means for the verdict (scanner reasons: malicious, license, ...).
    reason: str = ""
    offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictName
    gate: str
    format: str
    findings: list[Finding] = field(default_factory=list)
    #: The scanner's full report, stored with the version.
    report: dict[str, Any] | None = None
    #: The licence the scan found (SPDX), when none was declared.
    license: str | None = None

    @property
    def status(self) -> str:
        """The registry status this verdict sets: anything but ``allowed`` blocks.

        A version held back only because its licence needs a person's review is
        ``pending``: it cannot be loaded until an admin approves it.
        """
        if self.verdict == "allowed":
            return "allowed"
        blocking = [f for f in self.findings if f.reason not in ("", "clean")]
        if blocking and all(f.code in REVIEW_CODES for f in blocking):
            return "pending"
        return "blocked"


@runtime_checkable
class Gate(Protocol):
    """What a scanner implements to decide whether a model artifact may be loaded."""

    name: str

    def check(self, path: Path, *, license: str | None = None) -> Verdict: ...


def run_gate(gate: Gate, path: Path, *, license: str | None = None) -> Verdict:
    """Run ``gate`` on ``path``; a gate that fails to decide blocks the artifact."""
    try:
        verdict = gate.check(path, license=license)
    except Exception as exc:  # fail closed on any gate failure
        return Verdict(
            "error",
            gate.name,
            "unknown",
            [Finding("gate-error", f"the gate could not decide: {type(exc).__name__}: {exc}")],
        )
    if verdict.verdict not in ("allowed", "blocked", "error"):
        return Verdict("error", gate.name, verdict.format, [Finding("gate-error", "bad verdict")])
    return verdict


class FormatGate:
    """Allows only formats that cannot execute code on load; blocks all others.

    Until a scanner can inspect pickles and their kin, "we cannot read it safely"
    has to mean "blocked".
    """

    name = "format-allowlist/1"

    def check(self, path: Path, *, license: str | None = None) -> Verdict:
        if path.is_dir():
            return self._check_folder(path)
        fmt = detect_format(path)
        if fmt in SAFE_FORMATS:
            return Verdict("allowed", self.name, fmt)
        return Verdict("blocked", self.name, fmt, [_no_scanner(fmt, None)])

    def _check_folder(self, folder: Path) -> Verdict:
        findings: list[Finding] = []
        model_files = 0
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = file.relative_to(folder).as_posix()
            fmt = detect_format(file)
            if file.suffix == ".py":
                findings.append(
                    Finding("custom-code", "Python source in a model folder runs on load", path=rel)
                )
            elif fmt in SAFE_FORMATS:
                model_files += 1
            elif fmt not in DATA_ONLY:
                findings.append(_no_scanner(fmt, rel))
            elif file.name == "modules.json":
                findings.extend(foreign_modules(file, rel))
        if model_files == 0 and not findings:
            findings.append(
                Finding("no-model-file", "the folder holds no model weights in a known format")
            )
        return Verdict("blocked" if findings else "allowed", self.name, "folder", findings)


def _no_scanner(fmt: str, rel: str | None) -> Finding:
    return Finding(
        "no-scanner",
        f"no scanner for this format ({fmt}); only formats that cannot run code on load "
        f"are allowed: {', '.join(sorted(SAFE_FORMATS))}",
        path=rel,
    )


def foreign_modules(file: Path, rel: str) -> list[Finding]:
    """sentence-transformers imports each module's ``type``; only its own classes are safe.

    Any finding means the folder must not be loaded: the gate blocks it, and a local
    embedder folder is refused before sentence-transformers imports anything."""
    try:
        modules = json.loads(file.read_text())
        types = [m["type"] for m in modules]
    except (ValueError, KeyError, TypeError) as exc:
        return [Finding("parse-error", f"modules.json is unreadable: {exc}", path=rel)]
    return [
        Finding("foreign-module", f"module type {t!r} is outside sentence_transformers", path=rel)
        for t in types
        if not (isinstance(t, str) and t.startswith("sentence_transformers."))
    ]
