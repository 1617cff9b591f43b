"""letters sent: a queue of filed letters to send through the council's provider, and what became of each

`letter_sends` holds one row per letter to be sent (GOV.UK Notify, by post or email: handlers/letter_sending.py),
inserted in the transaction that files the letter in `documents` (the registry's document listener), so a
letter is queued exactly once (`document_id` is unique) and never without its document. `reference` is
given to the provider with every send: a send whose outcome was unknown (a time-out, a server error) is
looked up by it before any new attempt, so a letter is never sent twice. The row keeps the status as
the provider reports it, the attempts, the last error in words, and the PDF posted with its SHA-256
(what the council can show it sent). No rows are written for letters filed before this revision.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'letter_sends',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('document_id', Id, nullable=False),
        sa.Column('case_id', Id, nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('reference', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('provider_status', sa.String(length=32), nullable=True),
        sa.Column('provider_id', sa.String(length=64), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('pdf', sa.LargeBinary(), nullable=True),
        sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_letter_sends_case_id_cases')),
        sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_letter_sends_document_id_documents')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_letter_sends')),
        sa.UniqueConstraint('document_id', name=op.f('uq_letter_sends_document_id')),
        sa.UniqueConstraint('reference', name=op.f('uq_letter_sends_reference')),
    )
    with op.batch_alter_table('letter_sends', schema=None) as batch_op:
        batch_op.create_index('ix_letter_sends_case_id', ['case_id'], unique=False)
        batch_op.create_index('ix_letter_sends_status_next_at', ['status', 'next_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('letter_sends', schema=None) as batch_op:
        batch_op.drop_index('ix_letter_sends_status_next_at')
        batch_op.drop_index('ix_letter_sends_case_id')
    op.drop_table('letter_sends')
