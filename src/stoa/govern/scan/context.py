"""The state one scan carries through nested formats: policy, budget, findings.

Format scanners receive a ``Blob`` (a seekable stream with a label) and a
``Context``. They report through ``ctx.add`` and hand any embedded file back to
``ctx.scan_member``, which detects its format by content and dispatches again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from stoa.govern.scan.budget import Budget
from stoa.govern.scan.findings import Location, Reason, ScanFinding, Severity
from stoa.govern.scan.policy import Policy


@dataclass
class Blob:
    """One file to scan. ``stream`` is seekable and positioned anywhere; scanners seek.

    ``path`` is the file on disk when there is one (top-level files and folder
    members), which formats with sidecar files (ONNX external data) need;
    members extracted from archives have none.
    """

    label: str
    stream: BinaryIO
    size: int
    path: Path | None = None
    root: Path | None = None  # the folder the scan started from, for containment checks

    def head(self, n: int = 4096) -> bytes:
        self.stream.seek(0)
        return self.stream.read(n)


@dataclass
class Context:
    policy: Policy
    budget: Budget
    findings: list[ScanFinding] = field(default_factory=list)
    depth: int = 0
    # Set by the dispatcher: scan_member(label, stream, size) detects and scans an embedded file.
    member_scanner: Callable[[Context, str, BinaryIO, int], str] | None = None
    # Licence hints found inside files (safetensors/GGUF metadata, model cards): (licence, source).
    license_hints: list[tuple[str, str]] = field(default_factory=list)
    # Archive member labels whose loader reads them as raw bytes (tensor storages): label -> role.
    member_roles: dict[str, str] = field(default_factory=dict)
    # Inside a TorchScript archive the policy allows: __torch__.* names are its own classes.
    torchscript_names: bool = False
    # Whether top-level and folder files are hashed (for the deny list and the report).
    hash_files: bool = False
    # Refined format names (pytorch-zip, keras, ...) noted by container scanners.
    formats_seen: list[str] = field(default_factory=list)
    # Files on disk that an ONNX graph names as external data, by real path -> the graph's
    # file: its runtime reads them as raw tensor bytes (see scanner._accept_external_data).
    external_data: dict[str, Path] = field(default_factory=dict)

    def add(
        self,
        rule: str,
        severity: Severity,
        message: str,
        path: str,
        *,
        reason: Reason = "malicious",
        offset: int | None = None,
        opcode: str | None = None,
    ) -> None:
        self.findings.append(
            ScanFinding(rule, severity, message, Location(path, offset, opcode), reason)
        )

    def parse_error(self, path: str, message: str, offset: int | None = None) -> None:
        self.add("parse-error", "high", message, path, reason="parse-error", offset=offset)

    def scan_member(self, label: str, stream: BinaryIO, size: int) -> str:
        """Scan an embedded file (an archive member, a nested pickle); returns its format."""
        if self.member_scanner is None:  # pragma: no cover - the dispatcher always sets it
            raise RuntimeError("no member scanner configured")
        return self.member_scanner(self, label, stream, size)
