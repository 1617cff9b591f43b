"""The house (issue 13, item 8): `engine/` knows neither the web (`api/`) nor social care (`handlers/`);
the composition above them, `carepath/`, joins them: the installed command is its CLI, which extends
the engine's with the social-care and web commands, and `carepath serve` is its server."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from engine.cli import build_parser as engine_parser
from engine.cli import subcommands

ROOT = Path(__file__).resolve().parent.parent
ABOVE_THE_ENGINE = ("api", "handlers", "carepath")

# The two data migrations that fill search keys for the people already recorded call the code that
# keeps those keys (handlers/people.py) at the time they run. They are history: a migration, once
# released, is not rewritten. Nothing else under engine/ may be named here.
MIGRATIONS_THAT_FILL_DATA = {"engine/migrations/versions/0007_people_search.py",
                             "engine/migrations/versions/0008_person_search_keys.py",
                             "engine/migrations/versions/0030_people_latin_letters.py"}


def _imports_above(path: Path) -> list[str]:
    """Every import of api, handlers or carepath in a module, at any depth (functions included), and every
    importlib.import_module / __import__ of one by a literal name; as 'file:line name'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in ABOVE_THE_ENGINE:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_no_module_in_engine_imports_api_handlers_or_the_house():
    modules = sorted((ROOT / "engine").rglob("*.py"))
    assert len(modules) > 30 and ROOT / "engine" / "runtime.py" in modules  # the walk sees the engine
    offending = [hit for m in modules if str(m.relative_to(ROOT)) not in MIGRATIONS_THAT_FILL_DATA
                 for hit in _imports_above(m)]
    assert offending == []
    # the exemptions are real files that still need them (else they are dropped from the list)
    assert all(_imports_above(ROOT / name) for name in MIGRATIONS_THAT_FILL_DATA)


def test_the_walk_finds_an_import_hidden_in_a_function(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    module = tmp_path / "engine" / "x.py"
    module.parent.mkdir()
    module.write_text("import json\nfrom .db import Database\n\ndef f():\n    from api import app\n"
                      "    import handlers.cld as cld\n    importlib.import_module('carepath.cli')\n"
                      "    from apiary import bees\n", encoding="utf-8")
    assert _imports_above(module) == ["engine/x.py:5 api", "engine/x.py:6 handlers.cld",
                                      "engine/x.py:7 carepath.cli"]


def _names(parser) -> set[str]:
    return set(subcommands(parser).choices)


SOCIAL_CARE_AND_WEB = {"act", "transition", "close", "cld", "measures", "evidence", "serve", "user", "backup",
                       "restore", "retention", "simulate", "subject-access"}


def test_the_house_cli_is_the_engine_cli_and_the_social_care_and_web_commands():
    from carepath.cli import build_parser as house_parser

    engine_commands = _names(engine_parser())
    assert not engine_commands & SOCIAL_CARE_AND_WEB
    assert {"init", "deploy", "start", "tasks", "complete", "history", "audit", "retry", "worker"} <= engine_commands
    assert _names(house_parser()) == engine_commands | SOCIAL_CARE_AND_WEB


def test_the_installed_command_is_the_house_and_the_house_is_packaged():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["carepath"] == "carepath.cli:main"
    assert "carepath" in project["tool"]["setuptools"]["packages"]
    assert not (ROOT / "engine" / "server.py").exists()


def test_nothing_calls_the_old_places():
    callers = [ROOT / "Makefile", ROOT / "README.md", *ROOT.glob(".ci/*"), *ROOT.glob("docs/*.md"),
               *ROOT.glob("bench/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("api/*.py")]
    stale = [str(p.relative_to(ROOT)) for p in callers if p.is_file() and p != Path(__file__)
             and ("engine.server" in (t := p.read_text(encoding="utf-8")) or "engine/server.py" in t)]
    assert stale == []


def test_python_m_carepath_runs_the_house_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "carepath", "evidence", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage: carepath evidence" in proc.stdout
    # and a social-care command runs through the engine's handling: a missing database is one line
    proc = subprocess.run([sys.executable, "-m", "carepath", "--db", f"sqlite:///{tmp_path / 'none.db'}",
                           "close", "CASE-000001", "--reason", "died", "--as", "sw1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("carepath: there is no database at ")
    assert list(tmp_path.iterdir()) == []
