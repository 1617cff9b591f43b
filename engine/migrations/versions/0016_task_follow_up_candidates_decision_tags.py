"""follow-up dates and candidate users on tasks; decision version tags

`tasks.follow_up_at`: the diagram's follow-up date (camunda:followUpDate, zeebe:taskSchedule followUpDate),
indexed for the inbox's "follow-up due" filter. `tasks.candidate_users`: a JSON list of the people the diagram
offers the task to (camunda:candidateUsers, zeebe candidateUsers), with a partial index over the tasks that have
any. `decision_versions.version_tag`: a DMN decision's camunda:versionTag, which a business rule task may bind to
(camunda:decisionRefBinding="versionTag"). Existing rows get NULL: no follow-up date, no candidate users, no tag.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_up_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('candidate_users', sa.Text(), nullable=True))
        batch_op.create_index('ix_tasks_follow_up_at', ['follow_up_at'], unique=False)
        batch_op.create_index('ix_tasks_candidate_users', ['candidate_users'], unique=False,
                              postgresql_where=sa.text('candidate_users IS NOT NULL'),
                              sqlite_where=sa.text('candidate_users IS NOT NULL'))
    with op.batch_alter_table('decision_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version_tag', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('decision_versions', schema=None) as batch_op:
        batch_op.drop_column('version_tag')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_candidate_users')
        batch_op.drop_index('ix_tasks_follow_up_at')
        batch_op.drop_column('candidate_users')
        batch_op.drop_column('follow_up_at')
