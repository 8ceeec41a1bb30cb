"""What each collection's rows are sharded by: the primary key, or the partition key's value.

Collections that exist already were sharded by primary key, whatever their schema.

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("shard_key", sa.String(16), nullable=False, server_default="primary"))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("shard_key")
