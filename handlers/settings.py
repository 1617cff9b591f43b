"""Local settings: the council's own timescales (processes/config/timescales.json).

Diagrams call the `local_settings` handler once near their start and keep the result in a
variable (e.g. `settings`), so timers read `settings["reablement_length"]` instead of a
value written into the diagram; the value a case used is recorded in its history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config_files import cached, read_json

CONFIG = Path(__file__).resolve().parent.parent / "processes" / "config" / "timescales.json"


def load(path: Path = CONFIG) -> dict[str, Any]:
    """The settings in `path` (read again only when the file changes)."""
    return cached(path, _read)


def _read(path: Path) -> dict[str, Any]:
    data = read_json(path, "the local settings file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: local settings must be a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def local_settings(ctx: Any, keys: list[str] | None = None) -> dict[str, Any]:
    """All local settings, or only `keys` (an unknown key is an error naming it)."""
    data = load()
    if keys is None:
        return data
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"unknown local setting(s): {', '.join(missing)} (see {CONFIG.name})")
    return {k: data[k] for k in keys}


def register(registry: Any) -> None:
    registry.register("local_settings", local_settings)
