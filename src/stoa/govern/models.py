"""Model versions: flavor detection, the gate, and loading only what the gate allowed."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from stoa.core.blobs import Progress
from stoa.core.errors import InvalidInputError, RefusedError, StoaError
from stoa.govern.flavors import detect_flavor, flavor_for_path, get_flavor
from stoa.govern.gate import Gate, Verdict, run_gate
from stoa.govern.registry import Registry, check_version_input
from stoa.govern.types import VersionInfo

# An SPDX licence expression: identifiers joined by AND/OR/WITH, with parentheses.
_SPDX_TOKEN = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.+-]*|LicenseRef-[A-Za-z0-9.-]+|AND|OR|WITH)$")


#: Formats a lone file of which is data, never a model (a CSV is "text").
_NOT_A_MODEL = frozenset({"text", "json", "empty", "png", "jpeg", "gif"})


def check_license(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    tokens = value.replace("(", " ").replace(")", " ").split()
    if not tokens or len(value) > 128 or not all(_SPDX_TOKEN.match(t) for t in tokens):
        raise InvalidInputError(
            f"{value!r} is not an SPDX licence expression",
            field="license",
            fix="use an SPDX identifier such as 'MIT' or 'Apache-2.0'",
        )
    return value


def register_model(
    registry: Registry,
    gate: Gate,
    name: str,
    path: Path,
    *,
    actor: str,
    flavor: str | None = None,
    license: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    datasets: Iterable[str] = (),
    progress: Progress | None = None,
) -> VersionInfo:
    """Store an artifact, pass it through the gate, and record the version with its verdict."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist", field="path", fix="check the path")
    license = check_license(license)
    check_version_input(name, tags, metadata, description)
    if flavor is not None:
        get_flavor(flavor)
    verdict = run_gate(gate, path, license=license)
    # A version held for review gets its flavor too, so it loads once an admin approves it;
    # a blocked one is never loaded, and its content is not worth inspecting further.
    judged = verdict.status in ("allowed", "pending")
    detected = flavor_for_path(path, verdict.format) if judged else None
    if verdict.format in _NOT_A_MODEL and detected is None:
        raise InvalidInputError(
            f"{path.name} holds no model: it is {verdict.format} data",
            field="path",
            fix="register data with `stoa datasets register`, or give the model's file",
        )
    if flavor is not None and judged and flavor != detected:
        what = f"a {detected} save" if detected else f"a {verdict.format} artifact no flavor loads"
        raise InvalidInputError(
            f"the artifact is {what}, not {flavor}",
            field="flavor",
            fix=f"pass --flavor {detected} or leave it out" if detected else "leave --flavor out",
        )
    # What the gate blocked keeps its report and findings, never its bytes: a blocked
    # upload must not fill the store for good.
    if verdict.status == "blocked":
        stored = registry.blobs.describe_path(path)
    else:
        stored = registry.blobs.put_path(path, progress)
    status, findings = _reviewed(registry, stored.sha256, verdict)
    if spec is None and detected is not None:
        # What a flavor reads off a stored artifact (an LLM's architecture, context length,
        # whether it has a chat template) is worth recording with the version.
        describe = getattr(get_flavor(detected), "describe", None)
        spec = describe(path) if callable(describe) else None
    parents = [("dataset", d) for d in datasets]
    if run_id:
        parents.append(("run", run_id))
    info = registry.add_version(
        "model",
        name,
        stored,
        status=status,
        actor=actor,
        fmt=verdict.format,
        flavor=flavor or detected,
        license=license or verdict.license,
        description=description,
        tags=tags,
        metadata=metadata,
        spec=spec,
        findings=findings,
        gate=verdict.gate,
        parents=parents,
        scan=verdict.report,
    )
    return info.model_copy(update={"scan": verdict.report}) if info.created else info


def _reviewed(
    registry: Registry, sha256: str, verdict: Verdict
) -> tuple[str, list[dict[str, Any]]]:
    """The status and findings once an admin's earlier decision on these bytes applies.

    A rejection blocks the same content under any name or declared licence; an
    approval releases it from review (never from a scan that blocked it outright).
    """
    findings = [f.to_dict() for f in verdict.findings]
    review = registry.content_review("model", sha256)
    if review is None:
        return verdict.status, findings
    said = f" ({review.note})" if review.note else ""
    when = review.decided_at.strftime("%Y-%m-%d %H:%M UTC")
    if review.decision == "rejected":
        findings.append({"code": "license-rejected", "severity": "high", "reason": "license",
                         "message": f"{review.decided_by} rejected these bytes as {review.ref} "
                                    f"on {when}{said}"})  # fmt: skip
        return "blocked", findings
    if verdict.status == "pending":
        findings.append({"code": "license-approved", "severity": "info", "reason": "clean",
                         "message": f"{review.decided_by} approved these bytes as {review.ref} "
                                    f"on {when}{said}"})  # fmt: skip
        return "allowed", findings
    return verdict.status, findings


@contextlib.contextmanager
def saved(model: Any) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A live model saved in its flavor's safe format in a temporary folder, and the
    register_model arguments (flavor, spec) that describe it."""
    flavor = detect_flavor(model)
    with tempfile.TemporaryDirectory(prefix="stoa-save-") as tmp:
        path, spec = flavor.save(model, Path(tmp))
        yield path, {"flavor": flavor.name, "spec": spec}


def load_model(registry: Registry, ref: str) -> Any:
    """Load a model version; anything the gate did not allow is refused."""
    info = registry.get("model", ref)
    ensure_loadable(info)
    with registry.materialize("model", ref) as (_, path):
        return load_artifact(info, path)


def load_artifact(info: VersionInfo, path: Path) -> Any:
    """Load a verified local copy; a loader failure is reported, never raised raw."""
    try:
        return get_flavor(info.flavor).load(path, info.spec)
    except StoaError:
        raise
    except Exception as exc:
        raise RefusedError(
            f"{info.ref} could not be loaded as {info.flavor}: {type(exc).__name__}: {exc}",
            field="flavor",
            fix="check that the framework version that saved it is installed",
        ) from exc


def ensure_loadable(info: VersionInfo) -> None:
    ensure_allowed(info)
    if info.flavor is None:
        raise RefusedError(
            f"{info.ref} has no flavor, so Stoa does not know how to load it",
            field="flavor",
            fix="download the artifact and load it yourself, or register it with --flavor",
        )


def ensure_allowed(info: VersionInfo) -> None:
    """Only what the gate allowed may be loaded or leave the store."""
    if info.status != "allowed":
        reasons = "; ".join(f.get("message", "") for f in info.findings) or info.status
        fix = (
            f"an admin can release it: stoa models approve {info.ref} --note WHY"
            if info.status == "pending"
            else "register the model in an allowed format, or load an allowed version"
        )
        raise RefusedError(
            f"{info.ref} is {info.status} and will not be loaded: {reasons}", field="ref", fix=fix
        )
