"""Named series of immutable, numbered versions, shared by models, prompts and datasets.

Version numbers come from a counter on the series row, bumped inside the same
transaction that inserts the version: the row lock (PostgreSQL) or the write lock
(SQLite, ``BEGIN IMMEDIATE``) makes concurrent registrations queue, and a rolled-back
transaction gives its number back, so numbers stay gap-free and unique.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from stoa.core.blobs import BlobStore, StoredArtifact
from stoa.core.db import Database
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError, RefusedError
from stoa.core.names import (
    Ref,
    parse_ref,
    validate_alias,
    validate_name,
    validate_tag_key,
    validate_tag_value,
    validate_version,
)
from stoa.core.schema import (
    Alias,
    AuditEvent,
    ContentReview,
    LineageLink,
    Run,
    Series,
    Version,
    utcnow,
)
from stoa.govern import _rows, webhooks
from stoa.govern.types import (
    KINDS,
    AliasInfo,
    AuditInfo,
    Kind,
    LineageInfo,
    LineageNode,
    SeriesInfo,
    VersionInfo,
)
from stoa.govern.webhooks import Hook

MAX_LIST = 10_000
# Built once: constructing a statement per call cost more than running it.
_SERIES_BY_NAME = select(Series).where(
    Series.kind == bindparam("b_kind"), Series.name == bindparam("b_name")
)
_VERSION_BY_NUMBER = select(Version).where(
    Version.series_id == bindparam("b_series"), Version.version == bindparam("b_number")
)
MAX_LINEAGE_DEPTH = 16
MAX_LINEAGE_NODES = 1000


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise InvalidInputError(f"unknown kind {kind!r}", field="kind", fix=f"use one of {KINDS}")
    return kind  # type: ignore[return-value]


def clean_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInputError(
            "must be a mapping of strings", field="tags", fix="e.g. {'team': 'x'}"
        )
    return {validate_tag_key(str(k)): validate_tag_value(v) for k, v in tags.items()}


def check_json(value: Any, field: str) -> None:
    """Refuse what a JSON column cannot hold on every back-end: NaN, infinities, NUL."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot be stored as JSON: {exc}", field=field) from None
    if "\\u0000" in text:
        raise InvalidInputError("contains a NUL character", field=field, fix="remove it")


def check_version_input(
    name: str,
    tags: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
    description: str = "",
) -> dict[str, str]:
    """Everything about a new version that can be checked before its bytes are stored."""
    validate_name(name)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInputError("must be a JSON object", field="metadata")
    check_json(metadata, "metadata")
    if not isinstance(description, str) or "\x00" in description or len(description) > 100_000:
        raise InvalidInputError(
            "must be text under 100,000 characters without NUL bytes", field="description"
        )
    return clean_tags(tags)


class _AlreadyStored(Exception):
    def __init__(self, version_id: int):
        self.version_id = version_id


#: The aliases table under another name: the read's own aliases subquery must not
#: correlate with the join that resolves ``NAME@ALIAS``.
_NAMED = _rows.A.alias("named")
_OTHER = _rows.V.alias("newest")
#: The highest version number a series still holds (deleted ones are gone).
_NEWEST = (
    select(func.max(_OTHER.c.version))
    .where(_OTHER.c.series_id == _rows.S.c.id)
    .correlate(_rows.S)
    .scalar_subquery()
)


class Registry:
    """Stores versions and answers references; kind-specific checks live in their modules."""

    def __init__(self, db: Database, blobs: BlobStore, hooks: Sequence[Hook] = ()):
        self.db = db
        self.blobs = blobs
        self.hooks = list(hooks)  # configured webhooks: changes enqueue their deliveries

    def _notify(self, conn: Connection, event: str, payload: dict[str, Any]) -> None:
        """Enqueue ``event`` in the change's own transaction: both commit, or neither."""
        if self.hooks:
            webhooks.enqueue(conn, self.hooks, event, payload)

    # -- writing -----------------------------------------------------------------

    def add_version(
        self,
        kind: Kind,
        name: str,
        stored: StoredArtifact,
        *,
        status: str,
        actor: str,
        fmt: str | None = None,
        flavor: str | None = None,
        license: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        spec: Mapping[str, Any] | None = None,
        findings: Iterable[Mapping[str, Any]] = (),
        gate: str = "",
        parents: Iterable[tuple[str, str]] = (),
        scan: Mapping[str, Any] | None = None,
    ) -> VersionInfo:
        """Insert the next version of ``name`` in one transaction, with its tags and lineage.

        Idempotent by content: when a version of ``name`` already holds these bytes with
        the same status, that version is returned (``created=False``) and nothing is written.
        """
        tags = check_version_input(name, tags, metadata, description)
        check_json(spec, "spec")
        values = {
            "status": status, "sha256": stored.sha256, "artifact": stored.artifact,
            "size": stored.size, "format": fmt, "flavor": flavor, "license": license,
            "description": description or "", "metadata": dict(metadata or {}),
            "spec": dict(spec or {}), "findings": [dict(f) for f in findings], "gate": gate,
            "created_by": actor,
        }  # fmt: skip
        parents = list(parents)
        try:
            with self.db.write_connection() as conn:
                links = self._resolve_parents(conn, parents)
                series_id, number = _rows.next_number(conn, kind, name)
                version_id, created_at = _rows.insert_version(conn, series_id, number, values, tags)
                if version_id is None:  # the same bytes again: roll the counter back
                    raise _AlreadyStored(_rows.same_content(conn, series_id, stored.sha256, status))
                _rows.link(conn, links, kind, str(version_id))
                if scan is not None:
                    _rows.store_scan(conn, version_id, scan)
                info = _rows.new_info(kind, name, number, created_at, values, tags)
                payload = webhooks.version_payload(info, actor)
                self._notify(conn, "version.registered", payload)
                if status == "blocked":
                    self._notify(conn, "version.blocked", payload)
                return info
        except _AlreadyStored as found:
            # The same bytes with the same outcome again write no version; new lineage
            # (another run that produced the same bytes) is still recorded.
            with self.db.write_connection() as conn:
                self.link_parents(conn, parents, kind, str(found.version_id))
                [info] = _rows.fetch_versions(conn, [_rows.V.c.id == found.version_id])
                return info.model_copy(update={"created": False})

    def delete(self, kind: Kind, ref: str, *, actor: str) -> VersionInfo:
        """Remove a version for good (admins): its row, tags, scans and lineage edges go
        in one transaction; its bytes go at the next ``stoa gc`` unless another version
        shares them. Refused while an alias points at it: move the alias first. Its
        number is never given out again."""
        with self.db.write() as session:
            row, _ = self._resolve(session, kind, ref)
            info = self._fetch_one(session, row.id)
            if info.aliases:
                raise ConflictError(
                    f"{info.ref} carries the alias(es) {', '.join(info.aliases)}",
                    field="ref",
                    fix="move or delete the aliases first",
                )
            conn = session.connection()
            node = (_rows.L.c.parent_type == kind) & (_rows.L.c.parent_id == str(row.id))
            child = (_rows.L.c.child_type == kind) & (_rows.L.c.child_id == str(row.id))
            conn.execute(delete(_rows.L).where(or_(node, child)))
            session.delete(row)
            detail = {"sha256": info.sha256, "status": info.status}
            _rows.audit(conn, actor, "delete", f"{kind}:{info.ref}", detail)
            return info

    def archive(self, kind: Kind, ref: str, *, actor: str) -> VersionInfo:
        """Archive a version; refused while an alias still points at it."""
        with self.db.write() as session:
            row, series = self._resolve(session, kind, ref)
            # Lock the version (PostgreSQL) so that no alias can be pointed at it meanwhile.
            session.execute(select(Version.id).where(Version.id == row.id).with_for_update())
            pointing = session.scalars(select(Alias.alias).where(Alias.version_id == row.id)).all()
            if pointing:
                raise ConflictError(
                    f"{series.name}@{row.version} is the target of alias(es) {', '.join(pointing)}",
                    field="ref",
                    fix="move or delete those aliases first",
                )
            if row.status != "archived":
                subject = f"{kind}:{series.name}@{row.version}"
                _rows.audit(session.connection(), actor, "archive", subject, {"from": row.status})
                row.status = "archived"
            return self._fetch_one(session, row.id)

    def review(
        self, kind: Kind, ref: str, *, approve: bool, actor: str, note: str = ""
    ) -> VersionInfo:
        """Decide a version held for review: ``allowed`` or ``blocked``, with who and why.

        Only ``pending`` versions can be decided: a scan that found something is never
        overruled here; change the policy and register again instead.
        """
        if not isinstance(note, str) or len(note) > 2000 or "\x00" in note:
            raise InvalidInputError("must be text under 2,000 characters", field="note")
        with self.db.write() as session:
            row, series = self._resolve(session, kind, ref)
            session.execute(select(Version.id).where(Version.id == row.id).with_for_update())
            if row.status != "pending":
                raise ConflictError(
                    f"{series.name}@{row.version} is {row.status}, not pending review",
                    field="ref",
                    fix="only versions held for review (pending) can be approved or rejected",
                )
            row.status = "allowed" if approve else "blocked"
            detail = {"from": "pending", "to": row.status, "note": note}
            subject = f"{kind}:{series.name}@{row.version}"
            _rows.audit(session.connection(), actor, "approve" if approve else "reject", subject,
                        detail)  # fmt: skip
            event = "version.approved" if approve else "version.rejected"
            info = self._fetch_one(session, row.id)
            self._notify(session.connection(), event,
                         {**webhooks.version_payload(info, actor), "note": note})  # fmt: skip
            session.merge(ContentReview(
                kind=kind, sha256=row.sha256, decision="approved" if approve else "rejected",
                ref=f"{series.name}@{row.version}", note=note, decided_by=actor,
                decided_at=utcnow(),
            ))  # fmt: skip
            return info

    def content_review(self, kind: Kind, sha256: str) -> ContentReview | None:
        """The latest admin decision on these bytes, under any name, if there is one."""
        with self.db.read() as session:
            found = session.get(ContentReview, (kind, sha256))
            if found is not None:
                session.expunge(found)
            return found

    def set_alias(
        self, kind: Kind, name: str, version: int, alias: str, *, actor: str
    ) -> AliasInfo:
        """Point ``alias`` at a version; every move is kept in the audit log."""
        validate_alias(alias)
        validate_name(name)
        version = validate_version(version)
        with self.db.write() as session:
            conn = session.connection()
            found = _rows.find_version(conn, kind, name, version)
            if found is None:
                self._resolve(session, kind, f"{name}@{version}")  # raises, naming what
            series_id, version_id, status = found
            if status != "allowed":
                raise RefusedError(
                    f"{name}@{version} is {status}; only allowed versions can carry an alias",
                    field="version",
                    fix="choose an allowed version",
                )
            previous, updated_at = _rows.point_alias(conn, series_id, alias, version_id, actor)
            detail = {"alias": alias, "from": previous, "to": version}
            _rows.audit(conn, actor, "alias", f"{kind}:{name}", detail)
            self._notify(conn, "alias.moved", {"actor": actor, "kind": kind, "name": name,
                                               **detail})  # fmt: skip
            return AliasInfo(
                kind=kind,
                name=name,
                alias=alias,
                version=version,
                updated_at=updated_at,
                updated_by=actor,
            )

    def delete_alias(self, kind: Kind, name: str, alias: str, *, actor: str) -> None:
        validate_alias(alias)
        with self.db.write() as session:
            series = self._series(session, kind, validate_name(name))
            current = session.get(Alias, (series.id, alias))
            if current is None:
                raise NotFoundError(f"{name} has no alias {alias!r}", field="alias")
            previous = session.get(Version, current.version_id).version
            session.delete(current)
            detail = {"alias": alias, "from": previous, "to": None}
            _rows.audit(session.connection(), actor, "alias", f"{kind}:{name}", detail)
            self._notify(session.connection(), "alias.deleted",
                         {"actor": actor, "kind": kind, "name": name, **detail})  # fmt: skip

    # -- reading -----------------------------------------------------------------

    def get(self, kind: Kind, ref: str) -> VersionInfo:
        """One version, with the full report of the scan that judged it (when there is one).

        The hot path of every read: one query resolves the reference and reads the
        version with its tags and aliases, one more reads the scan. Only a reference
        that names nothing goes through the ORM, for the error that says why.
        """
        parsed = parse_ref(ref)
        where = [_rows.S.c.kind == kind, _rows.S.c.name == parsed.name]
        joins = []
        if parsed.alias is not None:
            on = and_(_NAMED.c.version_id == _rows.V.c.id, _NAMED.c.alias == parsed.alias)
            joins.append((_NAMED, on))
        elif parsed.version is not None:
            where.append(_rows.V.c.version == parsed.version)
        else:  # the newest version; ``latest_version`` counts deleted ones too
            where.append(_rows.V.c.version == _NEWEST)
        with self.db.read() as session:
            conn = session.connection()
            found = _rows.fetch_one(conn, where, joins)
            if found is None:
                self._resolve(session, kind, ref)  # raises the NotFoundError that says why
                raise NotFoundError(f"no {kind} {ref!r}", field="ref")
            version_id, info = found
            scan = _rows.latest_scan(conn, version_id)
            return info.model_copy(update={"scan": scan}) if scan else info

    def list_series(self, kind: Kind) -> list[SeriesInfo]:
        with self.db.read() as session:
            rows = session.scalars(
                select(Series).where(Series.kind == kind).order_by(Series.name).limit(MAX_LIST)
            ).all()
            aliases = self._aliases_by_series(session, [s.id for s in rows])
            return [
                SeriesInfo(
                    kind=kind,
                    name=s.name,
                    latest_version=s.latest_version,
                    aliases=aliases.get(s.id, {}),
                    created_at=s.created_at,
                )
                for s in rows
            ]

    def list_versions(
        self,
        kind: Kind,
        name: str,
        *,
        status: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[VersionInfo]:
        """Versions in order; with ``limit``, the newest ``limit`` of them (numbered below
        ``before`` when given): a page that reads only its own rows, however long the series."""
        if limit is not None and (isinstance(limit, bool) or not 1 <= limit <= MAX_LIST):
            raise InvalidInputError(
                f"limit must be 1..{MAX_LIST}", field="limit", fix="page with a smaller limit"
            )
        with self.db.read() as session:
            series = self._series(session, kind, validate_name(name))
            where = [_rows.V.c.series_id == series.id]
            if status:
                where.append(_rows.V.c.status == status)
            if before is not None:
                where.append(_rows.V.c.version < validate_version(before, "before"))
            if limit is None:
                return _rows.fetch_versions(
                    session.connection(), where, order_by=[_rows.V.c.version], limit=MAX_LIST
                )
            newest = _rows.fetch_versions(
                session.connection(), where, order_by=[_rows.V.c.version.desc()], limit=limit
            )
            return newest[::-1]

    def search(
        self,
        kind: Kind,
        *,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[VersionInfo]:
        """Versions whose tags all match exactly; an indexed join per tag."""
        where = [_rows.S.c.kind == kind]
        if name:
            where.append(_rows.S.c.name == validate_name(name))
        if status:
            where.append(_rows.V.c.status == status)
        joins = [_rows.tag_join(i, k, v) for i, (k, v) in enumerate(clean_tags(tags).items())]
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInputError(
                f"limit must be 1..{MAX_LIST}", field="limit", fix="page with a smaller limit"
            )
        with self.db.read() as session:
            return _rows.fetch_versions(session.connection(), where, limit=limit, joins=joins)

    def alias_history(self, kind: Kind, name: str) -> list[AuditInfo]:
        with self.db.read() as session:
            self._series(session, kind, validate_name(name))
            rows = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.subject == f"{kind}:{name}", AuditEvent.action == "alias")
                .order_by(AuditEvent.id)
            ).all()
            return [AuditInfo.model_validate(r, from_attributes=True) for r in rows]

    def lineage(
        self,
        kind: Kind,
        ref: str,
        *,
        depth: int = MAX_LINEAGE_DEPTH,
        limit: int = MAX_LINEAGE_NODES,
    ) -> LineageInfo:
        """Walk lineage links both ways from one version (or run, with kind 'run'), at
        most ``limit`` nodes each way: the walk stops reading links once it has them."""
        depth = max(1, min(int(depth), MAX_LINEAGE_DEPTH))
        limit = max(1, min(int(limit), MAX_LINEAGE_NODES))
        with self.db.read() as session:
            if kind == "run":
                run = session.get(Run, ref)
                if run is None:
                    raise NotFoundError(f"no run {ref!r}", field="ref")
                start_key = ("run", run.id)
            else:
                row, _ = self._resolve(session, kind, ref)
                start_key = (kind, str(row.id))
            start = LineageNode(type=start_key[0], ref=self._label(session, *start_key), depth=0)
            up = self._walk(session, start_key, depth, limit, upstream=True)
            down = self._walk(session, start_key, depth, limit, upstream=False)
            return LineageInfo(start=start, upstream=up, downstream=down)

    @contextlib.contextmanager
    def materialize(self, kind: Kind, ref: str) -> Iterator[tuple[VersionInfo, Path]]:
        """A verified copy of a version's artifact in a temporary folder, removed afterwards."""
        info = self.get(kind, ref)
        tmp = Path(tempfile.mkdtemp(prefix="stoa-"))
        try:
            target = tmp / ("artifact" if info.artifact == "folder" else "artifact.bin")
            yield info, self.blobs.export(info.sha256, info.artifact, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------

    def _series(self, session: Session, kind: str, name: str) -> Series:
        series = session.execute(_SERIES_BY_NAME, {"b_kind": kind, "b_name": name}).scalar()
        if series is None:
            raise NotFoundError(
                f"no {kind} named {name!r}", field="name", fix=f"list them with `stoa {kind}s list`"
            )
        return series

    def _resolve(self, session: Session, kind: str, text: str) -> tuple[Version, Series]:
        ref: Ref = parse_ref(text)
        series = self._series(session, kind, ref.name)
        if ref.alias is not None:
            alias = session.get(Alias, (series.id, ref.alias))
            if alias is None:
                raise NotFoundError(
                    f"{ref.name} has no alias {ref.alias!r}",
                    field="ref",
                    fix=f"see `stoa {kind}s show {ref.name}` for its aliases",
                )
            row = session.get(Version, alias.version_id)
        else:
            number = ref.version if ref.version is not None else series.latest_version
            row = session.execute(
                _VERSION_BY_NUMBER, {"b_series": series.id, "b_number": number}
            ).scalar()
            if row is None and ref.version is None:  # the newest was deleted: the next one
                row = session.scalars(
                    select(Version).where(Version.series_id == series.id)
                    .order_by(Version.version.desc()).limit(1)
                ).first()  # fmt: skip
            if row is None:
                raise NotFoundError(
                    f"{ref.name} has no version {number}",
                    field="ref",
                    fix=f"its versions run from 1 to {series.latest_version}; deleted "
                    "versions are gone for good",
                )
        return row, series

    def link_parents(
        self, conn: Connection, parents: list[tuple[str, str]], child_type: str, child_id: str
    ) -> None:
        """Record lineage from each ``(kind, ref)`` parent to a child, in the caller's
        transaction: a parent that does not exist fails the whole write."""
        _rows.link(conn, self._resolve_parents(conn, parents), child_type, child_id)

    def _resolve_parents(
        self, conn: Connection, parents: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        if not parents:  # the common case needs no ORM session at all
            return []
        with Session(bind=conn) as session:
            return [self._resolve_parent(session, *p) for p in parents]

    def _resolve_parent(self, session: Session, kind: str, ref: str) -> tuple[str, str]:
        if kind == "run":
            if session.get(Run, ref) is None:
                raise NotFoundError(f"no run {ref!r}", field="run_id")
            return "run", ref
        row, _ = self._resolve(session, check_kind(kind), ref)
        return kind, str(row.id)

    def _aliases_by_series(self, session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        if not ids:
            return out
        rows = session.execute(
            select(Alias.series_id, Alias.alias, Version.version)
            .join(Version, Version.id == Alias.version_id)
            .where(Alias.series_id.in_(ids))
        ).all()
        for series_id, alias, version in rows:
            out.setdefault(series_id, {})[alias] = version
        return out

    @staticmethod
    def _fetch_one(session: Session, version_id: int) -> VersionInfo:
        session.flush()  # Core reads below must see pending ORM changes
        return _rows.fetch_versions(session.connection(), [_rows.V.c.id == version_id])[0]

    def _label(self, session: Session, node_type: str, node_id: str) -> str:
        if node_type == "run":
            return node_id
        row = session.execute(
            select(Series.name, Version.version).join(Version).where(Version.id == int(node_id))
        ).one()
        return f"{row[0]}@{row[1]}"

    def _walk(
        self, session: Session, start: tuple[str, str], depth: int, limit: int, *, upstream: bool
    ) -> list[LineageNode]:
        """Breadth-first over links, at most ``depth`` hops and ``limit`` nodes."""
        labels: dict[tuple[str, str], str] = {}

        def label(key: tuple[str, str]) -> str:
            if key not in labels:
                labels[key] = self._label(session, *key)
            return labels[key]

        seen = {start}
        frontier = [start]
        found: list[LineageNode] = []
        for level in range(1, depth + 1):
            next_frontier: list[tuple[str, str]] = []
            for node in frontier:
                if len(found) >= limit:
                    break
                if upstream:
                    q = select(LineageLink.parent_type, LineageLink.parent_id).where(
                        LineageLink.child_type == node[0], LineageLink.child_id == node[1]
                    )
                else:
                    q = select(LineageLink.child_type, LineageLink.child_id).where(
                        LineageLink.parent_type == node[0], LineageLink.parent_id == node[1]
                    )
                for other_type, other_id in session.execute(q).all():
                    key = (other_type, other_id)
                    if key in seen or len(found) >= limit:
                        continue
                    seen.add(key)
                    next_frontier.append(key)
                    found.append(
                        LineageNode(type=key[0], ref=label(key), depth=level, parent=label(node))
                    )
            if not next_frontier:
                break
            frontier = next_frontier
        return found


__all__ = ["Registry", "check_kind", "clean_tags"]
