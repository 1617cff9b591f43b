"""simulation ahead, drafts: the key of the run being made ahead, and whether a process owner's simulation awaits it

The runs made ahead now include the open drafts' (carepath/simulate_ahead.py), and a process owner's comparison
that needs the very run being made ahead waits for it instead of making it again (docs/simulation.md "The runs made
ahead"). `run_key` is the key (simulation_outputs, 0026) of the run being made, NULL between runs; `awaited` is the
key of the run a process owner's simulation waits for (the run is then not paused for it), NULL when none;
`paused_at` is when the run being made was paused for a process owner's simulation, NULL while it runs (a
simulation waiting for a run that stays paused gives up and makes it itself). No personal data; derived, never
authoritative: NULL after the upgrade.

Revision ID: 0028
Revises: 0027
"""
import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('simulation_ahead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('awaited', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('simulation_ahead', schema=None) as batch_op:
        batch_op.drop_column('paused_at')
        batch_op.drop_column('awaited')
        batch_op.drop_column('run_key')
