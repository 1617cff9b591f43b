"""What the access and error logging middleware costs per request (issue 15 item 4, api/request_log.py).

The app is driven directly as an ASGI callable (no server, no sockets: only the app's own CPU is timed),
built twice on one SQLite database: as `create_app` builds it (its middleware, api/http_layer.py, with the
access line written at INFO through `carepath serve`'s formatter to /dev/null) and with that middleware's
logging part taken out (`_Unlogged`: no request id, no access or error line). Rounds of
`--n` requests per variant, interleaved, the first variant alternating; CPU time of this process per
request (time.process_time), the ratio taken round by round. Requests: `GET /api/health` (one small
read) and `GET /api/cases/12/notes` without a session (a 401: routing and the session check, no database
work) — the cheapest request a route answers, so the middleware's share of it is the largest.

    python -m bench.request_log_bench --n 400 --rounds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from api.app import create_app
from api.http_layer import HttpLayer
from api.request_log import log_config
from api.security_headers import add_security_headers
from bench.yardstick import spread
from engine.runtime import Engine


class _Unlogged(HttpLayer):
    """The app's middleware (api/http_layer.py) without its logging part: no request id, no access or error line."""

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", ())]
                add_security_headers(headers)
                message = {**message, "headers": headers}
            await send(message)

        await self.route(scope, receive, send_with_headers, lambda: status)


def _app(engine: Engine, with_log: bool):
    app = create_app(engine, run_timers=False)
    if not with_log:
        app.user_middleware = [m if m.cls is not HttpLayer else type(m)(_Unlogged, *m.args, **m.kwargs)
                               for m in app.user_middleware]
    app.middleware_stack = app.build_middleware_stack()
    return app


async def _one(app, path: str) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"accept", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    status = 0

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _round(app, path: str, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await _one(app, path)
    return (time.process_time() - start) / n * 1e6  # CPU µs per request


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    cfg = log_config("INFO")
    sink = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter(cfg["formatters"]["carepath"]["format"]))
    for name in ("carepath.access", "carepath.errors"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        engine.init()
        apps = {"with": _app(engine, True), "without": _app(engine, False)}
        out = {"load_average": os.getloadavg(), "n": args.n, "rounds": args.rounds, "paths": {}}
        loop = asyncio.new_event_loop()
        for path in ("/api/health", "/api/cases/12/notes"):
            for app in apps.values():  # warm-up
                loop.run_until_complete(_round(app, path, 50))
            rounds = []
            for i in range(args.rounds):  # which variant goes first alternates round by round
                order = list(apps.items()) if i % 2 == 0 else list(reversed(apps.items()))
                rounds.append({k: loop.run_until_complete(_round(app, path, args.n)) for k, app in order})
            ratios = [r["with"] / r["without"] for r in rounds]
            extra = [r["with"] - r["without"] for r in rounds]
            q = spread(ratios)  # bench/yardstick.py's quartiles, which also take a single round
            out["paths"][path] = {
                "cpu_us_with_median": round(statistics.median(r["with"] for r in rounds), 1),
                "cpu_us_without_median": round(statistics.median(r["without"] for r in rounds), 1),
                "extra_cpu_us_median": round(statistics.median(extra), 1),
                "ratio_median": q["median"], "ratio_q1_q3": [q["q1"], q["q3"]]}
        out["load_average_after"] = os.getloadavg()
        engine.db.dispose()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
