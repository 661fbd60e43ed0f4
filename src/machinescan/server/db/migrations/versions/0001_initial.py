"""initial schema: users, api keys, scanned instances, scans

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import machinescan.server.db.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login_name', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('entitlements', sa.String(length=1000), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('created', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_modified', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('login_name')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('secret_key', sa.String(length=128), nullable=False),
    sa.Column('created', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_key')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_user_id'), ['user_id'], unique=False)

    op.create_table('scanned_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('distribution_name', sa.String(length=100), nullable=True),
    sa.Column('distribution_version', sa.String(length=100), nullable=True),
    sa.Column('distribution_arch', sa.String(length=50), nullable=True),
    sa.Column('platform_type', sa.String(length=50), nullable=True),
    sa.Column('ram_size_mb', sa.Integer(), nullable=True),
    sa.Column('overlay_included', sa.Boolean(), nullable=True),
    sa.Column('created', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_modified', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'name')
    )
    with op.batch_alter_table('scanned_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scanned_instances_user_id'), ['user_id'], unique=False)

    op.create_table('scans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('percentage', sa.Integer(), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('scanned', sa.Boolean(), nullable=False),
    sa.Column('validated', sa.Boolean(), nullable=False),
    sa.Column('binaries_received', sa.Boolean(), nullable=False),
    sa.Column('binaries_extracted', sa.Boolean(), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Boolean(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('total_packages', sa.Integer(), nullable=True),
    sa.Column('total_files_added', sa.Integer(), nullable=True),
    sa.Column('total_files_modified', sa.Integer(), nullable=True),
    sa.Column('total_files_deleted', sa.Integer(), nullable=True),
    sa.Column('uncompressed_binary_size', sa.BigInteger(), nullable=True),
    sa.Column('report_file_name', sa.String(length=255), nullable=True),
    sa.Column('report_crc', sa.BigInteger(), nullable=True),
    sa.Column('report_size', sa.BigInteger(), nullable=True),
    sa.Column('blob_prefix', sa.String(length=100), nullable=False),
    sa.Column('created', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_modified', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['scanned_instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scans_instance_id'), ['instance_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scans_instance_id'))

    op.drop_table('scans')
    with op.batch_alter_table('scanned_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scanned_instances_user_id'))

    op.drop_table('scanned_instances')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_user_id'))

    op.drop_table('api_keys')
    op.drop_table('users')
