"""The registry gate backed by the scanner: what every model version passes through."""

from __future__ import annotations

from pathlib import Path

from stoa.govern.gate import Finding, Verdict
from stoa.govern.scan.findings import ScanFinding, ScanReport
from stoa.govern.scan.policy import Policy, default_policy
from stoa.govern.scan.scanner import scan_path


class ScanGate:
    """Allows a model only when the scan finds nothing that blocks it under ``policy``."""

    name = "stoa-scan/1"

    def __init__(self, policy: Policy | None = None, *, require_license: bool = False):
        self.policy = policy or default_policy()
        self.require_license = require_license

    def report(
        self, path: Path, *, license: str | None = None, require_license: bool | None = None
    ) -> ScanReport:
        """Scan one artifact; findings name folder members by their path inside it."""
        required = self.require_license if require_license is None else require_license
        file = scan_path(
            path,
            self.policy,
            license=license,
            require_license=required,
            label=path.name if path.is_file() else "",
        )
        return ScanReport(self.policy.version, [file])

    def check(self, path: Path, *, license: str | None = None) -> Verdict:
        report = self.report(path, license=license)
        file = report.files[0]
        return Verdict(
            file.verdict,
            self.name,
            file.format,
            [_finding(f) for f in file.findings if f.blocks],
            report=report.to_dict(),
            license=file.license,
        )


def _finding(f: ScanFinding) -> Finding:
    return Finding(
        f.rule, f.message, f.severity, f.location.path, reason=f.reason, offset=f.location.offset
    )
