"""The mutation log and the applied position of every copy.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# MySQL's BLOB holds 64 KB; a log entry holds up to the router's chunk size.
_PAYLOAD = sa.LargeBinary().with_variant(sa.dialects.mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("shards") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "mutations",
        sa.Column("collection_id", _ID, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("payload", _PAYLOAD, nullable=False),
    )
    op.create_table(
        "copies",
        sa.Column("collection_id", _ID, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("instance", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("applied_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("copies")
    op.drop_table("mutations")
    with op.batch_alter_table("shards") as batch:
        batch.drop_column("last_seq")
