"""The front door's candidate search (api/people.py) over 200,000 people (issue 10, item 7).

Run with `.venv/bin/python -m bench.people_search_bench` (SQLite) and add `--pg
postgresql://postgres@127.0.0.1:5432/test` for PostgreSQL too (a throwaway schema each, or with
`--reuse` one kept and reused: a schema `bench_people_N`, a temporary SQLite file). `--against REVISION`
also times api/people.py as it was at a git revision, alternating search by search, so both meet the
same load. The cases and their `people` / `person_name_keys` / (SQLite) `person_name_slips` rows are
loaded in bulk with the same code that keeps them in step (handlers/people.py `rows_for`,
`slip_rows`), not by running processes. Names follow a skewed spread like a
council's: 120 given names and 150 common family names drawn with Zipf-like weights (the commonest
given name on about 1 in 25 people, the commonest family name on about 1 in 70), and 40% of people
with a rarer family name made of syllables.

Each search is `find_people` as the front door calls it (the people table's candidates, the scoring
with rapidfuzz and the sound keys, whether each case is open, and the access log rows written for
every case shown), for a person picked at random and typed as an advisor might: with a slip of the
keys (a swapped, dropped or doubled letter), spelt another way ("Kathryn" for "Catherine"), given and
family names the other way round, only the first letters, or with a slip in the first three
letters of the family name (a letter changed, dropped, added, or two swapped). Timed per kind over
`--searches` calls; the goal is p95 < 100 ms. Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, insert, select

from api import intake
from api.auth import User
from api.intake import Terms, find_people
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import cases, people, person_name_keys, person_name_slips
from handlers.people import rows_for, slip_rows, slips_kept

from .engine_bench import Scratch

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)
GIVEN = """Catherine Kathryn Katherine Margaret Mary Elizabeth Joan Patricia Susan Linda Barbara Jean Ann Anne
Dorothy Irene Edith Doris Joyce Sheila Brenda Pauline Christine Janet Carol Valerie Maureen Sandra Jacqueline
Gillian Helen Julie Karen Sarah Emma Claire Rachel Nicola Louise Zoe Priya Aisha Fatima Amina Grace Lena Rose
Ivy Alice Florence Ethel Hilda Winifred Gladys Muriel Beryl Marjorie Elsie Vera Olive Peggy John David Michael
Peter Robert James William Richard Thomas Brian Anthony Kenneth Alan Stephen George Christopher Paul Andrew Mark
Ian Keith Colin Derek Raymond Roy Dennis Geoffrey Trevor Barry Graham Malcolm Norman Harold Ernest Albert Arthur
Frederick Leslie Stanley Walter Ahmed Mohammed Tariq Imran Rajesh Sanjay Wojciech Piotr Tomasz Sean Patrick
Declan Owen Gareth Rhys Dylan Callum Liam Connor Jack Harry Oliver""".split()
FAMILY = """Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson Wright
Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin Cooper Hill Ward
Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson Davis Parker Price Bennett
Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan
Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali
Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens
Jenkins Murray Dixon Harvey Graham Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott
Reynolds Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball
Burton O'Brien Watts Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett
Whyte Lowe""".split()
SYLLABLES = ["ash", "bro", "cam", "dun", "el", "far", "gor", "hal", "in", "jor", "kel", "lin", "mor", "nor",
             "ox", "pen", "quin", "ros", "sel", "tor", "ul", "ven", "wes", "yar", "zel", "by", "ton", "ley", "ham",
             "well", "worth", "field", "ford", "wick", "combe", "stead"]
KINDS = ("slip + date of birth (intake)", "sound-alike + date of birth + postcode (intake)",
         "sound-alike name only (intake)", "names the other way round (intake)",
         "first letters of both names (find)", "name + date of birth (find)",
         "slip in the first three letters (find)")


_WEIGHTS: dict[int, list[float]] = {}


def _zipf(rnd: random.Random, items: list[str], offset: int) -> str:
    """Zipf-Mandelbrot weights 1/(rank + offset): the commonest a few per cent, a long tail."""
    weights = _WEIGHTS.setdefault(id(items), [1 / (i + offset) for i in range(len(items))])
    return rnd.choices(items, weights)[0]


def make_person(rnd: random.Random) -> dict[str, str]:
    given = _zipf(rnd, GIVEN, 10)  # the commonest about 4%
    if rnd.random() < 0.6:
        family = _zipf(rnd, FAMILY, 20)  # with the 60%: the commonest about 1.4%
    else:
        family = "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 3))).capitalize()
    dob = date(1925, 1, 1) + timedelta(days=rnd.randint(0, 365 * 80))
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = f"NB{rnd.randint(1, 30)} {rnd.randint(1, 9)}{rnd.choice(letters)}{rnd.choice(letters)}"
    nhs = str(rnd.randint(10**9, 10**10 - 1))
    return {"name": f"{given} {family}", "date_of_birth": dob.isoformat(), "postcode": postcode, "nhs_number": nhs}


def load(eng: Engine, n: int) -> list[dict[str, str]]:
    rnd = random.Random(7)
    everyone = []
    batch = 5_000
    for first in range(1, n + 1, batch):
        case_rows, person_rows, key_rows = [], [], []
        for i in range(first, min(n, first + batch - 1) + 1):
            person = make_person(rnd)
            everyone.append(person)
            case_rows.append({"id": i, "reference": f"CASE-{i:06d}", "title": person["name"], "created_at": START,
                              "updated_at": START, "data": json.dumps({"person": person}, sort_keys=True)})
            row, keys = rows_for(i, person["name"], {"person": person})
            person_rows.append(row)
            key_rows.extend(keys)
        with eng.db.transaction() as conn:
            conn.execute(insert(cases), case_rows)
            conn.execute(insert(people), person_rows)
            conn.execute(insert(person_name_keys), key_rows)
            if slips_kept(conn):
                conn.execute(insert(person_name_slips), slip_rows(key_rows))
    settle(eng)
    return everyone


def settle(eng: Engine) -> None:
    """Statistics and (PostgreSQL) the visibility map, as autovacuum leaves them soon after a load."""
    if eng.db.is_postgres:
        with eng.db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("cases", "people", "person_name_keys", "person_name_slips"):
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    else:
        with eng.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


def _slip(rnd: random.Random, word: str) -> str:
    if len(word) < 5:
        return word
    i = rnd.randint(1, len(word) - 2)
    how = rnd.choice(("swap", "drop", "double"))
    if how == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if how == "drop":
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


SOUND_ALIKE = {"Catherine": "Kathryn", "Kathryn": "Catherine", "Katherine": "Cathryn", "Whyte": "White",
               "White": "Whyte", "Clarke": "Clark", "Clark": "Clarke", "Smith": "Smyth", "Ann": "Anne",
               "Anne": "Ann", "Jean": "Jeanne", "Sean": "Shaun", "Zoe": "Zoey", "Thompson": "Thomson"}


def _early_slip(rnd: random.Random, word: str) -> str:
    """A slip in the first three letters: one changed, dropped, added or two swapped (the first two)."""
    i = rnd.randint(0, min(2, len(word) - 2))  # a swap needs the letter after
    how = rnd.choice(("change", "drop", "add", "swap"))
    letter = rnd.choice("abcdefghiklmnoprstuvwy")
    if how == "change":
        return word[:i] + letter + word[i + 1:]
    if how == "drop":
        return word[:i] + word[i + 1:]
    if how == "add":
        return word[:i] + letter + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def typed(rnd: random.Random, person: dict[str, str], kind: str) -> Terms:
    given, family = person["name"].rsplit(" ", 1)
    dob = person["date_of_birth"]
    if kind.startswith("slip in the first three"):
        return Terms(name=f"{given} {_early_slip(rnd, family).capitalize()}")
    if kind.startswith("slip"):
        return Terms(name=f"{given} {_slip(rnd, family)}", date_of_birth=dob)
    if kind.startswith("sound-alike + date"):
        return Terms(name=f"{SOUND_ALIKE.get(given, given)} {SOUND_ALIKE.get(family, _slip(rnd, family))}",
                     date_of_birth=dob, postcode=person["postcode"].replace(" ", ""))
    if kind.startswith("sound-alike"):
        return Terms(name=f"{SOUND_ALIKE.get(given, given)} {SOUND_ALIKE.get(family, family)}")
    if kind.startswith("names the other way"):
        return Terms(name=f"{family} {given}", date_of_birth=dob)
    if kind.startswith("first letters"):
        return Terms(name=f"{given[:3]} {family[:4]}")
    return Terms(name=person["name"], date_of_birth=dob)


class Kept:
    """A database kept between runs (`--reuse`): a file under the system's temporary directory, or a
    schema `bench_people_<n>` in PostgreSQL, loaded once; later runs upgrade it (the migrations fill any
    new table from the cases) and search it."""

    def __init__(self, kind: str, pg_url: str | None, n: int) -> None:
        self.kind, self.schema = kind, None
        if kind == "sqlite":
            self.url = f"sqlite:///{tempfile.gettempdir()}/carepath-people-bench-{n}.db"
        else:
            import psycopg

            assert pg_url, "PostgreSQL benchmarks need --pg URL"
            self.schema = f"bench_people_{n}"
            with psycopg.connect(pg_url, autocommit=True) as c:
                c.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            base = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
            self.url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{self.schema}"

    def close(self) -> None:
        pass


def everyone_of(n: int) -> list[dict[str, str]]:
    """The people `load` made (the same seed), without loading them again."""
    rnd = random.Random(7)
    return [make_person(rnd) for _ in range(n)]


class Tally:
    """Times and what was found, for one kind of search by one implementation."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.first = self.at_all = 0
        self.shown: list[int] = []

    def add(self, ms: float, ids: list[int], case_id: int) -> None:
        self.times.append(ms)
        self.first += bool(ids) and ids[0] == case_id
        self.at_all += case_id in ids
        self.shown.append(len(ids))

    def row(self, searches: int) -> dict[str, object]:
        times = sorted(self.times)
        p95 = times[int(0.95 * (len(times) - 1))]
        return {"median_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                "max_ms": round(times[-1], 1), "first_is_the_person": f"{self.first}/{searches}",
                "person_shown": f"{self.at_all}/{searches}", "median_shown": statistics.median(self.shown)}


def search_at(revision: str) -> types.ModuleType:
    """api/people.py as it was at a git revision (`--against`), to time it on the same database and load."""
    source = subprocess.run(["git", "show", f"{revision}:api/people.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    module = types.ModuleType(f"people_at_{revision}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:api/people.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def run(kind: str, pg: str | None, n: int, searches: int, reuse: bool = False,
        against: str | None = None) -> dict[str, object]:
    scratch: Scratch | Kept = Kept(kind, pg, n) if reuse else Scratch(kind, pg)
    try:
        eng = Engine(scratch.url, registry=HandlerRegistry())
        t0 = time.perf_counter()
        eng.init(simulated_start=START)
        with eng.db.engine.connect() as conn:
            loaded = conn.execute(select(func.count()).select_from(people)).scalar()
        if loaded == n:
            everyone = everyone_of(n)
            settle(eng)
            load_s = time.perf_counter() - t0
            print(f"{kind}: reused {n:,} people ({load_s:.0f} s to upgrade)")
        else:
            assert not loaded, f"{scratch.url} holds {loaded} people, not {n}: drop it first"
            everyone = load(eng, n)
            load_s = time.perf_counter() - t0
            print(f"{kind}: loaded {n:,} people in {load_s:.0f} s")
        advisor = User(1, "advisor", "Advisor", frozenset({"front_door_advisor"}), frozenset())
        rnd = random.Random(11)
        out: dict[str, object] = {"database": kind, "people": n, "load_seconds": round(load_s, 1), "kinds": {}}
        searchers = {"now": intake.people_search}
        if against:
            out["against"] = against
            searchers[against] = search_at(against)
        for k in KINDS:
            tally = {who: Tally() for who in searchers}
            for i in range(searches):
                case_id = rnd.randint(1, n)
                terms = typed(rnd, everyone[case_id - 1], k)
                order = list(searchers) if i % 2 == 0 else list(reversed(searchers))  # alternately first
                for who in order:
                    intake.people_search = searchers[who]
                    try:
                        t = time.perf_counter()
                        results = find_people(eng, advisor, terms, intake="(intake)" in k)
                        tally[who].add((time.perf_counter() - t) * 1000, [r["case_id"] for r in results], case_id)
                    finally:
                        intake.people_search = searchers["now"]
            for who, row in ((w, t.row(searches)) for w, t in tally.items()):
                label = k if who == "now" else f"{k} [{who}]"
                out["kinds"][label] = row  # type: ignore[index]
                print(f"  {label}: median {row['median_ms']} ms, p95 {row['p95_ms']} ms, max {row['max_ms']} ms; "
                      f"the person shown {row['person_shown']}, first {row['first_is_the_person']}; "
                      f"{row['median_shown']} shown (median)")
        eng.db.dispose()
        return out
    finally:
        scratch.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", help="PostgreSQL URL (a throwaway schema is made and dropped)")
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--searches", type=int, default=100, help="searches timed per kind")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the loaded database (a temporary file, a schema bench_people_N) and reuse it next time")
    ap.add_argument("--against", metavar="REVISION",
                    help="also time api/people.py as it was at this git revision, alternating search by search")
    args = ap.parse_args()
    results = []
    if not args.skip_sqlite:
        results.append(run("sqlite", None, args.people, args.searches, args.reuse, args.against))
    if args.pg:
        results.append(run("postgres", args.pg, args.people, args.searches, args.reuse, args.against))
    report = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "results": results}
    dest = ROOT / "bench" / "results" / f"people-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    dest.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
