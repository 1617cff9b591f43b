"""simulation runs, waiting for: which run made ahead a process owner's simulation waits for, to say so while it runs

A simulation that needs the very run a server is making ahead waits for it instead of making it again
(carepath/simulate_ahead.py `Awaiting`, 0028). Its waiting page said only "0 of 4 runs finished" meanwhile, as if
nothing were happening. `waiting_for` is JSON {"side": "live" | "draft", "seed": n, "since": ISO time} while it
waits, NULL otherwise: the page and its status say which run it waits for and since when. No personal data; NULL
after the upgrade.

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


def downgrade() -> None:
    with op.batch_alter_table('simulation_runs', schema=None) as batch_op:
        batch_op.drop_column('waiting_for')
