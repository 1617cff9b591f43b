"""the case access log says from which page, why and whether it was refused; auditors' search indexes

`case_access_log` gains `page` (the page or API route it happened from), `reason` (why, e.g. for an
evidence export) and `outcome` ('allowed' | 'refused'; empty on rows written before this revision,
read as 'allowed' unless their action says 'refused:...'). Columns are added in place (ALTER TABLE ...
ADD COLUMN, no table copy), so the append-only triggers stay.

Indexes for the auditors' search (api/audit.py) on 20,000 cases and their history:
`events (actor, case_id)` (the staff member who acted), `events (type, case_id)` (an event type;
it replaces the index on `type` alone), `events (at)` (events within a date range),
`cases (created_at)` (cases created within a date range), and for the access log view
`case_access_log (user, id)` and `case_access_log (at)`.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('case_access_log', sa.Column('page', sa.String(length=200), nullable=True))
    op.add_column('case_access_log', sa.Column('reason', sa.Text(), nullable=True))
    op.add_column('case_access_log', sa.Column('outcome', sa.String(length=16), nullable=True))
    op.create_index('ix_case_access_log_user_id', 'case_access_log', ['user', 'id'], unique=False)
    op.create_index('ix_case_access_log_at', 'case_access_log', ['at'], unique=False)
    op.create_index('ix_events_actor_case_id', 'events', ['actor', 'case_id'], unique=False)
    # by type, the cases read from the index alone (replaces the index on type, its first column)
    op.create_index('ix_events_type_case_id', 'events', ['type', 'case_id'], unique=False)
    op.drop_index('ix_events_type', table_name='events')
    op.create_index('ix_events_at', 'events', ['at'], unique=False)
    op.create_index('ix_cases_created_at', 'cases', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cases_created_at', table_name='cases')
    op.drop_index('ix_events_at', table_name='events')
    op.create_index('ix_events_type', 'events', ['type'], unique=False)
    op.drop_index('ix_events_type_case_id', table_name='events')
    op.drop_index('ix_events_actor_case_id', table_name='events')
    op.drop_index('ix_case_access_log_at', table_name='case_access_log')
    op.drop_index('ix_case_access_log_user_id', table_name='case_access_log')
    with op.batch_alter_table('case_access_log', schema=None) as batch_op:
        batch_op.drop_column('outcome')
        batch_op.drop_column('reason')
        batch_op.drop_column('page')
