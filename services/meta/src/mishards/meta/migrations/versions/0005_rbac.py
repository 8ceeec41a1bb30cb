"""Users, roles, user-role bindings and grants (Milvus authentication and RBAC).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rbac_users",
        sa.Column("name", sa.String(64), primary_key=True),
        # bcrypt, cost 10, "$2a$" prefix: the hash Milvus keeps for a credential
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_ms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "rbac_roles",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "rbac_user_roles",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("role_name", sa.String(64), primary_key=True),
    )
    op.create_table(
        "rbac_grants",
        sa.Column("role_name", sa.String(64), primary_key=True),
        sa.Column("object_type", sa.String(32), primary_key=True),
        sa.Column("object_name", sa.String(255), primary_key=True),
        sa.Column("privilege", sa.String(64), primary_key=True),
        sa.Column("db_name", sa.String(255), primary_key=True),
        sa.Column("grantor", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("rbac_grants")
    op.drop_table("rbac_user_roles")
    op.drop_table("rbac_roles")
    op.drop_table("rbac_users")
