"""Create or upgrade the schema with Alembic (migrations live in engine/migrations)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from .db import Database

_HERE = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


#: Alembic's migration context is one per process (`alembic.context`, a module-level proxy): two upgrades at once in
#: two threads — a simulation's scratch engine and a draft's trial run, say — would each find the other's context
#: ("KeyError: 'config'"), so they take turns
_UPGRADING = threading.Lock()


def upgrade(db: Database, revision: str = "head") -> None:
    with _UPGRADING:
        command.upgrade(alembic_config(db), revision)
