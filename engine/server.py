"""`carepath serve`: the web app with the timer job running beside it."""

from __future__ import annotations

import uvicorn


def serve(db_url: str | None, *, host: str, port: int, timers: bool = True) -> None:
    from api.app import create_app

    from .runtime import Engine

    engine = Engine(db_url)
    app = create_app(engine, run_timers=timers, warm_measures=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
