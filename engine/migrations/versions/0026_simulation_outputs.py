"""simulation outputs: runs of a simulation kept for reuse

`simulation_outputs` holds the output of each run of a simulation from an empty caseload, under the SHA-256 of what
the output depends on (the deployed versions run, the scenario, the period, the seed, the code and libraries that
ran it; carepath/simulate_reuse.py). A comparison of a draft with the live version takes the runs it finds here
instead of making them again. Synthetic figures only; derived, never authoritative: empty after the upgrade.

Revision ID: 0026
Revises: 0025
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'simulation_outputs',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('output', sa.Text(), nullable=False),
        sa.Column('made_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('uses', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('bytes', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_simulation_outputs')),
    )
    op.create_index('ix_simulation_outputs_used_at', 'simulation_outputs', ['used_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_simulation_outputs_used_at', table_name='simulation_outputs')
    op.drop_table('simulation_outputs')
