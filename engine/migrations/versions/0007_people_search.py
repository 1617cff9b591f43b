"""the people cases are about, indexed for the front door's search

`people` holds one row per case for the person it is about (name as recorded, given names and
family name folded for search, date of birth, postcode without spaces, NHS number), and
`person_name_keys` one row per name part with its Metaphone and NYSIIS keys, indexed, so a
search by a name that sounds alike or has a typo reads a few index entries instead of the JSON of
every case. Both are filled here from the cases already recorded (handlers/people.py `fill`, the
same code that keeps them in step with every later change), and rewritten from then on in the
transaction of each change to a case's details.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'people',
        sa.Column('case_id', Id, autoincrement=False, nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('given_names', sa.String(length=255), nullable=False),
        sa.Column('family_name', sa.String(length=255), nullable=False),
        sa.Column('date_of_birth', sa.String(length=10), nullable=True),
        sa.Column('postcode', sa.String(length=8), nullable=True),
        sa.Column('nhs_number', sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_people_case_id_cases')),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_people')),
    )
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_people_date_of_birth'), ['date_of_birth'], unique=False)
        # a postcode's first part ("NB4") is a prefix: LIKE 'NB4%' reads this index on PostgreSQL too
        batch_op.create_index(batch_op.f('ix_people_postcode'), ['postcode'], unique=False,
                              postgresql_ops={'postcode': 'varchar_pattern_ops'})
        batch_op.create_index(batch_op.f('ix_people_nhs_number'), ['nhs_number'], unique=False)
    op.create_table(
        'person_name_keys',
        sa.Column('case_id', Id, autoincrement=False, nullable=False),
        sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('part', sa.String(length=8), nullable=False),
        sa.Column('word', sa.String(length=60), nullable=False),
        sa.Column('metaphone', sa.String(length=16), nullable=False),
        sa.Column('nysiis', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_person_name_keys_case_id_cases')),
        sa.PrimaryKeyConstraint('case_id', 'position', name=op.f('pk_person_name_keys')),
    )
    with op.batch_alter_table('person_name_keys', schema=None) as batch_op:
        batch_op.create_index('ix_person_name_keys_metaphone_case_id', ['metaphone', 'case_id'], unique=False)
        batch_op.create_index('ix_person_name_keys_nysiis_case_id', ['nysiis', 'case_id'], unique=False)
        batch_op.create_index('ix_person_name_keys_word_case_id', ['word', 'case_id'], unique=False,
                              postgresql_ops={'word': 'varchar_pattern_ops'})  # a name's start: LIKE 'clark%'
    # the cases recorded so far: the same code that keeps the rows in step from now on
    from handlers.people import fill

    fill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('person_name_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_person_name_keys_word_case_id')
        batch_op.drop_index('ix_person_name_keys_nysiis_case_id')
        batch_op.drop_index('ix_person_name_keys_metaphone_case_id')
    op.drop_table('person_name_keys')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_nhs_number'))
        batch_op.drop_index(batch_op.f('ix_people_postcode'))
        batch_op.drop_index(batch_op.f('ix_people_date_of_birth'))
    op.drop_table('people')
