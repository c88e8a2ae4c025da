"""The control plane of endpoints: create, list, show, change traffic, archive.

An endpoint's variants and options are stored as numbered, immutable configs; a change
writes the next one and moves the endpoint's ``current`` number. Serving processes read
that number now and then (``CONFIG_TTL_S``), so a traffic change reaches every worker
within a second or two, without a restart. Each variant's reference is resolved when
the config is written (``support@prod`` is stored as ``support@3`` beside what was
asked), so a config says exactly what ran, and moving an alias later changes nothing
until someone writes a new config.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from stoa.core.db import Database
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from stoa.core.names import validate_name
from stoa.core.schema import AuditEvent, Endpoint, EndpointConfig, utcnow
from stoa.govern.models import ensure_allowed
from stoa.govern.registry import Registry
from stoa.serve.traffic import Variant, check_variants

#: Serving options an endpoint may set, with their defaults and bounds.
OPTION_BOUNDS: dict[str, tuple[float, float, float]] = {
    # name: (default, lowest, highest)
    "max_batch_size": (32, 1, 1024),
    "max_wait_ms": (0.0, 0.0, 1000.0),
    "timeout_s": (30.0, 0.01, 3600.0),
    "shadow_queue": (256, 0, 100_000),
}
FLAG_OPTIONS = {"log_inputs": True, "log_traces": True}


class VariantInfo(BaseModel):
    name: str
    target: str
    requested: str
    weight: float
    share: float
    mode: str
    sample: float
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ConfigInfo(BaseModel):
    version: int
    variants: list[VariantInfo]
    options: dict[str, Any]
    note: str
    created_at: datetime
    created_by: str


class EndpointInfo(BaseModel):
    name: str
    description: str
    version: int
    variants: list[VariantInfo]
    options: dict[str, Any]
    archived: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    history: list[ConfigInfo] = Field(default_factory=list)


def check_options(options: Mapping[str, Any] | None, base: Mapping[str, Any] | None = None) -> dict:
    """Fill defaults and refuse unknown names and out-of-range values."""
    merged: dict[str, Any] = {name: spec[0] for name, spec in OPTION_BOUNDS.items()}
    merged.update(FLAG_OPTIONS)
    merged.update(base or {})
    for name, value in (options or {}).items():
        if name in FLAG_OPTIONS:
            if not isinstance(value, bool):
                raise InvalidInputError(
                    f"option {name} must be true or false, not {value!r}", field=f"options.{name}"
                )
            merged[name] = value
            continue
        if name not in OPTION_BOUNDS:
            known = ", ".join([*OPTION_BOUNDS, *FLAG_OPTIONS])
            raise InvalidInputError(
                f"unknown option {name!r}", field="options", fix=f"use one of {known}"
            )
        _, low, high = OPTION_BOUNDS[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise InvalidInputError(
                f"option {name} must be a number from {low:g} to {high:g}, not {value!r}",
                field=f"options.{name}",
            )
        merged[name] = int(value) if isinstance(OPTION_BOUNDS[name][0], int) else float(value)
    return merged


class EndpointStore:
    """Endpoints and their configs in the metadata database."""

    def __init__(self, db: Database, registry: Registry):
        self.db = db
        self.registry = registry

    # -- writing ----------------------------------------------------------------------

    def create(
        self,
        name: str,
        variants: Sequence[Variant],
        *,
        options: Mapping[str, Any] | None = None,
        description: str = "",
        actor: str = "",
    ) -> EndpointInfo:
        validate_name(name, "name")
        stored = self._resolve(variants)
        merged = check_options(options)
        with self.db.write() as session:
            taken = session.scalar(select(Endpoint).where(Endpoint.name == name))
            if taken is not None:
                state = "an archived" if taken.archived_at else "an"
                raise ConflictError(
                    f"{state} endpoint named {name!r} exists",
                    field="name",
                    fix="choose another name, or change its traffic with set-traffic",
                )
            endpoint = Endpoint(
                name=name,
                description=description,
                salt=secrets.token_hex(8),
                current=1,
                created_by=actor,
            )
            session.add(endpoint)
            session.flush()
            session.add(
                EndpointConfig(
                    endpoint_id=endpoint.id,
                    version=1,
                    variants=stored,
                    options=merged,
                    note="created",
                    created_by=actor,
                )
            )
            _audit(session, actor, "endpoint.created", name, {"variants": stored})
        return self.show(name)

    def set_traffic(
        self,
        name: str,
        *,
        weights: Mapping[str, float] | None = None,
        variants: Sequence[Variant] | None = None,
        options: Mapping[str, Any] | None = None,
        note: str = "",
        actor: str = "",
    ) -> EndpointInfo:
        """The next config: new ``weights`` for named variants, or a whole new set of
        ``variants``, and/or changed ``options``. Units stay on their variant unless the
        weights move them (docs/serving.md, minimal movement)."""
        if weights is None and variants is None and options is None:
            raise InvalidInputError(
                "nothing to change", field="weights", fix="give weights, variants or options"
            )
        if weights is not None and variants is not None:
            raise InvalidInputError(
                "give new weights or a new set of variants, not both", field="variants"
            )
        with self.db.write() as session:
            endpoint = self._row(session, name, for_update=True)
            if endpoint.archived_at is not None:
                raise ConflictError(
                    f"endpoint {name!r} is archived", field="name", fix="create a new endpoint"
                )
            current = self._config(session, endpoint.id, endpoint.current)
            stored = list(current.variants)
            if variants is not None:
                stored = self._resolve(variants)
            if weights is not None:
                stored = _reweighted(stored, weights)
            merged = check_options(options, base=current.options)
            if stored == current.variants and merged == current.options:
                raise InvalidInputError(
                    "that is the current configuration",
                    field="weights",
                    fix=f"see `stoa endpoints show {name}`",
                )
            endpoint.current += 1
            session.add(
                EndpointConfig(
                    endpoint_id=endpoint.id,
                    version=endpoint.current,
                    variants=stored,
                    options=merged,
                    note=note,
                    created_by=actor,
                )
            )
            _audit(
                session,
                actor,
                "endpoint.traffic",
                name,
                {"version": endpoint.current, "weights": _weights(stored)},
            )
        return self.show(name)

    def archive(self, name: str, *, actor: str = "") -> EndpointInfo:
        """Stop serving ``name``; its configs and logbook stay readable."""
        with self.db.write() as session:
            endpoint = self._row(session, name, for_update=True)
            if endpoint.archived_at is None:
                endpoint.archived_at = utcnow()
                _audit(session, actor, "endpoint.archived", name, {})
        return self.show(name)

    # -- reading ----------------------------------------------------------------------

    def show(self, name: str, *, history: bool = True) -> EndpointInfo:
        with self.db.read() as session:
            endpoint = self._row(session, name)
            configs = session.scalars(
                select(EndpointConfig)
                .where(EndpointConfig.endpoint_id == endpoint.id)
                .order_by(EndpointConfig.version.desc())
            ).all()
            return _info(endpoint, configs if history else configs[:1], history)

    def list(self, *, archived: bool = False) -> list[EndpointInfo]:
        with self.db.read() as session:
            query = select(Endpoint).order_by(Endpoint.name)
            if not archived:
                query = query.where(Endpoint.archived_at.is_(None))
            endpoints = session.scalars(query).all()
            out = []
            for endpoint in endpoints:
                config = self._config(session, endpoint.id, endpoint.current)
                out.append(_info(endpoint, [config], False))
            return out

    def current_version(self, name: str) -> tuple[int, bool] | None:
        """(config number, archived) in one cheap query; None when there is no such name."""
        with self.db.read() as session:
            row = session.execute(
                select(Endpoint.current, Endpoint.archived_at).where(Endpoint.name == name)
            ).first()
        return None if row is None else (row[0], row[1] is not None)

    def serving(self, name: str) -> tuple[str, int, list[Variant], dict[str, Any]]:
        """What a serving process needs: salt, config number, variants, options."""
        with self.db.read() as session:
            endpoint = self._row(session, name)
            if endpoint.archived_at is not None:
                raise NotFoundError(
                    f"endpoint {name!r} is archived",
                    field="endpoint",
                    fix="send traffic to an endpoint that `stoa endpoints list` shows",
                )
            config = self._config(session, endpoint.id, endpoint.current)
            variants = [_variant(v) for v in config.variants]
            return endpoint.salt, config.version, variants, dict(config.options)

    def count(self) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Endpoint)) or 0)

    # -- helpers ----------------------------------------------------------------------

    def _resolve(self, variants: Sequence[Variant]) -> list[dict[str, Any]]:
        check_variants(list(variants))
        stored = []
        for variant in variants:
            kind, ref = split_target(variant.target)
            info = self.registry.get(kind, ref)
            if kind == "model":
                ensure_allowed(info)
            entry = variant.to_dict()
            entry["requested"] = variant.target
            entry["target"] = f"{kind}:{info.ref}"
            stored.append(entry)
        return stored

    @staticmethod
    def _row(session: Any, name: str, *, for_update: bool = False) -> Endpoint:
        query = select(Endpoint).where(Endpoint.name == name)
        if for_update:
            query = query.with_for_update()
        endpoint = session.scalar(query)
        if endpoint is None:
            raise NotFoundError(
                f"no endpoint named {name!r}",
                field="name",
                fix="see `stoa endpoints list`, or create it with `stoa endpoints create`",
            )
        return endpoint

    @staticmethod
    def _config(session: Any, endpoint_id: int, version: int) -> EndpointConfig:
        return session.scalars(
            select(EndpointConfig).where(
                EndpointConfig.endpoint_id == endpoint_id, EndpointConfig.version == version
            )
        ).one()


def split_target(target: str) -> tuple[str, str]:
    """``solution:support@2`` -> ("solution", "support@2"); no prefix means a solution."""
    kind, sep, ref = target.partition(":")
    if not sep:
        return "solution", target
    if kind not in ("solution", "model"):
        raise InvalidInputError(
            f"unknown target kind {kind!r} in {target!r}",
            field="variant",
            fix="write solution:NAME@VERSION or model:NAME@VERSION",
        )
    return kind, ref


def _variant(entry: Mapping[str, Any]) -> Variant:
    return Variant.from_dict({k: v for k, v in entry.items() if k != "requested"})


def _reweighted(stored: list[dict[str, Any]], weights: Mapping[str, float]) -> list[dict]:
    names = {v["name"] for v in stored}
    unknown = sorted(set(weights) - names)
    if unknown:
        raise InvalidInputError(
            f"no variant named {', '.join(map(repr, unknown))}",
            field="weights",
            fix=f"the variants are {', '.join(sorted(names))}",
        )
    out = []
    for entry in stored:
        entry = dict(entry)
        if entry["name"] in weights:
            weight = weights[entry["name"]]
            if entry["mode"] == "shadow":
                if not 0 < weight <= 100:
                    raise InvalidInputError(
                        f"shadow {entry['name']} mirrors a percent of requests, from 0 to "
                        f"100, not {weight}",
                        field="weights",
                    )
                entry["sample"] = weight / 100
            else:
                entry["weight"] = float(weight)
        out.append(entry)
    check_variants([_variant(v) for v in out])
    return out


def _weights(stored: list[dict[str, Any]]) -> dict[str, float]:
    return {v["name"]: v["weight"] if v["mode"] == "live" else v["sample"] for v in stored}


def _info(endpoint: Endpoint, configs: Sequence[EndpointConfig], history: bool) -> EndpointInfo:
    current = configs[0]
    rendered = [_config_info(c) for c in configs]
    return EndpointInfo(
        name=endpoint.name,
        description=endpoint.description,
        version=current.version,
        variants=rendered[0].variants,
        options=dict(current.options),
        archived=endpoint.archived_at is not None,
        created_at=endpoint.created_at,
        created_by=endpoint.created_by,
        updated_at=current.created_at,
        history=rendered if history else [],
    )


def _config_info(config: EndpointConfig) -> ConfigInfo:
    live = sum(v["weight"] for v in config.variants if v["mode"] == "live") or 1.0
    variants = [
        VariantInfo(
            name=v["name"],
            target=v["target"],
            requested=v.get("requested", v["target"]),
            weight=v["weight"],
            share=v["weight"] / live if v["mode"] == "live" else v.get("sample", 1.0),
            mode=v["mode"],
            sample=v.get("sample", 1.0),
            overrides=v.get("overrides") or {},
        )
        for v in config.variants
    ]
    return ConfigInfo(
        version=config.version,
        variants=variants,
        options=dict(config.options),
        note=config.note,
        created_at=config.created_at,
        created_by=config.created_by,
    )


def _audit(session: Any, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    session.add(
        AuditEvent(actor=actor or "", action=action, subject=f"endpoint:{subject}", detail=detail)
    )
