"""initial run state

Revision ID: 0001
Revises:
Create Date: 2026-11-23 22:25:40.059469
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_assets()
    _create_campaign_runs()
    _create_deliverables()
    _create_generations()
    _create_qa_results()
    _create_task_outputs()
    _create_scene_jobs()


def _create_assets() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("media_info", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("sha256", name=op.f("uq_assets_sha256")),
    )


def _create_campaign_runs() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("brief", sa.JSON(), nullable=False),
        sa.Column("brief_source", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("manifest_uri", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_runs")),
        sa.UniqueConstraint("run_key", name=op.f("uq_campaign_runs_run_key")),
    )
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_runs_campaign_id"), ["campaign_id"], unique=False)


def _create_deliverables() -> None:
    op.create_table(
        "deliverables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("cache_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_deliverables_asset_id_assets")),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_deliverables_run_id_campaign_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliverables")),
        sa.UniqueConstraint("run_id", "language", "platform", name=op.f("uq_deliverables_run_id_language_platform")),
    )


def _create_generations() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cache_key", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("scene_id", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("asset_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_generations_asset_id_assets")),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_generations_run_id_campaign_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_generations_cache_key")),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generations_run_id"), ["run_id"], unique=False)


def _create_qa_results() -> None:
    op.create_table(
        "qa_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_qa_results_run_id_campaign_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qa_results")),
        sa.UniqueConstraint("run_id", "subject", "check", name=op.f("uq_qa_results_run_id_subject_check")),
    )


def _create_task_outputs() -> None:
    op.create_table(
        "task_outputs",
        sa.Column("cache_key", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_task_outputs_asset_id_assets")),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_task_outputs")),
    )


def _create_scene_jobs() -> None:
    op.create_table(
        "scene_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("scene_id", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name=op.f("fk_scene_jobs_generation_id_generations")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_scene_jobs_run_id_campaign_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scene_jobs")),
        sa.UniqueConstraint("run_id", "scene_id", "language", name=op.f("uq_scene_jobs_run_id_scene_id_language")),
    )


def downgrade() -> None:
    op.drop_table("scene_jobs")
    op.drop_table("task_outputs")
    op.drop_table("qa_results")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generations_run_id"))

    op.drop_table("generations")
    op.drop_table("deliverables")
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_runs_campaign_id"))

    op.drop_table("campaign_runs")
    op.drop_table("assets")
