"""a team's queue and a person's tasks read in due order from an index

Replaces the single-column indexes on tasks.team and tasks.assignee (each is the first column
of its new index).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_team')
        batch_op.drop_index('ix_tasks_assignee')
        batch_op.create_index('ix_tasks_team_due', ['team', 'due_at', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_assignee_due', ['assignee', 'due_at', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_assignee_due')
        batch_op.drop_index('ix_tasks_team_due')
        batch_op.create_index('ix_tasks_assignee', ['assignee'], unique=False)
        batch_op.create_index('ix_tasks_team', ['team'], unique=False)
