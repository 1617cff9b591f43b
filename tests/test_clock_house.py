"""The project's promise (engine/clock.py): nothing in engine/ or handlers/ reads the wall clock but the clock
module, so timers can be tested and replayed on an injected clock."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WALL = re.compile(r"\b(time\.time|time\.time_ns|time\.monotonic|time\.perf_counter|datetime\.now|datetime\.utcnow"
                  r"|date\.today|_dt\.datetime\.now)\s*\(")


def test_only_the_clock_module_reads_the_wall_clock():
    found = []
    for folder in ("engine", "handlers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "engine" / "clock.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if WALL.search(code) and not code.lstrip().startswith(('"', "'")):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []


def test_the_check_finds_a_wall_clock_read():
    assert WALL.search("            now = time.time()")
    assert WALL.search("at = datetime.now(UTC)")
    assert not WALL.search("now = self.clock.now()")
