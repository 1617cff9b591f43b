"""Alembic environment: runs migrations on the engine carepath hands over (or the configured URL)."""

from alembic import context
from sqlalchemy import create_engine

from engine.schema import metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"),
                                                          hide_parameters=True)

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
