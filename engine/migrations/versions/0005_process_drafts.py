"""process drafts (the workbench) and who wrote, approved and explained each deployment

`process_drafts` holds a process owner's unfinished change to a process: its files, the version
it starts from, who wrote it and its review status. A draft never runs: it reaches
`process_versions` only through `engine.drafts.approve_draft`, which deploys it.

`deployments` gains `change_note`, `author` and `approver` (empty for older deployments).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('author', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('approver', sa.String(length=255), nullable=True))
    op.create_table(
        'process_drafts',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('process_id', sa.String(length=255), nullable=False),
        sa.Column('base_version_id', Id, nullable=True),
        sa.Column('author', sa.String(length=255), nullable=False),
        sa.Column('editors', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=255), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('change_note', sa.Text(), nullable=False),
        sa.Column('files', sa.Text(), nullable=False),
        sa.Column('example', sa.Text(), nullable=True),
        sa.Column('rebase_changes', sa.Text(), nullable=True),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=255), nullable=True),
        sa.Column('decision_note', sa.Text(), nullable=True),
        sa.Column('deployed_version_id', Id, nullable=True),
        sa.ForeignKeyConstraint(['base_version_id'], ['process_versions.id'],
                                name=op.f('fk_process_drafts_base_version_id_process_versions')),
        sa.ForeignKeyConstraint(['deployed_version_id'], ['process_versions.id'],
                                name=op.f('fk_process_drafts_deployed_version_id_process_versions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_process_drafts')),
    )
    with op.batch_alter_table('process_drafts', schema=None) as batch_op:
        batch_op.create_index('ix_process_drafts_process_id_status', ['process_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_table('process_drafts')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_column('approver')
        batch_op.drop_column('author')
        batch_op.drop_column('change_note')
