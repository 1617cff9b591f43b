"""simulation runs: the what-if simulations started from the pages, kept in the database

`simulation_runs` holds one row per simulation a process owner started from a draft's review page (the draft
against the live version) or from the processes page (one run of the live processes, `draft_id` NULL): what was
asked (draft, revision, days, seeds, scenario, the deployed versions, and where its runs start: `starts_from`,
"empty" for an empty caseload or "today" for an anonymised copy of today's open cases), who asked and when, its
status (running, ready, failed), how many runs are done, and its result (JSON) or why it could not be run. The server
process running it writes a heartbeat (`heartbeat_at`) while it runs, so that a row left running by a stopped server
is seen as failed. A partial unique index allows one `running` row: one simulation at a time across every server
process on the database. Before this revision the results were kept in each server process's memory. Derived, never
authoritative: empty after the upgrade.

Revision ID: 0023
Revises: 0022
"""
import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'simulation_runs',
        sa.Column('id', _ID, autoincrement=False, nullable=False),
        sa.Column('run_key', sa.String(length=64), nullable=False),
        sa.Column('draft_id', sa.BigInteger(), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=True),
        sa.Column('process_id', sa.String(length=255), nullable=False),
        sa.Column('days', sa.Integer(), nullable=False),
        sa.Column('seeds', sa.Text(), nullable=False),
        sa.Column('scenario', sa.Text(), nullable=False),
        sa.Column('live', sa.Text(), nullable=False),
        sa.Column('starts_from', sa.String(length=16), nullable=False, server_default=sa.text("'empty'")),
        sa.Column('started_by', sa.String(length=64), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_simulation_runs')),
    )
    op.create_index('ix_simulation_runs_run_key', 'simulation_runs', ['run_key'], unique=False)
    op.create_index('ix_simulation_runs_draft_id', 'simulation_runs', ['draft_id'], unique=False)
    op.create_index('uq_simulation_runs_running', 'simulation_runs', ['status'], unique=True,
                    postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index('uq_simulation_runs_running', table_name='simulation_runs')
    op.drop_index('ix_simulation_runs_draft_id', table_name='simulation_runs')
    op.drop_index('ix_simulation_runs_run_key', table_name='simulation_runs')
    op.drop_table('simulation_runs')
