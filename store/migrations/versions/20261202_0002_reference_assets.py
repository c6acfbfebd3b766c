"""reference assets: each ingested upload's probe, canonical asset and analysis

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 16:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("source_info", sa.JSON(), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_reference_assets_asset_id_assets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_assets")),
        sa.UniqueConstraint("source_sha256", "kind", "role", name=op.f("uq_reference_assets_source_sha256_kind_role")),
    )
    with op.batch_alter_table("reference_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reference_assets_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reference_assets_source_sha256"), ["source_sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reference_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reference_assets_source_sha256"))
        batch_op.drop_index(batch_op.f("ix_reference_assets_asset_id"))
    op.drop_table("reference_assets")
