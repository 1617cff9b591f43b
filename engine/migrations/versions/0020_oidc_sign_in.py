"""signing in through the council's identity provider (OpenID Connect)

`user_identities` links an account to the identity provider's person: the issuer and the `sub` claim, unique
together (a person is matched by these, never by e-mail address), with when they were linked and last signed in.
`oidc_sign_ins` holds a sign-in under way between the redirect to the provider and its answer: the SHA-256 of the
browser's handle (a cookie), the `state`, the `nonce` and the PKCE code verifier, and when it expires; a row is
used once. Both are empty after the upgrade.

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'user_identities',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('issuer', sa.String(length=255), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_identities')),
        sa.UniqueConstraint('issuer', 'subject', name=op.f('uq_user_identities_issuer_subject')),
    )
    op.create_index(op.f('ix_user_identities_user_id'), 'user_identities', ['user_id'], unique=True)
    op.create_table(
        'oidc_sign_ins',
        sa.Column('handle_hash', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=64), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('code_verifier', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('handle_hash', name=op.f('pk_oidc_sign_ins')),
    )
    op.create_index(op.f('ix_oidc_sign_ins_expires_at'), 'oidc_sign_ins', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_oidc_sign_ins_expires_at'), table_name='oidc_sign_ins')
    op.drop_table('oidc_sign_ins')
    op.drop_index(op.f('ix_user_identities_user_id'), table_name='user_identities')
    op.drop_table('user_identities')
