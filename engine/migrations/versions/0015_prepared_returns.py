"""prepared returns: the statutory returns the returns page prepares in the background

`prepared_returns` holds one row per return, period and version (what the return was made from): the page that
sends the Client Level Data return prepares it in the background (a county year takes tens of seconds) and every
server process on the database finds it here, preparing or ready, so that the file downloaded from any process is
the rows the report showed. Derived, never authoritative: empty after the upgrade; deleting rows only makes the
next page prepare the return again.

Revision ID: 0015
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'prepared_returns',
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('period_start', sa.String(length=10), nullable=False),
        sa.Column('period_end', sa.String(length=10), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('body', sa.LargeBinary(), nullable=True),
        sa.Column('failure', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('kind', 'period_start', 'period_end', 'version', name=op.f('pk_prepared_returns')),
    )


def downgrade() -> None:
    op.drop_table('prepared_returns')
