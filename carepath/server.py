"""`carepath serve`: the web app (api/) on an engine, with the timer job running beside it."""

from __future__ import annotations

from typing import Any

import uvicorn


def serve(engine: Any, *, host: str, port: int, timers: bool = True) -> None:
    """Serve the web app on `engine` (an `engine.runtime.Engine`, or a database URL to make one on)."""
    from api.app import create_app
    from engine.runtime import Engine

    if not isinstance(engine, Engine):
        engine = Engine(engine)
    app = create_app(engine, run_timers=timers, warm_measures=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
