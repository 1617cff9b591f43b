"""measure facts: what the measures read from each case, kept so the first measures page is quick

`measure_facts` holds one row per case: the per-case items of every measure, worked out from the case's
history (handlers/measures.py, ``case_facts``), with the id of the case's latest event they were worked out
from and the basis they were worked out on (the facts' version and the teams of the deployed tasks). A row is
derived, never authoritative: it is worked out again whenever its case has a later event or the basis
changes, and dropping the table's rows only makes the next measures page slow. Empty after the upgrade: the
first measures page (or ``carepath measures``) fills it.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'measure_facts',
        sa.Column('case_id', Id, nullable=False),
        sa.Column('last_event_id', Id, nullable=False),
        sa.Column('basis', sa.String(length=64), nullable=False),
        sa.Column('facts', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_measure_facts_case_id_cases')),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_measure_facts')),
    )


def downgrade() -> None:
    op.drop_table('measure_facts')
