"""role requests: an administrator's change to their own account that would open case records waits for a second
administrator

`role_requests` holds one row per such request (the roles and teams asked for, what in them opens cases, who asked,
and — once decided — who approved or refused it, when and why). The change itself is applied to `users` only on
approval; every step is also written to the system history chain. Empty after the upgrade.

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'role_requests',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('roles', sa.JSON(), nullable=False),
        sa.Column('teams', sa.JSON(), nullable=False),
        sa.Column('added', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision_reason', sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_role_requests')),
    )
    op.create_index(op.f('ix_role_requests_username'), 'role_requests', ['username'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_role_requests_username'), table_name='role_requests')
    op.drop_table('role_requests')
