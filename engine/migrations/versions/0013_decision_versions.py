"""decision versions: every deployed version of a DMN decision, numbered per decision id

`decision_versions` holds one row per version of a decision, deployed on its own (`carepath deploy file.dmn`) or
with a process; business rule tasks evaluate the latest version unless bound to the one deployed with their
process (engine/dmn.py). Empty after the upgrade: decisions deployed before it stay in their processes' files
and are used from there until a new version of them is deployed.

Revision ID: 0013
Revises: 0012 (the integrator may need to chain it after the other migrations of the same round)
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'decision_versions',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('decision_id', sa.String(length=255), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('file_id', Id, nullable=False),
        sa.Column('content_sha256', sa.String(length=64), nullable=False),
        sa.Column('required', sa.Text(), nullable=False),
        sa.Column('deployment_id', Id, nullable=False),
        sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['file_id'], ['definition_files.id'],
                                name=op.f('fk_decision_versions_file_id_definition_files')),
        sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'],
                                name=op.f('fk_decision_versions_deployment_id_deployments')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_decision_versions')),
        sa.UniqueConstraint('decision_id', 'version', name=op.f('uq_decision_versions_decision_id_version')),
    )


def downgrade() -> None:
    op.drop_table('decision_versions')
