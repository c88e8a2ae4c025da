"""Dispatch: detect each file's format by content and run the scanner for it.

One Budget covers everything under one top-level path. Any BudgetExceeded,
parse failure or format nobody can read becomes a blocking finding with its own
reason; nothing a scanner raises lets a file through.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from stoa.govern import formats
from stoa.govern.gate import foreign_modules
from stoa.govern.scan.budget import Budget, BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.findings import FileReport, ScanFinding, ScanReport
from stoa.govern.scan.links import inspect_link
from stoa.govern.scan.pickle_vm import PickleError, PickleMachine
from stoa.govern.scan.policy import Policy, default_policy

Scanner = Callable[[Blob, Context], None]

# format -> "module:function" (imported on first use, so one slow import never taxes the rest)
_SCANNERS: dict[str, str] = {
    "pickle": "pickle_vm:scan_pickle",
    "torch-legacy": "torch_scan:scan_torch_legacy",
    "npy": "numpy_scan:scan_npy",
    "zip": "torch_scan:scan_zip_container",
    "tar": "torch_scan:scan_tar_container",
    "7z": "archives:scan_7z",
    "gguf": "gguf_scan:scan_gguf",
    "hdf5": "keras_scan:scan_hdf5",
    "onnx": "onnx_scan:scan_onnx",
    "safetensors": "safetensors_scan:scan_safetensors",
    "savedmodel": "savedmodel_scan:scan_savedmodel",
}
_COMPRESSED = {"gzip", "bz2", "xz", "lz4", "zstd", "lzma", "zlib"}
# Formats already read as pickles from byte 0 (text is tried as one by _text_or_pickle).
_READ_AS_PICKLE = {"pickle", "torch-legacy", "maybe-pickle", "text", "json", "empty"}
_HASH_CHUNK = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"


def _scanner(fmt: str) -> Scanner:
    module, func = _SCANNERS[fmt].split(":")
    return getattr(importlib.import_module(f"stoa.govern.scan.{module}"), func)


def scan_paths(
    paths: Iterable[str | Path],
    policy: Policy | None = None,
    *,
    license: str | None = None,
    require_license: bool = False,
    hash_files: bool | None = None,
) -> ScanReport:
    """Scan files and folders; each top-level path gets its own report entry and budget.

    A licence that is declared or found is always checked against the policy. When
    none is found, ``require_license`` decides: third-party models (pulls) apply the
    policy's default for unknown licences; a team's own files only get a note.
    Files are hashed when ``hash_files`` says so, and always when the policy has a
    deny list: hashing costs more than scanning a tensor file, so it is not free.
    """
    policy = policy or default_policy()
    files = [
        scan_path(
            Path(p), policy, license=license, require_license=require_license, hash_files=hash_files
        )
        for p in paths
    ]
    return ScanReport(policy_version=policy.version, files=files)


def scan_path(
    path: Path,
    policy: Policy,
    *,
    license: str | None = None,
    require_license: bool = False,
    label: str | None = None,
    hash_files: bool | None = None,
) -> FileReport:
    """Scan one file or folder; ``label`` names it in findings (default: the path).

    An empty label names folder members by their path inside the folder.
    """
    ctx = Context(policy=policy, budget=Budget(policy.limits))
    ctx.member_scanner = _scan_member
    ctx.hash_files = bool(policy.deny_sha256) if hash_files is None else hash_files
    label = str(path) if label is None else label
    if path.is_symlink():
        # A link named on its own resolves from the folder that holds it.
        readable = _follow_link(ctx, path, path.parent, label, label or path.name)
    elif path.is_dir() or path.is_file():
        readable = True
    else:
        what = "is not a regular file or folder" if path.exists() else "does not exist"
        ctx.parse_error(label, f"{path} {what}")
        readable = False
    if not readable:
        report = FileReport(label, "missing" if not path.exists() else "unknown")
        report.findings = ctx.findings
        return report
    if path.is_dir():
        fmt = _scan_folder(path, ctx, label)
        report = FileReport(label, fmt)
    else:
        size = path.stat().st_size
        with open(path, "rb") as stream:
            digest = _check_hash(ctx, stream, label)
            report = FileReport(label, "unknown", sha256=digest, size=size)
            report.format = _scan_guarded(ctx, Blob(label, stream, size, path=path, root=None))
    _check_license(path, ctx, license, report, require_license, label)
    report.findings = ctx.findings
    return report


def _check_hash(ctx: Context, stream: BinaryIO, label: str) -> str | None:
    """The file's sha256 when hashing is on; a deny-listed hash blocks."""
    if not ctx.hash_files:
        return None
    digest = _sha256(stream)
    if digest in ctx.policy.deny_sha256:
        ctx.add("deny-hash", "critical", f"sha256 {digest} is on the policy's deny list", label)
    return digest


def _sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _scan_guarded(ctx: Context, blob: Blob, fmt: str | None = None) -> str:
    """Scan one blob; budget and unexpected failures become findings, never exceptions."""
    try:
        return scan_blob(ctx, blob, fmt)
    except BudgetExceeded as exc:
        ctx.add("budget", "high", f"{exc}; the rest of the file was not scanned", blob.label,
                reason="budget")  # fmt: skip
    except PickleError as exc:
        ctx.parse_error(blob.label, f"pickle: {exc}", exc.offset)
    except Exception as exc:  # a scanner bug must block, not crash or allow
        ctx.parse_error(blob.label, f"could not be parsed: {type(exc).__name__}: {exc}")
    return fmt or "unknown"


def scan_blob(ctx: Context, blob: Blob, fmt: str | None = None) -> str:
    """Detect (unless told) and scan one blob; returns the format name."""
    ctx.budget.check_time()
    if fmt is None:
        fmt = formats.detect(blob.stream, blob.size)
    before = len(ctx.formats_seen)
    if fmt not in _READ_AS_PICKLE:
        _polyglot(ctx, blob, fmt)
    if fmt in _SCANNERS:
        _scanner(fmt)(blob, ctx)
        if fmt == "zip" and len(ctx.formats_seen) > before:
            return ctx.formats_seen[before]  # the refined kind: pytorch-zip, keras, npz, ...
        if fmt == "pickle" and "joblib" in ctx.formats_seen[before:]:
            return "joblib"
        return fmt
    if fmt in _COMPRESSED:
        importlib.import_module("stoa.govern.scan.archives").scan_compressed(blob, ctx, fmt)
        # joblib's compressed files are one compressed pickle with inline arrays
        return f"joblib-{fmt}" if "joblib" in ctx.formats_seen[before:] else fmt
    if fmt in formats.DATA_ONLY or fmt == "text":
        if fmt in ("text", "json"):
            return _text_or_pickle(ctx, blob, fmt)
        return fmt
    if fmt == "maybe-pickle":
        return _binary_or_pickle(ctx, blob)
    ctx.add("unknown-format", "high", "no scanner recognises this format, so it cannot be "
            "shown to be safe", blob.label, reason="unknown-format")  # fmt: skip
    return "unknown"


def _speculate(ctx: Context, blob: Blob) -> tuple[Context, PickleMachine]:
    """Run the pickle machine on a copy of the context; the caller decides what counts."""
    trial = Context(policy=ctx.policy, budget=ctx.budget, depth=ctx.depth)
    trial.member_scanner = ctx.member_scanner
    machine = PickleMachine(trial, blob.stream, blob.size, blob.label)
    try:
        machine.scan(0, streams=None)
    except BudgetExceeded as exc:
        trial.add("budget", "high", str(exc), blob.label, reason="budget")
    return trial, machine


def _polyglot(ctx: Context, blob: Blob, fmt: str) -> None:
    """torch.load unpickles any file that is not a zip from byte 0, and pickle.load and
    joblib.load do the same: a GIF, GGUF or HDF5 file whose first bytes also form a
    pickle that calls something is a polyglot built to pass as the other format.

    A file that starts with a zip's local header is exempt: torch.load reads it as a
    zip (its ``_is_zipfile`` checks exactly those 4 bytes), and for pickle.load and
    joblib.load the "P" is a PERSID they refuse before anything else runs. Reading on
    from there only parses the archive's own bytes, and what it finds depends on the
    member names (torch names them after the file)."""
    if blob.head(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
        return
    trial, machine = _speculate(ctx, blob)
    critical = any(f.severity == "critical" for f in trial.findings)
    if not (machine.calls or machine.streams or critical):
        return
    ctx.findings.extend(f for f in trial.findings if f.reason != "parse-error")
    ctx.add("pickle-polyglot", "high", f"the file is a {fmt} file whose first bytes also load "
            "as a pickle that acts: torch.load, pickle.load and joblib.load would run it",
            blob.label)  # fmt: skip


def _text_or_pickle(ctx: Context, blob: Blob, fmt: str) -> str:
    """Protocol 0 pickles are ASCII text. A text file counts as a pickle when loading it
    would call something, finish a stream, or import a known-dangerous name: a word list
    that starts "cat\ndog\n" reads as GLOBAL cat.dog and then fails, calling nothing."""
    trial, machine = _speculate(ctx, blob)
    critical = any(f.severity == "critical" for f in trial.findings)
    if machine.calls or machine.streams or critical:
        ctx.findings.extend(trial.findings)
        return "pickle"
    return fmt


def _binary_or_pickle(ctx: Context, blob: Blob) -> str:
    """Binary data nothing else recognised: torch.load would try it as a pickle."""
    trial, machine = _speculate(ctx, blob)
    stopped = machine.streams > 0
    if machine.globals or stopped or any(f.reason == "malicious" for f in trial.findings):
        ctx.findings.extend(trial.findings)
        return "pickle"
    ctx.add("unknown-format", "high", "no scanner recognises this format, so it cannot be "
            "shown to be safe", blob.label, reason="unknown-format")  # fmt: skip
    return "unknown"


def _scan_member(ctx: Context, label: str, stream: BinaryIO, size: int) -> str:
    """What archive scanners call for every member: detect and scan within the budget."""
    role = ctx.member_roles.get(label)
    if role is not None:
        return role  # raw tensor storage and similar: read as bytes by its loader, never parsed
    return _scan_guarded(ctx, Blob(label, stream, size))


# -- folders -----------------------------------------------------------------------


def _scan_folder(folder: Path, ctx: Context, top: str) -> str:
    files: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if Path(root, d).is_symlink()]:
            files.append(Path(root, name))
            ctx.budget.add_member()
    kind = "savedmodel" if (folder / "saved_model.pb").is_file() else "folder"
    model_files = 0
    unknown: list[tuple[str, str, str, ScanFinding]] = []  # real path, label, rel, finding
    for file in files:
        rel = file.relative_to(folder).as_posix()
        label = f"{top}/{rel}" if top else rel
        if file.is_symlink():
            if not _follow_link(ctx, file, folder, label, rel):
                continue
        elif not file.is_file():
            ctx.parse_error(label, f"{rel} is not a regular file (a FIFO, socket or device), "
                            "so it cannot be read")  # fmt: skip
            continue
        if kind == "savedmodel" and (
            rel.startswith(("variables/", "assets/")) or rel.endswith(".pb")
        ):
            if rel == "saved_model.pb":
                model_files += 1
                with open(file, "rb") as stream:
                    _scan_guarded(ctx, Blob(label, stream, file.stat().st_size, file, folder),
                                  "savedmodel")  # fmt: skip
            continue
        if file.suffix == ".py":
            ctx.add("custom-code", "high", f"{rel} is Python source; loaders that trust remote "
                    "code run it", label)  # fmt: skip
            continue
        with open(file, "rb") as stream:
            _check_hash(ctx, stream, label)
            before = len(ctx.findings)
            fmt = _scan_guarded(ctx, Blob(label, stream, file.stat().st_size, file, folder))
        found = ctx.findings[before:]
        if len(found) == 1 and found[0].rule == "unknown-format":
            unknown.append((os.path.realpath(file), label, rel, found[0]))
        if fmt not in formats.DATA_ONLY:
            model_files += 1
        if file.name == "modules.json":
            _foreign_modules(ctx, file, label)
    _accept_external_data(ctx, folder, unknown)
    if model_files == 0:
        ctx.add("no-model-file", "medium", "the folder holds no model weights in a known format",
                top or ".", reason="unknown-format")  # fmt: skip
    return kind


def _accept_external_data(
    ctx: Context, folder: Path, unknown: list[tuple[str, str, str, ScanFinding]]
) -> None:
    """Files of no known format that an ONNX graph in the folder names as external data
    are tensor bytes: the runtime reads them raw, never as code. Only a file whose one
    finding was "unknown format" qualifies, so bytes that parse as a pickle, or fail to
    parse as what they claim to be, are still judged as that; a location that leaves the
    folder is never claimed (onnx_scan blocks it)."""
    for path, label, rel, finding in unknown:
        model = ctx.external_data.get(path)
        if model is None:
            continue
        ctx.findings.remove(finding)
        graph = model.relative_to(folder).as_posix()
        ctx.add("onnx-external-data", "info", f"{rel} holds external tensor data of {graph}: "
                "the ONNX runtime reads it as raw bytes, so it was accepted as data", label,
                reason="clean")  # fmt: skip


def _follow_link(ctx: Context, link: Path, root: Path, label: str, name: str) -> bool:
    """Report a symlink; True when its target's content may be scanned in its place.

    The rule is ``links.inspect_link``'s: only links to regular files are followed, as
    the blob store stores their target's bytes; the policy decides whether a target may
    lie outside ``root``.
    """
    found = inspect_link(link, root)
    if found.problem is not None:
        ctx.add("symlink-target", "high", found.says(name), label, reason="parse-error")
        return False
    if not found.follows(ctx.policy.symlinks_allow_outside_root):
        ctx.add("symlink-escape", "high", f"{found.says(name)}, outside the scanned folder, and "
                "the policy sets symlinks.allow_outside_root: false", label)  # fmt: skip
        return False
    where = "" if found.inside else ", outside the scanned folder"
    ctx.add("symlink", "info", f"{found.says(name)}{where}; its target was scanned", label,
            reason="clean")  # fmt: skip
    return True


def _foreign_modules(ctx: Context, file: Path, label: str) -> None:
    """sentence-transformers imports each module's ``type``: the gate's one check, as
    this scan's findings."""
    for finding in foreign_modules(file, label):
        if finding.code == "parse-error":
            ctx.parse_error(label, finding.message)
        else:
            ctx.add(finding.code, "high", finding.message, label)


# -- licences ------------------------------------------------------------------------


def _check_license(
    path: Path, ctx: Context, declared: str | None, report: FileReport, required: bool, label: str
) -> None:
    licenses = importlib.import_module("stoa.govern.licenses")
    info = licenses.detect_license(
        path,
        declared=declared,
        hints=ctx.license_hints,
        allow_outside_root=ctx.policy.symlinks_allow_outside_root,
    )
    report.license, report.license_source = info.spdx, info.source
    if info.spdx is None and not required:
        ctx.add("license-unknown", "info", "no licence was declared or found; pass one with "
                "--license to check it against the policy", label, reason="clean")  # fmt: skip
        return
    decision = licenses.license_decision(info.spdx, ctx.policy)
    what = info.spdx or "unknown"
    where = f" (from {info.source})" if info.spdx else ""
    for conflict in getattr(info, "conflicts", []) or []:
        # A declared licence adds information; it never clears what the file itself says.
        said = f"{conflict.source} says {conflict.spdx or conflict.raw}"
        if licenses.license_decision(conflict.spdx, ctx.policy) == "block":
            ctx.add("license-blocked", "high", f"licence {conflict.spdx} (from "
                    f"{conflict.source}) is blocked by the policy, whatever else is declared",
                    label, reason="license")  # fmt: skip
        else:
            ctx.add("license-conflict", "medium", f"licence sources disagree: {said}; a "
                    "person must decide which holds", label, reason="license")  # fmt: skip
    if decision == "block":
        ctx.add("license-blocked", "high", f"licence {what}{where} is blocked by the policy",
                label, reason="license")  # fmt: skip
    elif decision == "review":
        ctx.add("license-review", "medium", f"licence {what}{where} needs review under the policy",
                label, reason="license")  # fmt: skip


def zip_names(stream: BinaryIO) -> list[str]:
    """Member names from the central directory, or [] when Python's zipfile cannot read it."""
    try:
        stream.seek(0)
        with zipfile.ZipFile(stream) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return []


def member_label(parent: str, name: str) -> str:
    return f"{parent}!/{name}"
