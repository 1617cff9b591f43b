"""search keys of each person, so a slip in a name's first letters still finds them, quickly

`people.search_keys` holds, space-separated, the keys of every part of the person's name
(handlers/people.py `search_keys`): its Metaphone and NYSIIS keys, its first one to five letters and
its slip keys (each string made by deleting one of its first five letters), so two spellings one slip
apart in those letters ("Lohnson" and "Johnson") share a key even when their sound keys differ. On
PostgreSQL a GIN index on `string_to_array(search_keys, ' ')` finds the people with a key of each word
typed in one index read (api/people.py). On SQLite `person_name_slips` holds the slip keys, one row
each, indexed; the sound keys and starts are read from `person_name_keys` as before. Both are filled
here from the name parts already recorded, and rewritten from then on with them in the transaction
of each change to a case's details.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
GIN = 'ix_people_search_keys'


def upgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_keys', sa.Text(), nullable=True))
    op.create_table(
        'person_name_slips',
        sa.Column('case_id', Id, autoincrement=False, nullable=False),
        sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('slip', sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_person_name_slips_case_id_cases')),
        sa.PrimaryKeyConstraint('case_id', 'position', 'slip', name=op.f('pk_person_name_slips')),
    )
    # the people recorded so far: the same code that keeps the keys in step from now on
    from handlers.people import fill_search_keys

    fill_search_keys(op.get_bind())
    # the indexes after the rows: one sort each instead of millions of inserts into them
    with op.batch_alter_table('person_name_slips', schema=None) as batch_op:
        batch_op.create_index('ix_person_name_slips_slip_case_id', ['slip', 'case_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"CREATE INDEX {GIN} ON people USING gin (string_to_array(search_keys, ' '))")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'DROP INDEX {GIN}')
    with op.batch_alter_table('person_name_slips', schema=None) as batch_op:
        batch_op.drop_index('ix_person_name_slips_slip_case_id')
    op.drop_table('person_name_slips')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('search_keys')
