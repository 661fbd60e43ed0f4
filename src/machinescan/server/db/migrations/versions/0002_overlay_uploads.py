"""overlay uploads (issue 4): upload state and acknowledged chunks; the overlay columns of scans

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import machinescan.server.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "overlay_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("storage_handle", sa.String(length=1000), nullable=True),
        sa.Column("received_bytes", sa.BigInteger(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("overlay_name", sa.String(length=255), nullable=True),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.Column("created", machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_activity", machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scan_id"),
    )
    with op.batch_alter_table("overlay_uploads", schema=None) as batch_op:
        batch_op.create_index("ix_overlay_uploads_state_activity", ["state", "last_activity"], unique=False)

    op.create_table(
        "overlay_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=False),
        sa.Column("first_byte", sa.BigInteger(), nullable=False),
        sa.Column("last_byte", sa.BigInteger(), nullable=False),
        sa.Column("crc32", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["overlay_uploads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("overlay_chunks", schema=None) as batch_op:
        batch_op.create_index("ix_overlay_chunks_upload_first", ["upload_id", "first_byte"], unique=False)

    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overlay_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("overlay_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("overlay_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("overlay_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_column("overlay_sha256")
        batch_op.drop_column("overlay_size")
        batch_op.drop_column("overlay_name")
        batch_op.drop_column("overlay_key")

    with op.batch_alter_table("overlay_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_overlay_chunks_upload_first")
    op.drop_table("overlay_chunks")

    with op.batch_alter_table("overlay_uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_overlay_uploads_state_activity")
    op.drop_table("overlay_uploads")
