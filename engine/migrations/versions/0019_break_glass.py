"""break-glass access: a casework user not named on a restricted case reads it for a limited time, with a reason

`break_glass` holds one row per use (case, who, why, when, until when); `break_glass_reviews` one row per use an
administrator has reviewed (who, when, their note). Both are append-only (database triggers, as the case access
log): a use cannot be shortened, hidden or un-reviewed after the fact. Every use and review is also an event in
the case's own hash-chained history. Empty after the upgrade.

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'break_glass',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('case_id', Id, nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_break_glass_case_id_cases')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_break_glass')),
    )
    op.create_index(op.f('ix_break_glass_case_id'), 'break_glass', ['case_id'], unique=False)
    op.create_index('ix_break_glass_username_case_id', 'break_glass', ['username', 'case_id'], unique=False)
    op.create_table(
        'break_glass_reviews',
        sa.Column('grant_id', Id, autoincrement=False, nullable=False),
        sa.Column('reviewer', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['break_glass.id'], name=op.f('fk_break_glass_reviews_grant_id_break_glass')),
        sa.PrimaryKeyConstraint('grant_id', name=op.f('pk_break_glass_reviews')),
    )
    _append_only('break_glass', 'break-glass uses are append-only')
    _append_only('break_glass_reviews', 'break-glass reviews are append-only')


def _append_only(table: str, message: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for verb in ('UPDATE', 'DELETE'):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
    elif dialect == 'postgresql':
        op.execute(f"CREATE OR REPLACE FUNCTION carepath_{table}_append_only() RETURNS trigger AS $$ "
                   f"BEGIN RAISE EXCEPTION '{message}'; END $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION carepath_{table}_append_only()")


def downgrade() -> None:
    op.drop_table('break_glass_reviews')
    op.drop_index('ix_break_glass_username_case_id', table_name='break_glass')
    op.drop_index(op.f('ix_break_glass_case_id'), table_name='break_glass')
    op.drop_table('break_glass')
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('break_glass', 'break_glass_reviews'):
            op.execute(f"DROP FUNCTION IF EXISTS carepath_{table}_append_only()")
