"""`carepath serve`: the web app (api/) on an engine, with the timer job running beside it.

uvicorn picks its fastest event loop and HTTP parser when they are installed (`uvicorn[standard]`:
uvloop and httptools, a dependency of carepath since issue 14); without them it falls back to asyncio
and h11, which behave the same but cost about twice as much per request (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

import uvicorn


def uvicorn_config(app: Any, *, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """The server settings `carepath serve` uses (bench/http_bench.py measures the same ones).

    uvicorn's own access line (client address, path *with its query string*) is off: the app writes its own
    to standard output, with a request id, the path without query or personal data, the status and the time
    taken, and logs errors without their messages (api/request_log.py, docs/security.md "Logs")."""
    from api.request_log import log_config

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, loop="auto", http="auto",
                          access_log=False, log_config=log_config(log_level.upper()))


def serve(engine: Any, *, host: str, port: int, timers: bool = True) -> None:
    """Serve the web app on `engine` (an `engine.runtime.Engine`, or a database URL to make one on)."""
    import logging

    from api.app import auth_settings_from_env, create_app
    from engine.runtime import Engine

    if not isinstance(engine, Engine):
        engine = Engine(engine)
    auth = auth_settings_from_env()  # administrators must use a second factor unless configured otherwise
    if not auth.mfa_key:
        logging.getLogger("carepath").warning(
            "CAREPATH_MFA_KEY is not set: two-step verification secrets are stored unencrypted "
            "(docs/security.md, \"Passwords, sign-in and lock-out\")")
    app = create_app(engine, run_timers=timers, warm_measures=True, auth=auth, simulations_ahead=True)
    uvicorn.Server(uvicorn_config(app, host=host, port=port)).run()
