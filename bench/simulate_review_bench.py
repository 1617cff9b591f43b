"""What a process owner sees through the pages (issue 16's "done when"): a real `carepath serve` that makes the live
runs ahead after it starts (carepath/simulate_ahead.py), then a year's comparison of a draft asked on the review
page's form, timed until its first results can be read.

    .venv/bin/python bench/simulate_review_bench.py [--days 365] [--seeds 2] [--after SECONDS] [--out FILE]

A scratch SQLite database gets every file of processes/ deployed, a process owner, and a draft of safeguarding (its
triage deadline an hour after the concern, as bench/simulate_compare_bench.py). The server is started with
`CAREPATH_SIMULATION_AHEAD={days}x{seeds}`; once the live run of seed 1 is kept (`ahead_seed1_s`, from the server's
start), and `--after` seconds more (default 0: at once), the process owner signs in and posts the review page's
"Simulate this change" form; the simulation's status is read every second (the waiting page's script reads it
every 2 s) until it has first results (`first_s`, from the form's post) and until it is ready (`whole_s`). The
server makes the open draft's runs ahead too, after the live version's of the same seed: `--after` is how long
the review came after the live run was ready, so how far the draft's own run had come (whether
the comparison took that run instead of making it: `runs_reused`, the report's line).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from api.auth import create_user  # noqa: E402
from engine.schema import simulation_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OWNER, PASSWORD = "process-owner", "a long bench password 2026"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--after", type=float, default=0.0, help="seconds between the live run kept and the review")
    ap.add_argument("--out", metavar="FILE")
    args = ap.parse_args()
    from bench.simulate_compare_bench import live_with_draft

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "live.db"
        eng, draft = live_with_draft(path)
        create_user(eng, OWNER, PASSWORD, display_name="Bench owner", roles=["process_owner"])
        port = _free_port()
        env = {**os.environ, "CAREPATH_SIMULATION_AHEAD": f"{args.days}x{args.seeds}",
               "CAREPATH_MFA_REQUIRED_ROLES": "", "CAREPATH_SIMULATION_REUSE": "1"}
        env.pop("CAREPATH_SIMULATION_SCENARIO", None)
        t0 = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "carepath.cli", "serve", "--db", f"sqlite:///{path}",
                                   "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            while True:  # the live run of seed 1 made ahead by the server
                with eng.db.engine.connect() as conn:
                    if conn.execute(select(func.count()).select_from(simulation_outputs)).scalar():
                        break
                time.sleep(0.5)
            ahead_s = time.perf_counter() - t0
            time.sleep(args.after)
            base = f"http://127.0.0.1:{port}"
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            req = urllib.request.Request(base + "/api/session", json.dumps(
                {"username": OWNER, "password": PASSWORD}).encode(), {"Content-Type": "application/json"})
            csrf = json.loads(opener.open(req).read())["csrf_token"]
            review = opener.open(f"{base}/processes/drafts/{draft['id']}/review").read().decode()
            said = re.search(r'id="sim-ahead">([^<]*)<', review)
            form = urllib.parse.urlencode({"csrf_token": csrf, "start": "empty", "days": args.days,
                                           "seeds": args.seeds}).encode()
            t1 = time.perf_counter()
            page = opener.open(urllib.request.Request(f"{base}/processes/drafts/{draft['id']}/simulations", form))
            link = page.geturl()
            first_s = None
            while True:
                status = json.loads(opener.open(link + "/status").read())
                now = time.perf_counter() - t1
                if first_s is None and (status.get("first_results") or status["status"] != "running"):
                    first_s = now
                    first_page = opener.open(link).read().decode()
                if status["status"] != "running":
                    break
                time.sleep(1.0)
            reused = re.search(r'id="simulation-reused">([^<]*)<', opener.open(link).read().decode())
            row = {"days": args.days, "seeds": args.seeds, "ahead_seed1_s": round(ahead_s, 1), "after_s": args.after,
                   "review_page_said": said.group(1) if said else None, "first_s": round(first_s, 1),
                   "first_page_heading": re.search(r"<h1[^>]*>([^<]*)<", first_page).group(1).strip(),
                   "whole_s": round(now, 1), "status": status["status"],
                   "runs_reused": reused.group(1) if reused else None,
                   "load_average": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
            print(json.dumps(row))
            if args.out:
                Path(args.out).write_text(json.dumps(row, indent=2), encoding="utf-8")
        finally:
            server.terminate()
            server.wait(60)
            eng.db.dispose()


if __name__ == "__main__":
    main()
