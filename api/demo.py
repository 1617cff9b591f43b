"""Prepare the demo database for `make run`: schema, the operating model's diagrams, demo users and cases."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from engine.clock import SystemClock
from engine.errors import CarepathError
from engine.runtime import Engine

PROCESSES = Path(__file__).resolve().parent.parent / "processes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite:///var/demo.db")
    parser.add_argument("--heads", default="var/heads",
                        help="folder for the demo's signing key and signed heads files (docs/auditing.md)")
    parser.add_argument("--start", type=_instant, default=None, metavar="INSTANT",
                        help="start the demo's simulated clock here (ISO 8601 with its offset, e.g. "
                             "2027-01-15T09:30+00:00) instead of now")
    args = parser.parse_args()
    engine = Engine(args.db)
    # A new demo database runs on a simulated clock starting now (to the minute), so a newcomer can
    # move time on and see deadlines fall due: `carepath clock advance P7W --db sqlite:///var/demo.db`.
    start = args.start or SystemClock().now()
    engine.init(simulated_start=start.replace(second=0, microsecond=0))
    if any(PROCESSES.glob("*.bpmn")):
        try:
            refs = engine.deploy([PROCESSES], actor="demo")
            print("deployed: " + ", ".join(f"{r.process_id} v{r.version}" for r in refs))
        except CarepathError as exc:
            raise SystemExit(f"the diagrams in {PROCESSES} cannot be deployed:\n{exc}") from None
    from api.demo_users import create_demo_users

    create_demo_users(engine)
    from api.demo_users import demo_password, demo_username

    print(f"demo users: one per role, e.g. {demo_username('front_door_advisor')} / "
          f"{demo_password('front_door_advisor')} (README.md, docs/security.md)")
    from api.demo_cases import create_demo_cases

    for reference, stage in create_demo_cases(engine):
        print(f"demo case {reference}: {stage}")
    print(f"signed heads: {sign_demo_heads(engine, Path(args.heads))} (the server signs again every hour)")
    print(f"demo database ready: {engine.db.safe_url} (clock: {engine.clock_mode()}, "
          f"now {engine.now():%Y-%m-%d %H:%M} UTC; move it on with: "
          f"carepath clock advance P7W --db {engine.db.safe_url})")


def _instant(text: str) -> datetime:
    """--start: an ISO 8601 instant with its offset (a bare local time would be ambiguous)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text[:40]!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the offset too, e.g. {text[:40]}+00:00")
    return value


def sign_demo_heads(engine: Engine, folder: Path) -> Path:
    """The demo's anchor outside the database: a signing key (made once; a council keeps its key off
    the database server) and a first signed heads file, so an auditor's integrity check can compare a
    case with it. `make run` serves with CAREPATH_HEADS_KEY/DIR pointing here."""
    from engine.anchoring import generate_keys, sign_heads_to_dir

    keys = folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = keys / "heads.key"
    if not key.exists():
        generate_keys(key)
    signed = folder / "signed"
    signed.mkdir(exist_ok=True)
    return sign_heads_to_dir(engine, key, signed) or sorted(signed.glob("heads-*.json"))[-1]


if __name__ == "__main__":
    main()
