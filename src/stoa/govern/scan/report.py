"""Scan reports for people (a Rich table) and for CI systems (SARIF 2.1.0).

The JSON form is ``ScanReport.to_dict()``; SARIF maps each finding to a result
whose rule is the finding's rule, so code-scanning UIs group them sensibly.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from stoa.govern.scan.findings import ScanReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_RULE_HELP = {
    "pickle-global": "A pickle imports a name outside the policy's allowlist.",
    "unknown-global-review": "An import outside the allowlist waits for a person's review.",
    "pickle-computed-call": "A pickle calls something that is not an imported name.",
    "pickle-mutation": "A pickle calls methods of a non-builtin object.",
    "pickle-build-global": "A pickle changes a class or function for the whole process.",
    "pickle-build-dunder": "A pickle sets special attributes through BUILD.",
    "pickle-extension": "A pickle imports through the copyreg extension registry.",
    "parse-error": "The file could not be parsed, so it cannot be shown to be safe.",
    "budget": "A scan limit was reached before the whole file was read.",
    "unknown-format": "No scanner recognises the format.",
    "license-review": "The licence needs a person's review under the policy.",
    "license-blocked": "The licence is blocked by the policy.",
    "symlink": "A symlink to a regular file; its target's content was scanned.",
    "symlink-escape": "A symlink leaves the scanned folder, which the policy refuses.",
    "symlink-target": "A symlink to a folder, a device or nothing cannot be scanned.",
    "onnx-external-data": "Raw tensor bytes an ONNX graph in the folder names; read as data.",
    "license-conflict": "Licence sources disagree; a person decides which holds.",
}


def to_sarif(report: ScanReport) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    rules: dict[str, dict[str, Any]] = {}
    for file in report.files:
        for finding in file.findings:
            rules.setdefault(
                finding.rule,
                {
                    "id": finding.rule,
                    "shortDescription": {"text": _RULE_HELP.get(finding.rule, finding.rule)},
                },
            )
            location: dict[str, Any] = {
                "physicalLocation": {"artifactLocation": {"uri": _uri(finding.location.path)}}
            }
            if finding.location.offset is not None:
                location["physicalLocation"]["region"] = {"byteOffset": finding.location.offset}
            results.append(
                {
                    "ruleId": finding.rule,
                    "level": _LEVEL[finding.severity] if finding.blocks else "note",
                    "message": {"text": finding.message},
                    "locations": [location],
                    "properties": {
                        "severity": finding.severity,
                        "reason": finding.reason,
                        "verdict": file.verdict,
                        **({"opcode": finding.location.opcode} if finding.location.opcode else {}),
                    },
                }
            )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "stoa-scan",
                        "informationUri": "https://github.com/stoa-mlops/stoa",
                        "version": report.scanner,
                        "rules": list(rules.values()),
                    }
                },
                "properties": {"policy_version": report.policy_version},
                "results": results,
            }
        ],
    }


def _uri(path: str) -> str:
    """Archive members are written ``outer!/inner``; SARIF wants a plain relative URI."""
    return path.replace("\\", "/").split("!/", 1)[0].lstrip("/") or "."


def report_table(report: ScanReport) -> Table:
    table = Table(title=f"scan (policy {report.policy_version})", title_justify="left")
    for column in ("path", "format", "verdict", "reason", "licence", "findings"):
        table.add_column(column)
    for file in report.files:
        shown = [f for f in file.findings if f.blocks] or file.findings[:1]
        # Messages quote names from the scanned file: never let them act as Rich markup.
        lines = [escape(f"[{f.severity}] {f.message}") for f in shown[:5]]
        if len(shown) > 5:
            lines.append(f"… and {len(shown) - 5} more (use --json)")
        colour = "green" if file.verdict == "allowed" else "red"
        table.add_row(
            escape(file.path),
            file.format,
            f"[{colour}]{file.verdict}[/{colour}]",
            file.reason,
            file.license or "-",
            "\n".join(lines) or "-",
        )
    return table
