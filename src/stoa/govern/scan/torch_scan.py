"""PyTorch checkpoints: the zip format, TorchScript archives and the legacy format.

Zips are classified by their member names so that tensor storages, which
``torch.load`` reads as raw bytes, are not mistaken for unknown formats; every
other member is scanned by content. Keras and npz zips take the same path.
"""

from __future__ import annotations

import importlib
import re

from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.pickle_vm import PickleMachine

# torch.save's legacy stream: magic number, protocol, sys_info, the object, storage keys.
_LEGACY_PICKLES = 5
_TORCH_PICKLE = re.compile(r"^(?:[^/]+/)?(?:data|constants|attributes)\.pkl$")


def storage_members(names: list[str]) -> list[str]:
    """The members torch reads as raw tensor bytes: ``<archive>/data/<key>`` and, for
    TorchScript, ``<archive>/constants/<key>``. torch names the archive after the first
    central-directory entry's folder, so a checkpoint saved as ``data.pt`` has the archive
    ``data/`` and its pickle ``data/data.pkl`` is no storage: anything ending in .pkl is
    scanned whatever its folder."""
    if not names or "/" not in names[0]:
        return []
    prefix = re.escape(names[0].split("/", 1)[0])
    storage = re.compile(rf"^{prefix}/(?:data|constants)/[^/]+$")
    return [n for n in names if storage.match(n) and not n.endswith((".pkl", "serialization_id"))]


def zip_kind(names: list[str]) -> str:
    if any(_TORCH_PICKLE.match(n) for n in names):
        return "torchscript" if any("/code/" in f"/{n}" for n in names) else "pytorch-zip"
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return "keras"
    if "schema.json" in names:
        return "skops"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def scan_zip_container(blob: Blob, ctx: Context) -> None:
    from stoa.govern.scan.scanner import member_label, zip_names

    names = zip_names(blob.stream)
    kind = zip_kind(names)
    if kind in ("pytorch-zip", "torchscript"):
        for name in storage_members(names):
            ctx.member_roles[member_label(blob.label, name)] = "tensor-storage"
    if kind == "torchscript":
        _torchscript(blob, ctx)
    if kind == "keras":
        importlib.import_module("stoa.govern.scan.keras_scan").scan_keras_zip(blob, ctx)
    if kind == "skops":
        importlib.import_module("stoa.govern.scan.skops_scan").scan_skops(blob, ctx)
    ctx.formats_seen.append(kind)
    previous = ctx.torchscript_names
    # An allowed TorchScript archive's pickles name its own compiled classes (__torch__.*).
    ctx.torchscript_names = kind == "torchscript" and ctx.policy.torchscript_allow
    try:
        importlib.import_module("stoa.govern.scan.archives").scan_zip(blob, ctx)
    finally:
        ctx.torchscript_names = previous


def _torchscript(blob: Blob, ctx: Context) -> None:
    """TorchScript is a program, run by torch.jit.load (``__setstate__`` included) with ops
    such as ``as_strided`` that reach raw memory. PyTorch's SECURITY.md says to treat it as
    code from an unknown source, so it blocks unless the policy says otherwise."""
    if ctx.policy.torchscript_allow:
        ctx.add("torchscript", "info", "TorchScript archive allowed by the policy; its pickles "
                "are scanned, its code is not", blob.label, reason="clean")  # fmt: skip
        return
    ctx.add("torchscript-code", "high", "TorchScript archive: it carries a program that "
            "torch.jit.load runs, which no scan can show to be safe; export the weights "
            "(state_dict, safetensors) or set torchscript.allow in the policy",
            blob.label)  # fmt: skip


_LEGACY_TAR = {"sys_info", "pickle", "storages"}


def scan_tar_container(blob: Blob, ctx: Context) -> None:
    """Tars are scanned member by member; torch's pre-0.4 tar checkpoint is also refused.

    Its ``storages`` and ``tensors`` members interleave pickles with raw tensor bytes whose
    length torch derives from each storage's type, so bytes the scanner would read as one
    opcode stream are read by torch as several: they cannot be shown safe. Every member is
    still scanned, so a payload in them is named.
    """
    import tarfile

    try:
        blob.stream.seek(0)
        with tarfile.open(fileobj=blob.stream, mode="r:") as archive:
            names = set(archive.getnames()[: ctx.policy.limits.max_members])
    except (tarfile.TarError, OSError, ValueError):
        names = set()
    if names >= _LEGACY_TAR:
        ctx.parse_error(blob.label, "torch's legacy tar checkpoint (before torch 0.4) mixes "
                        "pickles with raw tensor bytes in one member and cannot be shown safe; "
                        "load it once where you trust it and torch.save it again")  # fmt: skip
    importlib.import_module("stoa.govern.scan.archives").scan_tar(blob, ctx)


def scan_torch_legacy(blob: Blob, ctx: Context) -> None:
    """Five pickle streams, then raw storage bytes that torch reads without unpickling."""
    PickleMachine(ctx, blob.stream, blob.size, blob.label).scan(0, streams=_LEGACY_PICKLES)
