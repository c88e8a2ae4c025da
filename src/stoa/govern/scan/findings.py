"""What a scan reports: findings, per-file results, and the verdict rules.

A finding carries the *reason* it implies. A file is blocked when any of its
findings blocks; its reason is the most serious one present, so "malicious" is
never hidden behind a parse error that followed the payload.

"malicious" is kept for what is known to run code or reach files and the network
(the denylist, computed calls, path escapes). An import that is merely not on the
allowlist is "unknown-global": it blocks all the same, but says "nobody vetted
this" rather than "this is an attack".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Reason = Literal[
    "clean", "malicious", "unknown-global", "license", "parse-error", "budget", "unknown-format"
]
Severity = Literal["info", "low", "medium", "high", "critical"]
VerdictName = Literal["allowed", "blocked"]

# Most serious first: the reason a blocked file reports.
REASON_ORDER: tuple[Reason, ...] = (
    "malicious",
    "unknown-global",
    "parse-error",
    "budget",
    "unknown-format",
    "license",
)
SEVERITY_ORDER: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Location:
    """Where a finding sits: ``path`` names archive members with ``!/`` (``a.zip!/w/data.pkl``)."""

    path: str
    offset: int | None = None
    opcode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.offset is not None:
            out["offset"] = self.offset
        if self.opcode is not None:
            out["opcode"] = self.opcode
        return out


@dataclass(frozen=True)
class ScanFinding:
    """One observation. ``reason`` is what it means for the verdict; ``clean`` never blocks."""

    rule: str
    severity: Severity
    message: str
    location: Location
    reason: Reason = "malicious"

    @property
    def blocks(self) -> bool:
        return self.reason != "clean"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "location": self.location.to_dict(),
            "reason": self.reason,
        }


@dataclass
class FileReport:
    """The result for one scanned path (a file or a folder)."""

    path: str
    format: str
    findings: list[ScanFinding] = field(default_factory=list)
    license: str | None = None
    license_source: str | None = None
    sha256: str | None = None
    size: int | None = None

    @property
    def verdict(self) -> VerdictName:
        return "blocked" if any(f.blocks for f in self.findings) else "allowed"

    @property
    def reason(self) -> Reason:
        present = {f.reason for f in self.findings if f.blocks}
        return next((r for r in REASON_ORDER if r in present), "clean")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict,
            "reason": self.reason,
            "sha256": self.sha256,
            "size": self.size,
            "license": self.license,
            "license_source": self.license_source,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class ScanReport:
    policy_version: str
    files: list[FileReport]
    scanner: str = "stoa-scan/1"

    @property
    def verdict(self) -> VerdictName:
        return "blocked" if any(f.verdict == "blocked" for f in self.files) else "allowed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "policy_version": self.policy_version,
            "verdict": self.verdict,
            "files": [f.to_dict() for f in self.files],
        }
