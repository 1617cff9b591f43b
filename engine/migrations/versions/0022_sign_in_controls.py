"""sign-in controls: a second factor (TOTP) for local accounts, failed sign-ins counted by account and address

`users` gains the TOTP secret (encrypted with the configured key when one is set: api/mfa.py), whether it is
switched on, the last time step used (a code is never accepted twice) and the recovery codes' hashes.
`mfa_challenges` holds a signed-in-by-password-only step (its token's SHA-256) until the code is given.
`sign_in_throttle` counts failed sign-ins per (account, client address) and per address, with the instant
until which the next attempt waits (back-off). Empty after the upgrade; every account starts without MFA.

Revision ID: 0022
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_secret', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('mfa_enabled', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('mfa_last_step', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('mfa_recovery', sa.JSON(), nullable=True))
    op.create_table(
        'mfa_challenges',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', _ID, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_mfa_challenges')),
    )
    op.create_table(
        'sign_in_throttle',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_throttle')),
    )


def downgrade() -> None:
    op.drop_table('sign_in_throttle')
    op.drop_table('mfa_challenges')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('mfa_recovery')
        batch_op.drop_column('mfa_last_step')
        batch_op.drop_column('mfa_enabled')
        batch_op.drop_column('mfa_secret')
