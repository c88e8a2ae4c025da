"""index aliases by version, for reading a version's aliases without a scan

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_aliases_version_id", "aliases", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_aliases_version_id", table_name="aliases")
