"""Pages' latency while 20 sign-in attempts a second arrive (issue 15 item 6, "sign-in work bounded").

A server in its own process (`carepath.server.uvicorn_config`, as `carepath serve` runs it; timers off) on a
SQLite database with a few users. For each mode, for `--seconds`:

* **load**: `--rate` sign-ins a second (`POST /api/session`, the right password, so each costs one argon2id
  verification at the library's defaults: 64 MiB, about 50 ms of a core), sent on a fixed schedule whatever
  the answers (an open loop, as a burst of people or a script would), each on its own connection;
* **pages**: one client, signed in, asking for the home page (`GET /home`, the session check and a rendered
  page) again and again, one at a time; its latency is what a person using the app meanwhile sees.

Modes: `bounded` (the default pool, `AuthSettings.verify_slots` = the number of cores, a queue of twice that,
waiting at most 2 s, then 503 busy) and `unbounded` (as before: every sign-in verifies at once). The sign-in
throttle is set out of reach so that every attempt reaches argon2. The report: pages' p50/p95/max (ms), the
sign-ins answered 200 and 503 and their p50/p95, the load average.

    python -m bench.signin_bench --seconds 20 --rate 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

PASSWORD = "benchmark sign-in password"
USERS = [f"user{i}" for i in range(8)]


def serve(url: str, port: int, mode: str) -> None:
    import uvicorn

    from api.app import create_app
    from api.auth import AuthSettings
    from carepath.server import uvicorn_config
    from engine.runtime import Engine

    slots = {"bounded": {}, "unbounded": {"verify_slots": 10_000, "verify_queue": 0}}[mode]
    settings = AuthSettings(max_failures=10**6, address_max_failures=10**6, session_lifetime=timedelta(days=1),
                            **slots)
    app = create_app(Engine(url), run_timers=False, auth=settings)
    uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, log_level="warning")).run()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_sign_in(port: int, username: str) -> tuple[int, float, str]:
    a = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/api/session", json.dumps({"username": username, "password": PASSWORD}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status, time.perf_counter() - a, r.getheader("set-cookie") or ""
    finally:
        c.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000 if xs else float("nan")


def run_mode(url: str, mode: str, seconds: float, rate: float) -> dict[str, Any]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.signin_bench", "--serve", url, str(port), mode],
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 180  # importing the app takes a while on a loaded machine
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        status, _, cookie = _post_sign_in(port, USERS[0])
        assert status == 200, status
        session = cookie.split(";", 1)[0]
        pages: list[float] = []
        sign_ins: list[tuple[int, float]] = []
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def one(i: int) -> None:
            a = time.perf_counter()
            try:
                s, took, _ = _post_sign_in(port, USERS[i % len(USERS)])
            except OSError:  # no answer within 30 s (or the connection refused): counted as "timeout"
                s, took = 0, time.perf_counter() - a
            with lock:
                sign_ins.append((s, took))

        def load() -> None:
            start, i, threads = time.monotonic(), 0, []
            while time.monotonic() < stop:
                due = start + i / rate
                time.sleep(max(0.0, due - time.monotonic()))
                t = threading.Thread(target=one, args=(i,), daemon=True)
                t.start()
                threads.append(t)
                i += 1
            for t in threads:
                t.join(60)

        loader = threading.Thread(target=load)
        time.sleep(0.5)
        loader.start()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < stop:
            a = time.perf_counter()
            c.request("GET", "/home", headers={"Cookie": session, "Accept": "text/html"})
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            pages.append(time.perf_counter() - a)
        loader.join()
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    ok = [t for s, t in sign_ins if s == 200]
    return {"mode": mode, "pages": len(pages), "page_p50_ms": round(pct(pages, 50), 1),
            "page_p95_ms": round(pct(pages, 95), 1), "page_max_ms": round(max(pages) * 1000, 1),
            "sign_ins": len(sign_ins), "sign_in_200": len(ok),
            "sign_in_503": sum(1 for s, _ in sign_ins if s == 503),
            "sign_in_timeout": sum(1 for s, _ in sign_ins if s == 0),
            "sign_in_other": sorted({s for s, _ in sign_ins if s not in (0, 200, 503)}),
            "sign_in_200_p50_ms": round(pct(ok, 50), 1), "sign_in_200_p95_ms": round(pct(ok, 95), 1),
            "loadavg": os.getloadavg()[0]}


def build(path: Path) -> str:
    from api.auth import create_user
    from engine.forms import FormLibrary
    from engine.runtime import Engine

    url = f"sqlite:///{path}"
    eng = Engine(url, forms=FormLibrary())
    eng.init()
    for name in USERS:
        create_user(eng, name, PASSWORD, roles=["social_worker"], teams=["social_work"])
    eng.db.dispose()
    return url


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--serve", nargs=3, metavar=("URL", "PORT", "MODE"), help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--rate", type=float, default=20, help="sign-in attempts a second")
    p.add_argument("--modes", default="unbounded,bounded")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        url = build(Path(tmp) / "signin.db")
        print(f"cores: {os.cpu_count()}, {args.rate:g} sign-ins/s for {args.seconds:g} s per mode", file=sys.stderr)
        results = []
        for mode in args.modes.split(","):
            res = run_mode(url, mode, args.seconds, args.rate)
            print(json.dumps(res), file=sys.stderr)
            results.append(res)
    print("| mode | page p50 (ms) | page p95 (ms) | page max (ms) | pages | sign-ins 200 / 503 / no answer in 30 s |"
          " sign-in 200 p50 / p95 (ms) | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['page_p50_ms']} | {r['page_p95_ms']} | {r['page_max_ms']} | {r['pages']} | "
              f"{r['sign_in_200']} / {r['sign_in_503']} / {r['sign_in_timeout']} (of {r['sign_ins']}) | "
              f"{r['sign_in_200_p50_ms']} / {r['sign_in_200_p95_ms']} | {r['loadavg']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
