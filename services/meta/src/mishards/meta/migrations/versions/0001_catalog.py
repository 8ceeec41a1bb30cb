"""The catalog: databases, collections, shards, partitions, indexes, aliases, counters.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "databases",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_ts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("properties", sa.Text, nullable=True),
    )
    op.create_table(
        "collections",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("db_name", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("schema", sa.LargeBinary(length=16 << 20), nullable=False),
        sa.Column("shards_num", sa.Integer, nullable=False),
        sa.Column("consistency_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("properties", sa.Text, nullable=True),
        sa.Column("created_ts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("loaded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.UniqueConstraint("db_name", "name", name="uq_collection_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "shards",
        sa.Column("collection_id", _ID, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("physical_name", sa.String(255), nullable=False),
        sa.Column("primary", sa.String(255), nullable=False),
    )
    op.create_table(
        "partitions",
        sa.Column("collection_id", _ID, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
    )
    op.create_table(
        "indexes",
        sa.Column("collection_id", _ID, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("index_name", sa.String(255), primary_key=True),
        sa.Column("field_name", sa.String(255), nullable=False),
        sa.Column("params", sa.Text, nullable=True),
    )
    op.create_table(
        "aliases",
        sa.Column("db_name", sa.String(255), primary_key=True),
        sa.Column("alias", sa.String(255), primary_key=True),
        sa.Column("collection_id", _ID, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    for table in ("counters", "aliases", "indexes", "partitions", "shards", "collections", "databases"):
        op.drop_table(table)
