"""report index: packages, files, jobs, install profile

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import machinescan.server.db.models

BYTE_ORDERED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('scan_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('heartbeat', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished', machinescan.server.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_scan_id'), ['scan_id'], unique=False)
        batch_op.create_index('ix_jobs_state', ['state', 'id'], unique=False)

    op.create_table('scanned_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scan_id', sa.Integer(), nullable=False),
    sa.Column('path', BYTE_ORDERED_TEXT, nullable=False),
    sa.Column('path_b64', sa.Text(), nullable=True),
    sa.Column('directory', BYTE_ORDERED_TEXT, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=True),
    sa.Column('uid', sa.Integer(), nullable=True),
    sa.Column('gid', sa.Integer(), nullable=True),
    sa.Column('owner', sa.String(length=255), nullable=True),
    sa.Column('group', sa.String(length=255), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('mtime', sa.Float(), nullable=True),
    sa.Column('nlink', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('link_target', sa.Text(), nullable=True),
    sa.Column('package', sa.String(length=255), nullable=True),
    sa.Column('packages', sa.Text(), nullable=True),
    sa.Column('change', sa.String(length=10), nullable=False),
    sa.Column('changed', sa.String(length=100), nullable=True),
    sa.Column('conffile', sa.Boolean(), nullable=False),
    sa.Column('in_overlay', sa.Boolean(), nullable=False),
    sa.Column('uploaded', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scanned_files', schema=None) as batch_op:
        batch_op.create_index('ix_scanned_files_scan_path', ['scan_id', 'path'], unique=False)

    op.create_table('scanned_packages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scan_id', sa.Integer(), nullable=False),
    sa.Column('manager', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('version', sa.String(length=255), nullable=False),
    sa.Column('release', sa.String(length=255), nullable=True),
    sa.Column('epoch', sa.Integer(), nullable=True),
    sa.Column('arch', sa.String(length=50), nullable=True),
    sa.Column('installed_size', sa.BigInteger(), nullable=True),
    sa.Column('install_time', sa.String(length=40), nullable=True),
    sa.Column('source', sa.String(length=255), nullable=True),
    sa.Column('files', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=50), nullable=True),
    sa.Column('modified', sa.Boolean(), nullable=False),
    sa.Column('missing_files', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('scanned_packages', schema=None) as batch_op:
        batch_op.create_index('ix_scanned_packages_scan_name', ['scan_id', 'name', 'arch'], unique=False)

    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overlay_expected', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('report_header', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('install_profile', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_column('install_profile')
        batch_op.drop_column('report_header')
        batch_op.drop_column('overlay_expected')

    with op.batch_alter_table('scanned_packages', schema=None) as batch_op:
        batch_op.drop_index('ix_scanned_packages_scan_name')

    op.drop_table('scanned_packages')
    with op.batch_alter_table('scanned_files', schema=None) as batch_op:
        batch_op.drop_index('ix_scanned_files_scan_path')

    op.drop_table('scanned_files')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state')
        batch_op.drop_index(batch_op.f('ix_jobs_scan_id'))

    op.drop_table('jobs')
