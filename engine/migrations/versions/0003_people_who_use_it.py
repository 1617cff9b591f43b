"""users, sessions, case access log, restricted cases and case notes under the migrations

Until now the web app created its own tables when it started; databases made that way keep
their rows: each table is created only when missing, and `users` gains `active`.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    have = _tables()
    if 'users' not in have:
        op.create_table(
            'users',
            sa.Column('id', Id, autoincrement=True, nullable=False),
            sa.Column('username', sa.String(length=64), nullable=False),
            sa.Column('display_name', sa.String(length=255), nullable=False),
            sa.Column('password_hash', sa.String(length=255), nullable=False),
            sa.Column('roles', sa.JSON(), nullable=False),
            sa.Column('teams', sa.JSON(), nullable=False),
            sa.Column('failed_attempts', sa.Integer(), nullable=False),
            sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
            sa.Column('active', sa.Boolean(), nullable=False),
            sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
            sa.UniqueConstraint('username', name=op.f('uq_users_username')),
        )
    else:  # made by an earlier web app: keep its users, add the new column
        with op.batch_alter_table('users', schema=None) as batch_op:
            batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
        with op.batch_alter_table('users', schema=None) as batch_op:
            batch_op.alter_column('active', server_default=None)
    if 'sessions' not in have:
        op.create_table(
            'sessions',
            sa.Column('token_hash', sa.String(length=64), nullable=False),
            sa.Column('user_id', Id, nullable=False),
            sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('csrf_token', sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_sessions')),
        )
        with op.batch_alter_table('sessions', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_sessions_user_id'), ['user_id'], unique=False)
    if 'case_access_log' not in have:
        op.create_table(
            'case_access_log',
            sa.Column('id', Id, autoincrement=True, nullable=False),
            sa.Column('case_id', sa.BigInteger(), nullable=False),
            sa.Column('user', sa.String(length=64), nullable=False),
            sa.Column('at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('action', sa.String(length=32), nullable=False),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_case_access_log')),
        )
        with op.batch_alter_table('case_access_log', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_case_access_log_case_id'), ['case_id'], unique=False)
    if 'restricted_cases' not in have:
        op.create_table(
            'restricted_cases',
            sa.Column('case_id', sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column('allowed', sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint('case_id', name=op.f('pk_restricted_cases')),
        )
    op.create_table(
        'case_notes',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('case_id', Id, nullable=False),
        sa.Column('author', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('corrects', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_notes_case_id_cases')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_notes')),
    )
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_notes_case_id'), ['case_id'], unique=False)
    _append_only('case_access_log', 'the case access log is append-only')
    _append_only('case_notes', 'case notes are append-only: add a correction instead')


def _append_only(table: str, message: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for verb in ('UPDATE', 'DELETE'):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb.lower()}")
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
    elif dialect == 'postgresql':
        op.execute(f"CREATE OR REPLACE FUNCTION carepath_{table}_append_only() RETURNS trigger AS $$ "
                   f"BEGIN RAISE EXCEPTION '{message}'; END $$ LANGUAGE plpgsql")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION carepath_{table}_append_only()")


def downgrade() -> None:
    op.drop_table('case_notes')
    for table in ('restricted_cases', 'case_access_log', 'sessions', 'users'):
        op.drop_table(table)
