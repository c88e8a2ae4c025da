"""endpoints: versioned traffic configs, the prediction logbook and feedback events

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("current", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("archived_at", WHEN, nullable=True),
    )
    op.create_table(
        "endpoint_configs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.Integer(),
            sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("variants", JSON, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("endpoint_id", "version", name="uq_endpoint_configs"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("unit_id", sa.String(256), nullable=True),
        sa.Column("ts", WHEN, nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", JSON, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("trace", JSON, nullable=True),
    )
    op.create_index("ix_predictions_endpoint_ts", "predictions", ["endpoint", "ts"])
    op.create_index("ix_predictions_unit", "predictions", ["endpoint", "unit_id"])
    op.create_index("ix_predictions_parent", "predictions", ["parent_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("prediction_id", sa.String(36), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ts", WHEN, nullable=False),
        sa.Column("received_at", WHEN, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True, unique=True),
    )
    op.create_index("ix_feedback_prediction", "feedback", ["prediction_id"])
    op.create_index("ix_feedback_endpoint_kind", "feedback", ["endpoint", "kind", "ts"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("predictions")
    op.drop_table("endpoint_configs")
    op.drop_table("endpoints")
