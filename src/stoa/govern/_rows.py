"""Core-level SQL for the registry's hot paths: registering and reading versions.

The ORM costs about a millisecond per registration and per row read in statement
building, flushing and object identity; these paths run thousands of times in a
training loop or a search, so they use prebuilt Core statements (compiled once and
cached by SQLAlchemy) and build the records without revalidating stored data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    func,
    select,
)

from stoa.core.db import for_dialect
from stoa.core.errors import InvalidInputError
from stoa.core.schema import (
    Alias,
    AuditEvent,
    LineageLink,
    Scan,
    Series,
    Version,
    VersionTag,
    utcnow,
)
from stoa.govern.types import Kind, VersionInfo

V = Version.__table__
S = Series.__table__
T = VersionTag.__table__
A = Alias.__table__

# JSON columns come back as text and are decoded here, with a fast path for the
# empty objects most versions carry: json.loads per column dominated search time.
_COLUMNS = (
    V.c.id, V.c.version, V.c.status, V.c.sha256, V.c.artifact, V.c.size, V.c.format,
    V.c.flavor, V.c.license, V.c.description, cast(V.c.metadata, Text).label("metadata"),
    cast(V.c.spec, Text).label("spec"), cast(V.c.findings, Text).label("findings"),
    V.c.gate, V.c.created_at, V.c.created_by, S.c.name, S.c.kind,
)  # fmt: skip
_EMPTY = {"{}": dict, "[]": list}
# Each version's tags and aliases are aggregated into JSON by the database, in the same
# query: one row per version instead of one per tag. Only the function names differ.
_AGGREGATES = {
    "sqlite": (func.json_group_object, func.json_group_array),
    "postgresql": (func.json_object_agg, func.json_agg),
}


def _json(text: str | None, default: type = dict) -> Any:
    if text is None:
        return default()
    empty = _EMPTY.get(text)
    return empty() if empty is not None else json.loads(text)


def _select_versions_statement(dialect: str, _: Any) -> Any:
    as_object, as_array = _AGGREGATES[dialect]
    tags = (
        select(cast(as_object(T.c.key, T.c.value), Text))
        .where(T.c.version_id == V.c.id)
        .scalar_subquery()
    )
    aliases = (
        select(cast(as_array(A.c.alias), Text)).where(A.c.version_id == V.c.id).scalar_subquery()
    )
    return select(*_COLUMNS, tags.label("tags"), aliases.label("aliases")).join_from(
        V, S, V.c.series_id == S.c.id
    )


# Tag joins for searches, built once: building an alias per call cost more than the query.
_TAG_JOINS = [T.alias(f"tag{i}") for i in range(16)]
_SAME_CONTENT = (
    select(V.c.id)
    .where(V.c.series_id == bindparam("b_series"), V.c.sha256 == bindparam("b_sha"),
           V.c.status == bindparam("b_status"))
    .order_by(V.c.version.desc())
    .limit(1)
)  # fmt: skip
# The version row is inserted only if the series holds no version with the same bytes and
# status: one statement for the duplicate check and the insert.
_VERSION_COLUMNS = [c for c in V.c if c.key != "id"]
_INSERT_VERSION = (
    V.insert()
    .from_select(
        _VERSION_COLUMNS,
        select(*[bindparam(c.key, type_=c.type) for c in _VERSION_COLUMNS]).where(
            ~exists().where(
                V.c.series_id == bindparam("series_id"),
                V.c.sha256 == bindparam("sha256"),
                V.c.status == bindparam("status"),
            )
        ),
    )
    .returning(V.c.id)
)
_FIND_VERSION = (
    select(S.c.id, V.c.id, V.c.status)
    .join_from(V, S, V.c.series_id == S.c.id)
    .where(S.c.kind == bindparam("b_kind"), S.c.name == bindparam("b_name"),
           V.c.version == bindparam("b_number"))
    # Locks the version on PostgreSQL, so that archiving it cannot interleave.
    .with_for_update(of=V)
)  # fmt: skip
_CURRENT_ALIAS = (
    select(V.c.version)
    .join_from(A, V, A.c.version_id == V.c.id)
    .where(A.c.series_id == bindparam("b_series"), A.c.alias == bindparam("b_alias"))
)
_INSERT_AUDIT = AuditEvent.__table__.insert()
L = LineageLink.__table__
_INSERT_TAG = T.insert()


def _next_number_statement(_: str, insert: Any) -> Any:
    """Create the series if new, or bump its counter, returning the number to use.

    The update takes the series row lock on PostgreSQL, so concurrent registrations of
    one name queue here until the first commits; SQLite's write lock already queues them.
    """
    statement = insert(S).values(
        kind=bindparam("b_kind"), name=bindparam("b_name"), latest_version=1,
        created_at=bindparam("b_now"),
    )  # fmt: skip
    return statement.on_conflict_do_update(
        index_elements=["kind", "name"], set_={"latest_version": S.c.latest_version + 1}
    ).returning(S.c.id, S.c.latest_version)


def _point_alias_statement(_: str, insert: Any) -> Any:
    statement = insert(A)
    return statement.on_conflict_do_update(
        index_elements=["series_id", "alias"],
        set_={c: statement.excluded[c] for c in ("version_id", "updated_at", "updated_by")},
    )


def _insert_edge_statement(_: str, insert: Any) -> Any:
    return insert(L).on_conflict_do_nothing(
        index_elements=["parent_type", "parent_id", "child_type", "child_id"]
    )


def next_number(conn: Connection, kind: str, name: str) -> tuple[int, int]:
    """The series id and the version number this transaction may use, with the series locked."""
    statement = for_dialect(conn, "next_number", _next_number_statement)
    row = conn.execute(statement, {"b_kind": kind, "b_name": name, "b_now": utcnow()}).one()
    return row[0], row[1]


def same_content(conn: Connection, series_id: int, sha256: str, status: str) -> int | None:
    return conn.execute(
        _SAME_CONTENT, {"b_series": series_id, "b_sha": sha256, "b_status": status}
    ).scalar()


def insert_version(
    conn: Connection,
    series_id: int,
    number: int,
    values: Mapping[str, Any],
    tags: Mapping[str, str],
) -> tuple[int | None, datetime]:
    """Insert version ``number`` with its tags; return its id (None when the series
    already holds these bytes with this status) and its creation time."""
    created_at = utcnow()
    version_id = conn.execute(
        _INSERT_VERSION,
        {**values, "series_id": series_id, "version": number, "created_at": created_at},
    ).scalar()
    if version_id is None:
        return None, created_at
    if tags:
        conn.execute(
            _INSERT_TAG, [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()]
        )
    return version_id, created_at


def tag_join(position: int, key: str, value: str) -> tuple[Any, ColumnElement[bool]]:
    """The join that keeps versions carrying tag ``key=value``; one per searched tag."""
    if position >= len(_TAG_JOINS):
        raise InvalidInputError(
            f"at most {len(_TAG_JOINS)} tags per search", field="tags", fix="search with fewer tags"
        )
    tag = _TAG_JOINS[position]
    return tag, and_(tag.c.version_id == V.c.id, tag.c.key == key, tag.c.value == value)


def find_version(
    conn: Connection, kind: str, name: str, number: int
) -> tuple[int, int, str] | None:
    """(series id, version id, status) of ``name@number``, or None."""
    row = conn.execute(_FIND_VERSION, {"b_kind": kind, "b_name": name, "b_number": number}).first()
    return None if row is None else (row[0], row[1], row[2])


def point_alias(
    conn: Connection, series_id: int, alias: str, version_id: int, actor: str
) -> tuple[int | None, datetime]:
    """Create or move an alias; return the version number it pointed at before, if any."""
    previous = conn.execute(_CURRENT_ALIAS, {"b_series": series_id, "b_alias": alias}).scalar()
    now = utcnow()
    conn.execute(
        for_dialect(conn, "point_alias", _point_alias_statement),
        {"series_id": series_id, "alias": alias, "version_id": version_id, "updated_at": now,
         "updated_by": actor},
    )  # fmt: skip
    return previous, now


def link(
    conn: Connection, parents: Iterable[tuple[str, str]], child_type: str, child_id: str
) -> None:
    """Record lineage edges parent -> child; an edge that exists already is kept once,
    even when two writers add it at the same time."""
    rows = [
        {"parent_type": parent_type, "parent_id": parent_id, "child_type": child_type,
         "child_id": child_id, "created_at": utcnow()}
        for parent_type, parent_id in parents
    ]  # fmt: skip
    if not rows:
        return
    conn.execute(for_dialect(conn, "insert_edge", _insert_edge_statement), rows)


_INSERT_SCAN = Scan.__table__.insert()
_LATEST_SCAN = (
    select(Scan.__table__.c.report)
    .where(Scan.__table__.c.version_id == bindparam("version_id"))
    .order_by(Scan.__table__.c.id.desc())
    .limit(1)
)


def store_scan(conn: Connection, version_id: int, report: Mapping[str, Any]) -> None:
    """Keep the gate's full report beside the version it judged."""
    files = report.get("files") or [{}]
    conn.execute(
        _INSERT_SCAN,
        {
            "version_id": version_id,
            "scanner": str(report.get("scanner", "")),
            "policy_version": str(report.get("policy_version", "")),
            "verdict": str(files[0].get("verdict", "")),
            "reason": str(files[0].get("reason", "")),
            "report": dict(report),
            "created_at": utcnow(),
        },
    )


def latest_scan(conn: Connection, version_id: int) -> dict[str, Any] | None:
    report = conn.execute(_LATEST_SCAN, {"version_id": version_id}).scalar()
    if isinstance(report, str):  # SQLite hands JSON back as text through Core
        report = json.loads(report)
    return report


def audit(conn: Connection, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    conn.execute(
        _INSERT_AUDIT,
        {"actor": actor, "action": action, "subject": subject, "detail": detail, "at": utcnow()},
    )


def fetch_one(
    conn: Connection,
    where: Iterable[ColumnElement[bool]],
    joins: Iterable[tuple[Any, ColumnElement[bool]]] = (),
) -> tuple[int, VersionInfo] | None:
    """The one version ``where`` names, and its row id; None when it names none."""
    statement = for_dialect(conn, "select_versions", _select_versions_statement)
    for table, on in joins:
        statement = statement.join(table, on)
    row = conn.execute(statement.where(*where)).first()
    return None if row is None else (row[0], to_info(row))


def fetch_versions(
    conn: Connection,
    where: Iterable[ColumnElement[bool]],
    order_by: Sequence[Any] = (S.c.name, V.c.version),
    limit: int | None = None,
    joins: Iterable[tuple[Any, ColumnElement[bool]]] = (),
) -> list[VersionInfo]:
    """Read versions with their tags and aliases in one query, whatever the row count."""
    statement = for_dialect(conn, "select_versions", _select_versions_statement)
    for table, on in joins:
        statement = statement.join(table, on)
    statement = statement.where(*where).order_by(*order_by)
    if limit is not None:
        statement = statement.limit(limit)
    return [to_info(row) for row in conn.execute(statement).all()]


def to_info(row: Any) -> VersionInfo:
    (_, version, status, sha256, artifact, size, fmt, flavor, license, description, metadata,
     spec, findings, gate, created_at, created_by, name, kind, tags, aliases) = row  # fmt: skip
    return VersionInfo.model_validate({
        "kind": kind, "name": name, "version": version, "ref": f"{name}@{version}",
        "status": status, "sha256": sha256, "artifact": artifact, "size": size,
        "format": fmt, "flavor": flavor, "license": license, "description": description,
        "tags": _json(tags), "metadata": _json(metadata), "spec": _json(spec),
        "findings": _json(findings, list), "gate": gate,
        "aliases": sorted(_json(aliases, list)), "created_at": created_at,
        "created_by": created_by,
    })  # fmt: skip


def new_info(
    kind: Kind,
    name: str,
    number: int,
    created_at: datetime,
    values: Mapping[str, Any],
    tags: Mapping[str, str],
) -> VersionInfo:
    """The record of a version just inserted, without reading it back."""
    return VersionInfo.model_validate({
        "kind": kind, "name": name, "version": number, "ref": f"{name}@{number}",
        "tags": dict(tags), "aliases": [], "created_at": created_at, **values,
    })  # fmt: skip
