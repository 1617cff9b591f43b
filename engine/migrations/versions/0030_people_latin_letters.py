"""name search keys again for people whose name has a Latin letter with no decomposition (Ł, Ø, Đ, Æ, Œ, Þ, ı)

Until now a name part was folded by dropping accents only (NFKD), so "Łukasz" was kept as "łukasz", its sound
keys made from "ukasz", and a search for "Lukasz" (as typed on a keyboard without the letter) did not find him.
handlers/people.py `fold` now reads such letters as ASCII ("lukasz"). The people whose recorded name has a
character outside ASCII get their `people`, `person_name_keys` and `person_name_slips` rows rewritten by the same
code that keeps them in step with each change to a case (`keep_in_step`); others are unchanged. Nothing leaves
the database; downgrade leaves the new keys (the old ones found fewer people, never others).

Revision ID: 0030
Revises: 0029
"""
import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from handlers.people import keep_in_step

    conn = op.get_bind()
    people = sa.table('people', sa.column('case_id'), sa.column('name'))
    ids = [r.case_id for r in conn.execute(sa.select(people.c.case_id, people.c.name))
           if not (r.name or '').isascii()]
    for case_id in ids:
        keep_in_step(conn, case_id)


def downgrade() -> None:
    pass
