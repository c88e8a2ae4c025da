"""The metadata schema: one set of tables for SQLite and PostgreSQL.

Every change to these classes ships with an Alembic migration in ``core/migrations``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back with its UTC offset: SQLite stores no zone,
    so without this every time read from it would be naive, and print without one."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType}


class Series(Base):
    """A named series of versions of one kind: a model, a prompt or a dataset."""

    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_series_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The last number handed out; bumped inside the registering transaction so that
    # numbers are gap-free and unique under concurrent writers.
    latest_version: Mapped[int] = mapped_column(Integer, default=0)

    versions: Mapped[list[Version]] = relationship(back_populates="series")


class Version(Base):
    """One immutable version; only ``status`` moves after it is written."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("series_id", "version", name="uq_versions_series_version"),
        Index("ix_versions_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    # "file" or "folder"; a folder's sha256 is that of its manifest.
    artifact: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str | None] = mapped_column(String(64))
    flavor: Mapped[str | None] = mapped_column(String(64))
    license: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    findings: Mapped[list[Any]] = mapped_column(default=list)
    gate: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")

    series: Mapped[Series] = relationship(back_populates="versions")
    tags: Mapped[list[VersionTag]] = relationship(
        back_populates="version", cascade="all, delete-orphan", lazy="selectin"
    )


class VersionTag(Base):
    __tablename__ = "version_tags"
    __table_args__ = (Index("ix_version_tags_key_value", "key", "value"),)

    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    version: Mapped[Version] = relationship(back_populates="tags")


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (Index("ix_aliases_version_id", "version_id"),)

    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="")


class Scan(Base):
    """The full scan report the gate produced for a version, with the policy it applied."""

    __tablename__ = "scans"
    __table_args__ = (Index("ix_scans_version_id", "version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    scanner: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ContentReview(Base):
    """An admin's decision on a version held for review, kept for its bytes: the same
    content registered again, under any name or declared licence, gets the same answer."""

    __tablename__ = "content_reviews"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # "approved" or "rejected"
    ref: Mapped[str] = mapped_column(String(200))  # the version the decision was made on
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one configured webhook: the outbox a dispatcher delivers from."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hook: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered or failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEvent(Base):
    """Who changed what and when: alias moves, archiving, token changes."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_subject", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Run(Base):
    """A training or evaluation execution: what it read, logged and produced."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_parent_id", "parent_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="finished")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # {"git_commit", "git_dirty", "python", "platform", "packages": {name: version}}
    environment: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RunParam(Base):
    """A run's hyper-parameter; written once, like MLflow's params."""

    __tablename__ = "run_params"
    __table_args__ = (Index("ix_run_params_key", "key"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTag(Base):
    __tablename__ = "run_tags"
    __table_args__ = (Index("ix_run_tags_key", "key"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunMetric(Base):
    """One metric point; the full history, kept in logging order."""

    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger)  # milliseconds since the epoch


class RunArtifact(Base):
    """A file or folder a run logged, stored content-addressed in the blob store."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[str] = mapped_column(String(16))  # "file" or "folder"
    size: Mapped[int] = mapped_column(BigInteger)


class RunLatestMetric(Base):
    """Each run's last value per metric (highest step, then latest time): what search reads."""

    __tablename__ = "run_latest_metrics"
    __table_args__ = (Index("ix_run_latest_metrics_key_value", "key", "value"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class LineageLink(Base):
    """A directed edge parent -> child between versions and runs, walkable both ways."""

    __tablename__ = "lineage_links"
    __table_args__ = (
        UniqueConstraint(
            "parent_type", "parent_id", "child_type", "child_id", name="uq_lineage_edge"
        ),
        Index("ix_lineage_child", "child_type", "child_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_type: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str] = mapped_column(String(64))
    child_type: Mapped[str] = mapped_column(String(32))
    child_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Token(Base):
    """An API token; only the SHA-256 of its secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BrowserSession(Base):
    """A dashboard sign-in: the cookie holds a random secret, this row only its SHA-256,
    and every request checks the token behind it, so revoking the token ends the
    session."""

    __tablename__ = "browser_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(16), ForeignKey("tokens.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class KnowledgeBase(Base):
    """A knowledge base's definition; its chunks and indexes live under STOA_HOME/kbs/ID."""

    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("name", name="uq_knowledge_bases_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    embedder: Mapped[dict[str, Any]] = mapped_column(default=dict)
    chunking: Mapped[dict[str, Any]] = mapped_column(default=dict)
    backend: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pii_policy: Mapped[str] = mapped_column(String(16), default="allow")
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class KbVersion(Base):
    """One ingest that changed content: its document diff and the totals after it."""

    __tablename__ = "kb_versions"
    __table_args__ = (UniqueConstraint("kb_id", "version", name="uq_kb_versions_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    diff: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class GenerationCacheEntry(Base):
    """A stored generation, keyed by the hash of what produced it (provider, model,
    messages, params, passages): asking the same again replays it instead of paying."""

    __tablename__ = "generation_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(512))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    last_hit_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Endpoint(Base):
    """A served name; what it serves lives in its numbered ``EndpointConfig`` versions."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: Salts every unit's bucket; fixed for the endpoint's life, so weights that stay the
    #: same keep every unit on its variant across config versions and restarts.
    salt: Mapped[str] = mapped_column(String(32))
    current: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EndpointConfig(Base):
    """One version of an endpoint's variants, weights and serving limits; never changed
    after it is written, so every prediction names the exact split it was served under."""

    __tablename__ = "endpoint_configs"
    __table_args__ = (UniqueConstraint("endpoint_id", "version", name="uq_endpoint_configs"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    variants: Mapped[list[Any]] = mapped_column(default=list)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class Prediction(Base):
    """One logged request to an endpoint (a shadow's run too, with ``parent_id``)."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_endpoint_ts", "endpoint", "ts"),
        Index("ix_predictions_unit", "endpoint", "unit_id"),
        Index("ix_predictions_parent", "parent_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    config_version: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    target: Mapped[str] = mapped_column(String(256))
    unit_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    input: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    trace: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)


class FeedbackEvent(Base):
    """A user action or a judgement tied to a prediction; written before it is
    acknowledged. The endpoint and variant are copied in, so an A/B analysis reads one
    table."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_prediction", "prediction_id"),
        Index("ix_feedback_endpoint_kind", "endpoint", "kind", "ts"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(36))
    endpoint: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)


class MetricDefinition(Base):
    """A business metric declared once (kind, event, direction, window) and used by A/B
    reports, monitors and alerts; a new version on every change, like everything else."""

    __tablename__ = "metric_definitions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_metric_definitions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class ReviewQueue(Base):
    """Rules that pick an endpoint's predictions for human review, and the label schema
    reviewers answer in; ``scanned_to`` is the last prediction id the rules have seen and
    ``feedback_scanned_to`` the last feedback event id (thumbs-down and judge rules)."""

    __tablename__ = "review_queues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scanned_to: Mapped[str] = mapped_column(String(36), default="")
    feedback_scanned_to: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class ReviewItem(Base):
    """One prediction waiting for, held by (until ``claimed_until``) or labelled by a
    reviewer; one row per queue and prediction, so a prediction is never queued twice."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("queue_id", "prediction_id", name="uq_review_items"),
        Index("ix_review_items_queue_status", "queue_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("review_queues.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    label: Mapped[Any] = mapped_column(JSONType, nullable=True)
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JudgePolicy(Base):
    """Which judges score a sample of an endpoint's live predictions, at what rate."""

    __tablename__ = "judge_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scanned_to: Mapped[str] = mapped_column(String(36), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class AlertRule(Base):
    """A threshold on a metric, drift score or judge score over a window; ``state`` is
    ``ok``, ``pending`` (breached, for less than the rule's ``for``) or ``firing``."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="ok")
    state_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class Alert(Base):
    """One firing of a rule, from the moment it fired until it resolved."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_rule", "rule_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
