"""simulation runs, waiting for and progress: which run made ahead a simulation waits for, and how far its runs have come

A simulation that needs the very run a server is making ahead waits for it instead of making it again
(carepath/simulate_ahead.py `Awaiting`, 0028). Its waiting page said only "0 of 4 runs finished" meanwhile, as if
nothing were happening. `waiting_for` is JSON {"side": "live" | "draft", "seed": n, "since": ISO time} while it
waits, NULL otherwise: the page and its status say which run it waits for and since when. `progress` is JSON
{"live:1": days, "draft:1": days} of the runs being made, the whole days each has simulated, so that a year's
comparison's page does not stand still at "0 of 4 runs finished" for minutes; `simulation_ahead.day` is the same
of the run made ahead (said while a simulation waits for it). No personal data; NULL after the upgrade.

Revision ID: 0029
Revises: 0028
"""
import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('simulation_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting_for', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('progress', sa.Text(), nullable=True))
    with op.batch_alter_table('simulation_ahead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('day', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('simulation_ahead', schema=None) as batch_op:
        batch_op.drop_column('day')
    with op.batch_alter_table('simulation_runs', schema=None) as batch_op:
        batch_op.drop_column('progress')
        batch_op.drop_column('waiting_for')
