"""Stoa's model scanner: decides by content whether a model file may be loaded.

Nothing here imports, unpickles or executes anything from a scanned file. Entry
points: ``scan_paths`` (the Python API, the CLI and ``POST /api/v1/scans``) and
``stoa.govern.scan.scan_gate.ScanGate`` (the registry gate). Policy files load
with ``stoa.govern.scan.policy.load_policy``.
"""

from stoa.govern.scan.scanner import scan_path, scan_paths

__all__ = ["scan_path", "scan_paths"]
