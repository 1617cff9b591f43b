"""measure pages: the measures page's figures per period and team, kept with the mark they were worked out at

`measure_pages` holds one row per period and team a measures page was shown for: every figure, its parts and its
months (handlers/measures_pages.py), the mark of the events it was worked out at (the latest event id, the events
among the last 10,000 ids, the number of cases, the latest deployment) and the basis (the measure facts' basis
and the page code's). A new server process shows a row only while its mark and basis are the database's current
ones; otherwise it works the figures out from the kept facts and writes the row again. Derived, never
authoritative: deleting the rows only makes the next first page after a start slow. Empty after the upgrade.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'measure_pages',
        sa.Column('key', sa.String(length=80), nullable=False),
        sa.Column('mark', sa.String(length=200), nullable=False),
        sa.Column('basis', sa.String(length=64), nullable=False),
        sa.Column('figures', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_measure_pages')),
    )


def downgrade() -> None:
    op.drop_table('measure_pages')
