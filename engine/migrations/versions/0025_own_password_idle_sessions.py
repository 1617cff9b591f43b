"""one's own password and idle sessions: a password someone else chose must be changed; sessions end when unused

`users.password_change_due` is set when an administrator creates an account or sets its password (directly or
once a second administrator approves it): its owner must choose their own at their next sign-in before anything
else (api/auth.py, docs/security.md "Passwords, sign-in and lock-out"). False for every account already there.
`sessions.last_used_at` is when the session was last used (written at most once a minute); a session unused for
longer than the idle period ends. Filled with the session's start for the sessions already there.

Revision ID: 0025
Revises: 0024
"""
import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_change_due', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE sessions SET last_used_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('password_change_due')
