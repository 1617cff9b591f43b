"""simulation ahead: who is making the live version's runs of a simulation ahead of being asked

`simulation_ahead` holds at most one row (`name` 'ahead'): the server process that is making, at the lowest
priority, the runs of the deployed versions that a comparison of a draft will need (carepath/simulate_ahead.py),
what it is making, and a heartbeat; a row whose heartbeat is old is taken over by another process. So on one
PostgreSQL database with several server processes only one of them makes those runs. The runs themselves are kept
in `simulation_outputs` (0026). No personal data; derived, never authoritative: empty after the upgrade.

Revision ID: 0027
Revises: 0026
"""
import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'simulation_ahead',
        sa.Column('name', sa.String(length=16), nullable=False),
        sa.Column('holder', sa.String(length=64), nullable=False),
        sa.Column('making', sa.String(length=64), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_simulation_ahead')),
    )


def downgrade() -> None:
    op.drop_table('simulation_ahead')
