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
_STORAGE = re.compile(r"^(?:[^/]+/)?(?:data|constants)/[^/]+$")
_TORCH_PICKLE = re.compile(r"^(?:[^/]+/)?(?:data|constants|attributes)\.pkl$")


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
        for name in names:
            if _STORAGE.match(name) and not name.endswith("serialization_id"):
                ctx.member_roles[member_label(blob.label, name)] = "tensor-storage"
    if kind == "torchscript":
        ctx.add("torchscript", "info", "TorchScript archive: its code runs in the TorchScript "
                "interpreter; its pickles are scanned", blob.label, reason="clean")  # fmt: skip
    if kind == "keras":
        importlib.import_module("stoa.govern.scan.keras_scan").scan_keras_zip(blob, ctx)
    if kind == "skops":
        importlib.import_module("stoa.govern.scan.skops_scan").scan_skops(blob, ctx)
    ctx.formats_seen.append(kind)
    importlib.import_module("stoa.govern.scan.archives").scan_zip(blob, ctx)


def scan_torch_legacy(blob: Blob, ctx: Context) -> None:
    """Five pickle streams, then raw storage bytes that torch reads without unpickling."""
    PickleMachine(ctx, blob.stream, blob.size, blob.label).scan(0, streams=_LEGACY_PICKLES)
