"""Scan policy: the allowlists, licence rules and budgets a scan applies.

The default policy ships as ``default_policy.yaml`` next to this module and is
version-controlled with the code. A user policy file extends it (unless it says
``extends: none``): it can add allowlist entries, change licence decisions,
add known-bad hashes and change limits, send unknown pickle imports to review, and
refuse symlinks that leave the scanned folder. It can never remove the deny rules
that raise severity, because those never let anything through in the first place.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from stoa.core.errors import InvalidInputError, yaml_problem
from stoa.govern.scan.budget import Limits

Decision = Literal["allow", "review", "block"]
DECISIONS = ("allow", "review", "block")
UnknownDecision = Literal["review", "block"]
UNKNOWN_DECISIONS = ("review", "block")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Policy:
    version: str
    # Exact (module, qualname) pairs a pickle may import.
    pickle_allow: frozenset[tuple[str, str]] = frozenset()
    # Globals whose instances may receive SETITEM(S)/APPEND(S)/ADDITEMS besides builtins.
    pickle_containers: frozenset[tuple[str, str]] = frozenset()
    # Exact Keras module names a config may point at (``module`` keys).
    keras_modules: frozenset[str] = frozenset()
    # TensorFlow ops a SavedModel may contain.
    savedmodel_ops: frozenset[str] = frozenset()
    # ONNX operator domains a model may use without declaring them as custom.
    onnx_domains: frozenset[str] = frozenset()
    # What a pickle import on neither the allowlist nor the denylist gets: both block the
    # file (reason ``unknown-global``); "review" names it as waiting for a person.
    unknown_globals: UnknownDecision = "block"
    # TorchScript archives carry programs; PyTorch says to treat them as untrusted code.
    torchscript_allow: bool = False
    # Symlinks to regular files are followed and reported; False blocks those whose target
    # lies outside the scanned folder (for a single file: the folder holding the link).
    symlinks_allow_outside_root: bool = True
    # SPDX id (or LicenseRef-…) -> decision; anything absent gets license_default.
    licenses: dict[str, Decision] = field(default_factory=dict)
    license_default: Decision = "review"
    deny_sha256: frozenset[str] = frozenset()
    limits: Limits = field(default_factory=Limits)


# libyaml's parser when it is built in: the default policy is ~1,000 lines.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def default_policy() -> Policy:
    """Parsed once per process; Policy is immutable, so every caller can share it."""
    text = resources.files("stoa.govern.scan").joinpath("default_policy.yaml").read_text()
    return _build(yaml.load(text, Loader=_Loader), None, "default policy")


def load_policy(path: str | Path | None) -> Policy:
    """The default policy, extended by the file at ``path`` when one is given."""
    if path is None:
        return default_policy()
    path = Path(path)
    try:
        doc = yaml.load(path.read_text(), Loader=_Loader)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read policy file {path}: {exc.strerror}", field="policy"
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            f"policy file {path} is not valid YAML: {yaml_problem(exc)}", field="policy"
        ) from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"policy file {path} must be a YAML mapping", field="policy")
    extends = doc.get("extends", "default")
    if extends not in ("default", "none"):
        raise InvalidInputError(
            f"extends must be 'default' or 'none', not {extends!r}", field="policy.extends"
        )
    base = default_policy() if extends == "default" else None
    return _build(doc, base, str(path))


def _build(doc: dict[str, Any], base: Policy | None, where: str) -> Policy:
    known = {"version", "extends", "pickle", "keras", "savedmodel", "onnx", "torchscript",
             "symlinks", "licenses", "deny_sha256", "limits"}  # fmt: skip
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown key(s) {', '.join(unknown)}",
            field="policy",
            fix=f"use only {', '.join(sorted(known))}",
        )
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise InvalidInputError(f"{where}: 'version' must be a non-empty string", field="policy")
    pickle = _mapping(doc.get("pickle", {}), f"{where}: pickle")
    symlinks = _mapping(doc.get("symlinks", {}), f"{where}: symlinks")
    stray = sorted(map(str, set(symlinks) - {"allow_outside_root"}))
    if stray:  # a misspelt strict setting must not pass for one
        raise InvalidInputError(
            f"{where}: unknown key(s) under symlinks: {', '.join(stray)}",
            field="policy",
            fix="use symlinks: {allow_outside_root: true|false}",
        )
    licenses = _mapping(doc.get("licenses", {}), f"{where}: licenses")
    policy = base or Policy(version="")
    decisions = dict(policy.licenses)
    for decision in DECISIONS:
        for lic in _strings(licenses.get(decision, []), f"{where}: licenses.{decision}"):
            decisions[lic] = decision
    default = licenses.get("default", policy.license_default)
    if default not in DECISIONS:
        raise InvalidInputError(
            f"{where}: licenses.default must be one of {', '.join(DECISIONS)}", field="policy"
        )
    unknown_globals = pickle.get("unknown_globals", policy.unknown_globals)
    if unknown_globals not in UNKNOWN_DECISIONS:
        raise InvalidInputError(
            f"{where}: pickle.unknown_globals must be one of {', '.join(UNKNOWN_DECISIONS)}",
            field="policy",
            fix="list the names you trust under pickle.allow instead",
        )
    return replace(
        policy,
        version=version if base is None else f"{base.version}+{version}",
        pickle_allow=policy.pickle_allow
        | _pairs(pickle.get("allow", {}), f"{where}: pickle.allow"),
        pickle_containers=policy.pickle_containers
        | _pairs(pickle.get("containers", {}), f"{where}: pickle.containers"),
        keras_modules=policy.keras_modules
        | _names(_mapping(doc.get("keras", {}), where).get("modules", []), f"{where}: keras"),
        savedmodel_ops=policy.savedmodel_ops
        | frozenset(_strings(_mapping(doc.get("savedmodel", {}), where).get("ops", []), where)),
        onnx_domains=policy.onnx_domains
        | frozenset(_strings(_mapping(doc.get("onnx", {}), where).get("domains", []), where)),
        torchscript_allow=_flag(
            _mapping(doc.get("torchscript", {}), f"{where}: torchscript"),
            "allow",
            policy.torchscript_allow,
            f"{where}: torchscript.allow",
        ),
        unknown_globals=unknown_globals,
        symlinks_allow_outside_root=_flag(
            symlinks,
            "allow_outside_root",
            policy.symlinks_allow_outside_root,
            f"{where}: symlinks.allow_outside_root",
        ),
        licenses=decisions,
        license_default=default,
        deny_sha256=policy.deny_sha256 | _hashes(doc.get("deny_sha256", []), where),
        limits=_limits(policy.limits, _mapping(doc.get("limits", {}), f"{where}: limits"), where),
    )


def _flag(doc: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{where} must be true or false", field="policy")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be a mapping", field="policy")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"{where} must be a list of strings", field="policy")
    return value


def _names(value: Any, where: str) -> frozenset[str]:
    names = _strings(value, where)
    bad = [n for n in names if not _IDENT.match(n)]
    if bad:
        raise InvalidInputError(
            f"{where}: {bad[0]!r} is not a dotted Python name (wildcards are not allowed)",
            field="policy",
        )
    return frozenset(names)


def _pairs(value: Any, where: str) -> frozenset[tuple[str, str]]:
    """``{module: [qualname, ...]}``: exact names only, no wildcards or prefixes."""
    pairs: set[tuple[str, str]] = set()
    for module, names in _mapping(value, where).items():
        for qualname in _names(names, f"{where}.{module}"):
            if not _IDENT.match(str(module)):
                raise InvalidInputError(
                    f"{where}: {module!r} is not a dotted module name (wildcards are not allowed)",
                    field="policy",
                )
            pairs.add((str(module), qualname))
    return frozenset(pairs)


def _hashes(value: Any, where: str) -> frozenset[str]:
    hashes = [h.lower() for h in _strings(value, f"{where}: deny_sha256")]
    bad = [h for h in hashes if not _SHA256.match(h)]
    if bad:
        raise InvalidInputError(f"{where}: {bad[0]!r} is not a sha256 hex digest", field="policy")
    return frozenset(hashes)


def _limits(base: Limits, overrides: dict[str, Any], where: str) -> Limits:
    names = {f.name for f in fields(Limits)}
    for key, value in overrides.items():
        if key not in names:
            raise InvalidInputError(
                f"{where}: unknown limit {key!r}",
                field="policy",
                fix=f"use one of {', '.join(sorted(names))}",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidInputError(
                f"{where}: limit {key} must be a positive number", field="policy"
            )
    return replace(base, **overrides)
