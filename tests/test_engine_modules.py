"""The house (issue 13, item 8): modules a reader can hold in their head.

No module under engine/ is longer than MAX_LINES (docs/engine.md, "Module map"): engine/runtime.py,
1,129 lines, was split into the step machinery and the task, timer and case operations, and this keeps
it and every other engine module from growing back. The split kept `engine.runtime`'s names: every
name imported from it anywhere in the code, at any depth (the engine's modules import the step
machinery inside functions), must still be there.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the longest engine module after the split is engine/bpmn_parser.py (978 lines); a module that needs
# more is split, as engine/runtime.py was, rather than the limit raised
MAX_LINES = 1000
CODE = ("engine", "api", "handlers", "carepath", "bench", "tests")


def _too_long(root: Path) -> list[str]:
    """Every module under root/engine longer than MAX_LINES, as 'path: lines'."""
    found = []
    for path in sorted((root / "engine").rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def test_no_engine_module_is_longer_than_the_limit():
    modules = list((ROOT / "engine").rglob("*.py"))
    assert len(modules) > 30 and ROOT / "engine" / "step.py" in modules  # the walk sees the engine
    assert _too_long(ROOT) == []


def test_a_module_over_the_limit_is_named(tmp_path):
    engine = tmp_path / "engine"
    (engine / "sub").mkdir(parents=True)
    (engine / "short.py").write_text("x = 1\n" * MAX_LINES, encoding="utf-8")
    (engine / "sub" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1), encoding="utf-8")
    assert _too_long(tmp_path) == [f"engine/sub/long.py: {MAX_LINES + 1} lines"]


def _runtime_imports(root: Path) -> list[tuple[str, str]]:
    """(where, name) for every `from engine.runtime import name` (or `from .runtime import` in engine/)."""
    found = []
    for top in CODE:
        for path in sorted((root / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom):
                    continue
                relative = node.level == 1 and node.module == "runtime" and path.parent == root / "engine"
                if node.module == "engine.runtime" or relative:
                    found += [(f"{path.relative_to(root)}:{node.lineno}", a.name) for a in node.names]
    return found


def test_every_name_imported_from_engine_runtime_is_still_there():
    runtime = importlib.import_module("engine.runtime")
    imported = _runtime_imports(ROOT)
    names = {name for _, name in imported}
    # the walk sees the public API and the engine's own imports of the step machinery (suspension...)
    assert {"Engine", "StepResult", "_snapshot", "_Writes", "_due_timers"} <= names
    assert [f"{where} {name}" for where, name in imported if not hasattr(runtime, name)] == []


def test_a_name_runtime_no_longer_has_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CODE", ("engine",))
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "x.py").write_text("def f():\n    from .runtime import _snapshot, _gone\n",
                                              encoding="utf-8")
    imported = _runtime_imports(tmp_path)
    assert imported == [("engine/x.py:2", "_snapshot"), ("engine/x.py:2", "_gone")]
    runtime = importlib.import_module("engine.runtime")
    assert [name for _, name in imported if not hasattr(runtime, name)] == ["_gone"]
