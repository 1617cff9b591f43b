"""a partial index of the process instances paused now

Every inbox page asks which instances are paused (engine/suspension.py: a hospital admission pauses
reablement), to leave their tasks out of the overdue and due-soon counts. It read every `instance.suspended`
event ever written and then those instances, so the page grew slower with each year's admissions (10,000
past pauses: 58 ms a page on SQLite, bench/paused_lookup_bench.py). `ix_instances_suspended` holds only the
instances whose status is 'suspended' now (a partial index, on SQLite and PostgreSQL), so the question reads
as many index entries as there are paused processes. No data changes.

Revision ID: 0031
Revises: 0030
"""
import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_instances_suspended', 'instances', ['id'], unique=False,
                    postgresql_where=sa.text("status = 'suspended'"), sqlite_where=sa.text("status = 'suspended'"))


def downgrade() -> None:
    op.drop_index('ix_instances_suspended', table_name='instances')
