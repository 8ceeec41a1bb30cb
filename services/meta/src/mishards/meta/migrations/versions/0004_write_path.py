"""Instance versions and drains, and log entries that may be aborted or were aborted.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("identity", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False, server_default=""),
        # `mishards drain`: meta moves every copy off the instance (its primaries first)
        sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    with op.batch_alter_table("mutations") as batch:
        # True for a write whose client waits for the primaries (WRITE_ACK=applied): a rejection aborts it.
        batch.add_column(sa.Column("abortable", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("aborted", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("mutations") as batch:
        batch.drop_column("aborted")
        batch.drop_column("abortable")
    op.drop_table("instances")
