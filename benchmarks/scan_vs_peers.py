"""Stoa's model scanner against picklescan and modelscan, on the same files in one run.

Run from the repository root with Stoa's virtualenv::

    .venv/bin/python benchmarks/scan_vs_peers.py --repeats 3
    .venv/bin/python benchmarks/scan_vs_peers.py --peers-only --quick

Two parts:

* Detection. The corpus of ``tests/govern/scan/corpus.py`` (imported by path) is written to the
  work folder; every tool scans every file. Per malicious case the table says whether each tool
  flagged it; for the benign set it lists false positives.
* Performance. A ~250 MB tensor pickle (``pickle.dumps`` of a float32 numpy array, protocol 4;
  ``--tensor-format torch`` uses ``torch.save`` of a tensor instead) and a dict pickle of
  ~7 million opcodes (str -> int entries; the count is taken with ``pickletools.genops`` and
  printed). Each tool scans each file ``--repeats`` times in a fresh process; medians are
  printed: scan seconds, throughput in MB/s (10^6 bytes per second), and peak resident memory
  in MiB, with the Stoa/peer ratios.

Peak memory is the worker's own ``VmHWM`` (``/proc/self/status``), read as it exits. Not
``ru_maxrss``: subprocess starts children with vfork, and at exec Linux folds the parent's
high-water mark into the child's ``ru_maxrss`` (and so into ``RUSAGE_CHILDREN``), which would
charge every tool with this script's own memory. Elsewhere than Linux the worker falls back to
``ru_maxrss`` of itself.

Every tool runs as a subprocess of this same file (``--worker TOOL``) in its own virtualenv, so
start-up and memory are measured the same way for all of them. A worker imports its tool, then
times only the scan call, the same call the tool's CLI makes: ``picklescan.scanner
.scan_file_path`` (``picklescan -p``) and ``modelscan.modelscan.ModelScan.scan`` with the
default settings (``modelscan -p``). The "idle" rows give each worker's import-only memory.

What counts as flagged: Stoa's verdict is ``blocked``; picklescan reports a dangerous global
(CLI exit 1); modelscan reports an issue (CLI exit 1). A scan error (CLI exit 2) and modelscan
skipping a file it does not support (exit 3) are shown as ``err`` and ``skip``: they are not
detections, although a pipeline that fails on any non-zero exit would stop those files too.
picklescan also runs with ``--strict`` (default-deny), reported in its own column.

The peers live in ``benchmarks/.venv-scan``, created on first use, and are never Stoa
dependencies. modelscan gets its ``tensorflow`` and ``h5py`` extras so that it can scan Keras
files; the performance runs block the ``tensorflow`` import so that its memory and start-up are
those of a plain ``pip install modelscan``.

Stoa scans with its default policy, licences allowed (a licence decision is not a detection).
``--peers-only`` skips Stoa, for use before Stoa's scanner exists.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pickle
import pickletools
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS_FILE = ROOT / "tests" / "govern" / "scan" / "corpus.py"
PEER_VENV = HERE / ".venv-scan"
PEER_REQUIREMENTS = ("picklescan[7z]==1.0.5", "modelscan[tensorflow,h5py]==0.8.8")
STAMP = ".stoa-bench-requirements"
PEERS = ("picklescan", "picklescan-strict", "modelscan")
PERF_PEERS = ("picklescan", "modelscan")
STOA_POLICY = "version: scan-bench\nlicenses:\n  default: allow\n"
MB = 1_000_000
MIB = 1024 * 1024

# Full-size and --quick sizes of the two performance files.
TENSOR_BYTES = {"full": 250 * MB, "quick": 25 * MB}
DICT_ENTRIES = {"full": 2_333_333, "quick": 233_333}
OPCODE_HEAVY = 100_000  # files with this many opcodes get the 3x target and an Mop/s column

# ---------------------------------------------------------------------------------------------
# Worker side: runs inside the tool's virtualenv; imports only the standard library up front
# ---------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    status: str  # flagged | error | clean | skipped
    detail: str = ""


def picklescan_verdict(path: Path, strict: bool) -> Verdict:
    from picklescan.scanner import SafetyLevel, scan_file_path

    result = scan_file_path(str(path), strict=strict)
    if result.issues_count:
        dangerous = {
            f"{g.module}.{g.name}" for g in result.globals if g.safety is SafetyLevel.Dangerous
        }
        return Verdict("flagged", ", ".join(sorted(dangerous)))
    return Verdict("error" if result.scan_err else "clean")


def modelscan_verdict(path: Path) -> Verdict:
    import copy

    from modelscan.modelscan import ModelScan
    from modelscan.settings import DEFAULT_SETTINGS

    scanner = ModelScan(settings=copy.deepcopy(DEFAULT_SETTINGS))
    scanner.scan(str(path))
    if scanner.issues.all_issues:
        found = {str(getattr(i.details, "operator", i.code)) for i in scanner.issues.all_issues}
        return Verdict("flagged", ", ".join(sorted(found)))
    if scanner.errors:
        return Verdict("error", "; ".join(str(e) for e in scanner.errors)[:200])
    if not scanner.scanned:
        return Verdict("skipped")
    return Verdict("clean")


def stoa_verdict(path: Path, policy: Any) -> Verdict:
    from stoa.govern.scan import scan_paths

    result = scan_paths([path], policy=policy).files[0]
    if result.verdict == "blocked":
        return Verdict("flagged", result.reason)
    return Verdict("clean")


def tool_scanner(tool: str, policy_file: str | None) -> Callable[[Path], Verdict]:
    """Import the tool now (so the import is not timed) and return its per-file scan."""
    if tool == "stoa":
        import stoa.govern.scan  # noqa: F401
        from stoa.govern.scan.policy import load_policy

        policy = load_policy(policy_file)
        return lambda path: stoa_verdict(path, policy)
    if tool in ("picklescan", "picklescan-strict"):
        import picklescan.scanner  # noqa: F401

        return lambda path: picklescan_verdict(path, strict=tool == "picklescan-strict")
    if tool == "modelscan":
        import modelscan.modelscan  # noqa: F401

        return modelscan_verdict
    raise SystemExit(f"unknown tool {tool}")


def quiet_tools() -> None:
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("picklescan", "modelscan", "absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def peak_rss_kib() -> int:
    """This process's resident-memory high-water mark since exec, in KiB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss // 1024 if sys.platform == "darwin" else maxrss  # bytes on macOS


def worker(args: argparse.Namespace) -> None:
    """Scan each path and print one JSON line per path, then one with the peak memory."""
    if args.no_tensorflow:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]  # import now fails
    quiet_tools()
    scan = tool_scanner(args.worker, args.policy)
    for raw in args.paths:
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # tools print; stdout is for JSON
                verdict = scan(Path(raw))
        except Exception as exc:  # a crash is what the CLI would report as exit code 2
            verdict = Verdict("error", f"{type(exc).__name__}: {exc}"[:200])
        seconds = time.perf_counter() - started
        row = {"path": raw, "status": verdict.status, "detail": verdict.detail, "seconds": seconds}
        print(json.dumps(row), flush=True)
    print(json.dumps({"peak_kib": peak_rss_kib()}), flush=True)


# ---------------------------------------------------------------------------------------------
# Parent side: runs in Stoa's virtualenv
# ---------------------------------------------------------------------------------------------


@dataclass
class WorkerRun:
    rows: list[dict[str, Any]]
    peak_mib: float
    wall_s: float


@dataclass
class Tools:
    """Interpreter per tool, and the policy file Stoa scans with."""

    python: dict[str, Path]
    policy_file: Path
    failures: dict[str, str] = field(default_factory=dict)


def run_worker(
    tools: Tools, tool: str, paths: list[Path], *, no_tensorflow: bool = False
) -> WorkerRun:
    """One fresh worker process scanning ``paths``; it reports its rows and its peak memory."""
    command = [str(tools.python[tool]), str(Path(__file__).resolve()), "--worker", tool]
    command += ["--policy", str(tools.policy_file), *(["--no-tensorflow"] * no_tensorflow)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.run(
            [*command, "--", *map(str, paths)], stdout=out, stderr=err, env=env, cwd=ROOT
        )
        wall = time.perf_counter() - started
        out.seek(0)
        records = [json.loads(line) for line in out if line.startswith("{")]
        rows = [r for r in records if "path" in r]
        peaks = [r["peak_kib"] for r in records if "peak_kib" in r]
        if proc.returncode != 0 or len(rows) != len(paths) or not peaks:
            err.seek(0)
            raise RuntimeError(
                f"{tool} worker failed (exit {proc.returncode}):\n{err.read()[-2000:]}"
            )
    return WorkerRun(rows, peaks[0] / 1024, wall)


def peer_python() -> Path:
    """The interpreter of benchmarks/.venv-scan, created and installed when needed."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / STAMP
    wanted = "\n".join(PEER_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {', '.join(PEER_REQUIREMENTS)} into {PEER_VENV} ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", *PEER_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def load_corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stoa_scan_corpus", CORPUS_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

CELL = {"flagged": "yes", "clean": "no", "error": "err", "skipped": "skip"}


@dataclass
class Detection:
    tool: str
    malicious: dict[str, str]  # case id -> status
    benign: dict[str, str]
    details: dict[str, str]


def detect(
    tools: Tools, tool: str, malicious: dict[str, Path], benign: dict[str, Path]
) -> Detection:
    run = run_worker(tools, tool, [*malicious.values(), *benign.values()])
    by_path = {row["path"]: row for row in run.rows}

    def column(cases: dict[str, Path], key: str) -> dict[str, str]:
        return {case: by_path[str(path)][key] for case, path in cases.items()}

    details = {**column(benign, "detail"), **column(malicious, "detail")}
    return Detection(tool, column(malicious, "status"), column(benign, "status"), details)


def detection_report(results: list[Detection], sources: dict[str, str]) -> list[str]:
    tools = [r.tool for r in results]
    width = max(len(case) for case in sources) + 2
    lines = ["Detection per malicious case (yes = flagged; err = scan error; skip = not scanned)"]
    lines.append(f"{'case':<{width}}" + "".join(f"{t:>19}" for t in tools))
    for case in sources:
        cells = "".join(f"{CELL[r.malicious[case]]:>19}" for r in results)
        lines.append(f"{case:<{width}}{cells}")
    total = len(sources)
    lines.append("")
    for r in results:
        flagged = sum(s == "flagged" for s in r.malicious.values())
        errored = sum(s == "error" for s in r.malicious.values())
        missed = [c for c, s in r.malicious.items() if s != "flagged"]
        false_pos = [c for c, s in r.benign.items() if s == "flagged"]
        benign_err = [c for c, s in r.benign.items() if s == "error"]
        lines.append(
            f"{r.tool}: flagged {flagged}/{total} ({100 * flagged / total:.1f} %), "
            f"flagged or errored {flagged + errored}/{total}; "
            f"false positives {len(false_pos)}/{len(r.benign)}"
            + (f" ({', '.join(false_pos)})" if false_pos else "")
            + (f"; benign scan errors: {', '.join(benign_err)}" if benign_err else "")
        )
        lines.append(f"  not flagged ({len(missed)}): {', '.join(missed) or '-'}")
    return lines


# ---------------------------------------------------------------------------------------------
# Performance
# ---------------------------------------------------------------------------------------------


@dataclass
class PerfFile:
    label: str
    path: Path
    size: int
    opcodes: int


def tensor_file(folder: Path, size: int, fmt: str) -> PerfFile:
    count = size // 4
    path = folder / f"tensor-{size // MB}MB.{'pt' if fmt == 'torch' else 'pkl'}"
    if not path.exists():
        write_tensor(path, count, fmt)
    opcodes = 0 if fmt == "torch" else count_opcodes(path)
    return PerfFile(f"tensor ({fmt})", path, path.stat().st_size, opcodes)


def write_tensor(path: Path, count: int, fmt: str) -> None:
    partial = path.with_suffix(".partial")
    if fmt == "torch":
        import torch

        torch.save(torch.arange(count, dtype=torch.float32), partial)
    else:
        import numpy as np

        with partial.open("wb") as handle:
            pickle.dump(np.arange(count, dtype=np.float32), handle, protocol=4)
    partial.rename(path)


def dict_file(folder: Path, entries: int) -> PerfFile:
    path = folder / f"dict-{entries}.pkl"
    if not path.exists():
        table = {f"key{i:08d}": i for i in range(entries)}
        path.with_suffix(".partial").write_bytes(pickle.dumps(table, protocol=4))
        path.with_suffix(".partial").rename(path)
    return PerfFile("opcode-heavy dict", path, path.stat().st_size, count_opcodes(path))


def count_opcodes(path: Path) -> int:
    """Opcodes in the file, counted once with pickletools.genops and cached beside it."""
    cache = path.with_name(path.name + ".opcodes")
    if cache.exists():
        return int(cache.read_text())
    with path.open("rb") as handle:
        count = sum(1 for _ in pickletools.genops(handle))
    cache.write_text(str(count))
    return count


@dataclass
class Timing:
    tool: str
    file: str
    seconds: float  # median scan seconds inside the worker
    peak_mib: float  # median peak RSS of the worker
    wall_s: float  # median wall time of the whole worker process
    status: str


def measure(tools: Tools, tool: str, perf: PerfFile, repeats: int) -> Timing:
    runs = [run_worker(tools, tool, [perf.path], no_tensorflow=True) for _ in range(repeats)]
    return Timing(
        tool,
        perf.label,
        statistics.median(r.rows[0]["seconds"] for r in runs),
        statistics.median(r.peak_mib for r in runs),
        statistics.median(r.wall_s for r in runs),
        runs[-1].rows[0]["status"],
    )


def idle(tools: Tools, tool: str, repeats: int) -> Timing:
    """The worker with nothing to scan: interpreter plus the tool's imports."""
    runs = [run_worker(tools, tool, [], no_tensorflow=True) for _ in range(repeats)]
    peak = statistics.median(r.peak_mib for r in runs)
    return Timing(
        tool, "idle (imports only)", 0.0, peak, statistics.median(r.wall_s for r in runs), ""
    )


def perf_report(files: list[PerfFile], timings: list[Timing], idles: list[Timing]) -> list[str]:
    lines = ["Performance (medians; MB = 10^6 bytes; memory = peak RSS of the worker process)"]
    for perf in files:
        ops = f", {perf.opcodes:,} opcodes" if perf.opcodes else ""
        lines.append(f"  {perf.label}: {perf.path.name}, {perf.size / MB:,.1f} MB{ops}")
    header = f"{'file':<22}{'tool':<12}{'scan s':>9}{'MB/s':>10}{'Mop/s':>9}{'peak MiB':>10}"
    lines += ["", header + f"{'wall s':>9}  verdict"]
    for t in [*timings, *idles]:
        perf = next((p for p in files if p.label == t.file), None)
        rate = f"{perf.size / MB / t.seconds:>10,.1f}" if perf and t.seconds else f"{'-':>10}"
        heavy = perf is not None and perf.opcodes >= OPCODE_HEAVY
        mops = perf.opcodes / 1e6 / t.seconds if heavy and t.seconds else None
        mop_cell = f"{mops:>9,.2f}" if mops else f"{'-':>9}"
        scan = f"{t.seconds:>9.3f}" if t.seconds else f"{'-':>9}"
        lines.append(
            f"{t.file:<22}{t.tool:<12}{scan}{rate}{mop_cell}{t.peak_mib:>10,.0f}{t.wall_s:>9.2f}"
            f"  {t.status}"
        )
    return lines


def ratio_report(files: list[PerfFile], timings: list[Timing]) -> list[str]:
    """Stoa/peer throughput and memory ratios, and the targets Stoa must meet."""
    lines = ["", "Stoa / peer (throughput: higher is better; memory: lower is better)"]
    for perf in files:
        stoa = next((t for t in timings if t.tool == "stoa" and t.file == perf.label), None)
        peers = [t for t in timings if t.tool != "stoa" and t.file == perf.label]
        if stoa is None or not peers:
            continue
        for peer in peers:
            speed = peer.seconds / stoa.seconds
            memory = stoa.peak_mib / peer.peak_mib
            against = f"  {perf.label:<20} vs {peer.tool:<11}"
            lines.append(f"{against} throughput x{speed:,.2f}, memory x{memory:,.2f}")
        fastest = min(peers, key=lambda t: t.seconds)
        need = 3.0 if perf.opcodes >= OPCODE_HEAVY else 1.0
        speedup = fastest.seconds / stoa.seconds
        lines.append(
            f"  target {perf.label}: >= {need:g}x the fastest peer ({fastest.tool}): "
            f"x{speedup:,.2f} {'PASS' if speedup >= need else 'FAIL'}; peak < 300 MiB: "
            f"{stoa.peak_mib:,.0f} {'PASS' if stoa.peak_mib < 300 else 'FAIL'}"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and file (median)")
    parser.add_argument("--quick", action="store_true", help="small files, one repeat: a smoke run")
    parser.add_argument("--peers-only", action="store_true", help="skip Stoa (before it exists)")
    parser.add_argument("--skip-detection", action="store_true", help="performance only")
    parser.add_argument("--skip-perf", action="store_true", help="detection only")
    parser.add_argument(
        "--tensor-format", choices=("numpy", "torch"), default="numpy",
        help="numpy: pickle.dump of a float32 array (protocol 4); torch: torch.save of a tensor",
    )  # fmt: skip
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stoa-scan-bench",
        help="where the corpus and the large files are written (large files are reused)",
    )  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    parser.add_argument("--no-tensorflow", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_corpus(folder: Path) -> tuple[dict[str, Path], dict[str, Path], dict[str, str]]:
    corpus = load_corpus_module()
    cases = corpus.malicious_corpus(folder / "malicious")
    benign = corpus.benign_corpus(folder / "benign")
    malicious = {case: info.path for case, info in cases.items()}
    return malicious, benign, {case: info.source for case, info in cases.items()}


def tool_list(args: argparse.Namespace) -> Iterator[str]:
    if not args.peers_only:
        try:
            from stoa.govern.scan import scan_paths  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                f"Stoa's scanner is not importable ({exc}); use --peers-only"
            ) from None
        yield "stoa"
    yield from PEERS


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    size = "quick" if args.quick else "full"
    repeats = 1 if args.quick else args.repeats
    args.workdir.mkdir(parents=True, exist_ok=True)
    policy_file = args.workdir / "stoa-policy.yaml"
    policy_file.write_text(STOA_POLICY)
    peer = peer_python()
    tools = Tools({"stoa": Path(sys.executable), **dict.fromkeys(PEERS, peer)}, policy_file)
    names = list(tool_list(args))
    print(f"machine: {machine()}\ntools: {', '.join(names)}; repeats: {repeats}\n")
    if not args.skip_detection:
        malicious, benign, sources = write_corpus(args.workdir / "corpus")
        results = [detect(tools, tool, malicious, benign) for tool in names]
        print("\n".join(detection_report(results, sources)), "\n", flush=True)
    if not args.skip_perf:
        files = [
            tensor_file(args.workdir, TENSOR_BYTES[size], args.tensor_format),
            dict_file(args.workdir, DICT_ENTRIES[size]),
        ]
        perf_tools = [t for t in names if t in ("stoa", *PERF_PEERS)]
        timings = [measure(tools, tool, perf, repeats) for perf in files for tool in perf_tools]
        idles = [idle(tools, tool, repeats) for tool in perf_tools]
        print("\n".join(perf_report(files, timings, idles) + ratio_report(files, timings)))


if __name__ == "__main__":
    main()
