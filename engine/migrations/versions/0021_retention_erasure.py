"""retention and erasure: the one sanctioned change to the append-only tables, and the retention review list

The append-only triggers on `events`, `case_notes`, `case_access_log` (0001, 0003), `break_glass` and
`break_glass_reviews` (0019) are replaced by ones that
still refuse every change and every deletion except one: overwriting the personal part of a row with the erasure
marker and nothing else (`events.data` to '{"_erased":true}', `case_notes.text`, `case_access_log.reason`,
`break_glass.reason` and `break_glass_reviews.note` to '[erased]'), every other column unchanged. engine/erasure.py uses it to erase a case whose retention period has
ended; `history.verify` accepts an erased event only when a `case.erased` event later in its chain attests it
(docs/security.md, "Retention and erasure"). Nothing already stored changes, so every existing chain still
verifies and every signed heads file still matches.

`retention_reviews` holds one row per case the retention job found due for erasure (engine clock), with its
rule, its status (due, held, erased) and who decided. Empty after the upgrade.

Revision ID: 0021
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

EVENT_MARK = '{"_erased":true}'
TEXT_MARK = '[erased]'
# table -> (the column that may be overwritten with the marker, the marker, the columns that must not change,
#           the refusal message the table had before)
_TABLES = {
    'events': ('data', EVENT_MARK, ('id', 'chain', 'seq', 'case_id', 'instance_id', 'type', 'at', 'actor', 'step',
                                    'prev_hash', 'hash'), 'history events are append-only'),
    'case_notes': ('text', TEXT_MARK, ('id', 'case_id', 'author', 'at', 'kind', 'corrects'),
                   'case notes are append-only: add a correction instead'),
    'case_access_log': ('reason', TEXT_MARK, ('id', 'case_id', 'user', 'at', 'action', 'page', 'outcome'),
                        'the case access log is append-only'),
    # break-glass uses (0019): the reason and the reviewer's note are free text about the person
    'break_glass': ('reason', TEXT_MARK, ('id', 'case_id', 'username', 'at', 'expires_at'),
                    'break-glass uses are append-only'),
    'break_glass_reviews': ('note', TEXT_MARK, ('grant_id', 'reviewer', 'at'),
                            'break-glass reviews are append-only'),
}


def _q(column: str) -> str:
    return f'"{column}"'


def _run(sql: str) -> None:
    op.execute(sa.text(sql.replace(":", "\\:")))  # the marker's colon is text, not a bound parameter


def upgrade() -> None:
    op.create_table(
        'retention_reviews',
        sa.Column('case_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('rule', sa.String(length=64), nullable=False),
        sa.Column('closed_at', sa.String(length=40), nullable=False),
        sa.Column('due_on', sa.String(length=10), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('listed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('note', sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_retention_reviews')),
    )
    op.create_index(op.f('ix_retention_reviews_status'), 'retention_reviews', ['status'], unique=False)
    dialect = op.get_bind().dialect.name
    for table, (column, mark, fixed, message) in _TABLES.items():
        if dialect == 'sqlite':
            same = " AND ".join(f"NEW.{_q(c)} IS OLD.{_q(c)}" for c in fixed)
            _run(f"DROP TRIGGER IF EXISTS {table}_no_update")
            _run(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                       f"WHEN NOT (NEW.{_q(column)} = '{mark}' AND {same}) "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
        elif dialect == 'postgresql':
            new = ", ".join(f"NEW.{_q(c)}" for c in fixed)
            old = ", ".join(f"OLD.{_q(c)}" for c in fixed)
            _run(f"CREATE OR REPLACE FUNCTION carepath_{table}_append_only() RETURNS trigger AS $$ "
                       f"BEGIN IF TG_OP = 'UPDATE' AND NEW.{_q(column)} = '{mark}' "
                       f"AND ROW({new}) IS NOT DISTINCT FROM ROW({old}) THEN RETURN NEW; END IF; "
                       f"RAISE EXCEPTION '{message}'; END $$ LANGUAGE plpgsql")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, (_column, _mark, _fixed, message) in _TABLES.items():
        if dialect == 'sqlite':
            _run(f"DROP TRIGGER IF EXISTS {table}_no_update")
            _run(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
        elif dialect == 'postgresql':
            _run(f"CREATE OR REPLACE FUNCTION carepath_{table}_append_only() RETURNS trigger AS $$ "
                       f"BEGIN RAISE EXCEPTION '{message}'; END $$ LANGUAGE plpgsql")
    op.drop_index(op.f('ix_retention_reviews_status'), table_name='retention_reviews')
    op.drop_table('retention_reviews')
