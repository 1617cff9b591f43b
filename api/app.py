"""The FastAPI application.

For now it publishes only what holds no personal data (health and the clock); the case and
task API arrives together with sign-in and authorisation, so no case record is ever served
without an identity check.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI


def create_app(engine: Any, *, run_timers: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        sched = None
        if run_timers:
            from engine.worker import background_scheduler

            sched = background_scheduler(engine)
            sched.start()
        try:
            yield
        finally:
            if sched is not None:
                sched.shutdown(wait=False)

    app = FastAPI(title="carepath", version="0.1.0", lifespan=lifespan)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "database": engine.db.dialect, "clock": engine.clock_mode(),
                "now": engine.now().isoformat()}

    return app
