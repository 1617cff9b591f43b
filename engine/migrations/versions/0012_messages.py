"""messages: messages delivered to cases by name, with an idempotency key the database keeps unique

One row per message accepted (delivered at once, or kept until a receiver waits or it expires);
`key` is unique, so the same message sent twice — even by two processes at the same moment — is
applied once (engine/messages.py). Empty after the upgrade.

Revision ID: 0012
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'messages',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('case_id', Id, nullable=False),
        sa.Column('correlation', sa.Text(), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('instance_id', Id, nullable=True),
        sa.Column('actor', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_messages_case_id_cases')),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_messages_instance_id_instances')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
        sa.UniqueConstraint('key', name=op.f('uq_messages_key')),
    )
    op.create_index('ix_messages_case_id_status_name', 'messages', ['case_id', 'status', 'name'])


def downgrade() -> None:
    op.drop_index('ix_messages_case_id_status_name', table_name='messages')
    op.drop_table('messages')
