"""Curated pulls: bring a third-party model in through policy, scan and registry, in that order.

1. Policy first: a licence the policy blocks, or a file whose hash is on the
   deny list, is refused before any model byte is copied.
2. Download into a private staging folder, never the blob store.
3. Scan with the licence required (an unknown licence gets the policy's default).
4. Register: the gate's verdict is recorded; a blocked model is stored only as
   blocked, so it can never be loaded or downloaded from Stoa.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stoa.core.errors import InvalidInputError, RefusedError
from stoa.govern import licenses
from stoa.govern.models import check_license, register_model
from stoa.govern.registry import Registry
from stoa.govern.scan.links import inspect_link
from stoa.govern.scan.policy import Policy
from stoa.govern.scan.scan_gate import ScanGate
from stoa.govern.types import VersionInfo

_HUB_ID = re.compile(r"^(?:hf://)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?$")
_CARD_NAMES = ("README.md", "readme.md", "README.MD")


def pull_model(
    registry: Registry,
    policy: Policy,
    source: str,
    name: str,
    *,
    actor: str,
    license: str | None = None,
    description: str = "",
) -> VersionInfo:
    """Pull ``source`` (a local path, an fsspec URL, or ``hf://org/model[@rev]``) as ``name``."""
    license = check_license(license)
    with tempfile.TemporaryDirectory(prefix="stoa-pull-") as tmp:
        fetched = fetch(policy, source, license, Path(tmp) / "artifact")
        gate = ScanGate(policy, require_license=True)
        return register_model(
            registry,
            gate,
            name,
            fetched,
            actor=actor,
            license=license,
            description=description,
            metadata={"source": source},
        )


def fetch(policy: Policy, source: str, license: str | None, staging: Path) -> Path:
    """Steps 1 and 2: the policy checks that need no model bytes, then the download."""
    if Path(source).exists():
        _precheck(policy, license, _local_card(policy, Path(source)), source)
        _check_hashes(policy, Path(source))
        fetched = _copy_local(policy, Path(source), staging)
    elif source.startswith("hf://") or (_HUB_ID.match(source) and "://" not in source):
        fetched = _pull_hub(policy, source, license, staging)
    elif "://" in source:
        fetched = _pull_fsspec(policy, source, license, staging)
    else:
        raise InvalidInputError(
            f"{source} is neither an existing path, a URL nor a Hub id",
            field="source",
            fix="pass a path, an fsspec URL such as s3://bucket/model, or hf://org/model",
        )
    _check_hashes(policy, fetched)  # the bytes that arrived, not the ones announced
    return fetched


def _precheck(policy: Policy, declared: str | None, card: str | None, source: str) -> None:
    """Refuse a licence the policy blocks before anything is downloaded."""
    claim = licenses.license_from_model_card(card) if card else None
    spdx = declared or (claim.spdx if claim else None)
    if spdx and licenses.license_decision(spdx, policy) == "block":
        raise RefusedError(
            f"{source} is licensed {spdx}, which the policy blocks; nothing was downloaded",
            field="source",
            fix="choose another model, or change the policy's licenses.block list",
        )


def _check_hashes(policy: Policy, path: Path) -> None:
    if not policy.deny_sha256:
        return
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() in policy.deny_sha256:
            raise RefusedError(
                f"{file.name} has sha256 {digest.hexdigest()}, which the policy's deny list "
                "names as known-bad",
                field="source",
                fix="do not use this model",
            )


def _local_card(policy: Policy, path: Path) -> str | None:
    """The model card the scan will read, found by the same rules (links included)."""
    if not path.is_dir():
        return None
    return licenses.read_model_card(path, allow_outside_root=policy.symlinks_allow_outside_root)


def _copy_local(policy: Policy, source: Path, staging: Path) -> Path:
    """Copy a local file or folder into ``staging``, links judged by the scanner's rule.

    A link copied as a link would dangle there (Hugging Face's cache links every snapshot
    file to ``../../blobs/``), so a link to a regular file becomes a copy of its target,
    as the scanner would scan it. A link to a folder inside the source stays a link,
    pointed inside ``staging``, for the scan to judge. Anything else is refused, naming it.
    """
    if not source.is_dir():
        staging.mkdir()
        target = staging / source.name
        shutil.copyfile(source, target)
        return target
    for root, dirs, names in os.walk(source):
        here = Path(root)
        into = staging / here.relative_to(source)
        into.mkdir()
        for name in sorted(names) + sorted(d for d in dirs if (here / d).is_symlink()):
            _copy_entry(policy, source, here / name, into / name)
    return staging


def _copy_entry(policy: Policy, source: Path, path: Path, copy: Path) -> None:
    rel = path.relative_to(source).as_posix()
    if not path.is_symlink():
        if not path.is_file():
            raise _uncopyable(source, f"{rel} is not a regular file (a FIFO, socket or device)")
        shutil.copyfile(path, copy)
        return
    link = inspect_link(path, source)
    if link.target is not None and link.follows(policy.symlinks_allow_outside_root):
        shutil.copyfile(link.target, copy)
    elif link.kind == "file":
        raise RefusedError(
            f"{source}: {link.says(rel)}, outside the source folder, and the policy sets "
            "symlinks.allow_outside_root: false; nothing was pulled",
            field="source",
            fix="copy the folder with its links resolved (cp -rL), or change the policy",
        )
    elif link.target is not None and link.kind == "folder" and link.inside:
        pointer = os.path.relpath(link.target, os.path.realpath(path.parent))
        os.symlink(pointer, copy, target_is_directory=True)
    else:
        leaves = "" if link.inside or link.kind == "broken" else ", and it leaves the source folder"
        raise _uncopyable(source, f"{link.says(rel)}{leaves}")


def _uncopyable(source: Path, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{source}: {what}; nothing was pulled",
        field="source",
        fix="remove it, or restore what the link points at, and pull again",
    )


def _pull_fsspec(policy: Policy, url: str, declared: str | None, staging: Path) -> Path:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        is_dir = fs.isdir(root)
        card = None
        if is_dir:
            for name in _CARD_NAMES:
                if fs.isfile(f"{root}/{name}"):
                    with fs.open(f"{root}/{name}", "rb") as handle:
                        card = handle.read(licenses.MAX_CARD_BYTES).decode("utf-8", "replace")
                    break
        _precheck(policy, declared, card, url)
        if is_dir:
            fs.get(root, str(staging), recursive=True)
            return staging
        staging.mkdir()
        target = staging / Path(root).name
        fs.get(root, str(target))
        return target
    except (FileNotFoundError, ValueError, ImportError, OSError) as exc:
        raise InvalidInputError(
            f"cannot read {url}: {type(exc).__name__}: {exc}",
            field="source",
            fix="check the URL and that its filesystem package is installed",
        ) from None


def _pull_hub(policy: Policy, source: str, declared: str | None, staging: Path) -> Path:
    match = _HUB_ID.match(source)
    if not match:
        raise InvalidInputError(f"{source} is not a Hub id", field="source", fix="use org/model")
    repo, revision = match.group(1), match.group(2)
    try:
        from huggingface_hub import HfApi, snapshot_download

        info: Any = HfApi().model_info(repo, revision=revision, files_metadata=True)
        card_license = (getattr(info, "card_data", None) or {}).get("license")
        spdx = declared or (licenses.normalize_license(str(card_license)) if card_license else None)
        _precheck(policy, spdx, None, source)
        announced = {
            getattr(s.lfs, "sha256", None) for s in info.siblings or [] if getattr(s, "lfs", None)
        }
        bad = announced & policy.deny_sha256
        if bad:
            raise RefusedError(
                f"{source} holds a file with sha256 {sorted(bad)[0]}, on the policy's deny list",
                field="source",
                fix="do not use this model",
            )
        snapshot_download(repo, revision=revision, local_dir=str(staging))
        return staging
    except (RefusedError, InvalidInputError):
        raise
    except Exception as exc:  # network down, repo missing, gated: all say what happened
        raise InvalidInputError(
            f"cannot pull {repo} from the Hugging Face Hub: {type(exc).__name__}: {exc}",
            field="source",
            fix="check the id and the network, or download it and pull the local folder",
        ) from None
