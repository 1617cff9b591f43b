"""pending account changes: every change that gives an account case access or administration, or its password or
second factor, waits for a second administrator

`role_requests` (migration 0018: an administrator's change to their own account that would open case records)
now also holds a new account with the administrator role or a role that opens case records, such a role given to
someone else's account, and a new password or a second-factor reset for an account that holds one. `kind` says
which (`roles`, the only kind until now, for the rows already there; `account`, `password`, `mfa_reset`);
`password_hash` keeps the argon2 hash of a new password until it is decided, and is emptied then.

Revision ID: 0024
Revises: 0023
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('role_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='roles'))
        batch_op.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('role_requests', schema=None) as batch_op:
        batch_op.drop_column('password_hash')
        batch_op.drop_column('kind')
