"""Dependencies a council can trust (issue 15 item 8; docs/security.md, "Dependencies"): installs come from
hashed lock files that match pyproject.toml, `make setup` refuses anything unhashed, and `make audit`
(.ci/audit.py) tells a known vulnerability, a package it could not check and a clean result apart."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ("requirements.txt", "requirements-dev.txt")


def _audit_module():
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_audit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = _audit_module()


def locked(path: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every requirement in a lock file."""
    text = (ROOT / path).read_text()
    out = {}
    for block in re.split(r"\n(?=\S)", text):
        first = block.split("\n", 1)[0]
        if first.startswith("#") or not first.strip():
            continue
        m = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", first)
        assert m, f"{path}: not pinned with ==: {first!r}"
        out[m.group(1).lower().replace("_", "-")] = (m.group(2), block.count("--hash=sha256:"))
    return out


@pytest.mark.parametrize("path", LOCKS)
def test_every_locked_package_is_pinned_with_its_hashes(path):
    pins = locked(path)
    assert len(pins) > 50
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def _pyproject_requirements() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return ([Requirement(r) for r in project["dependencies"]],
            [Requirement(r) for r in project["optional-dependencies"]["dev"]])


def test_the_locks_match_pyproject():
    """A dependency added or narrowed in pyproject.toml without `make lock` fails here, naming it."""
    runtime, dev = _pyproject_requirements()
    for path, reqs in (("requirements.txt", runtime), ("requirements-dev.txt", runtime + dev)):
        pins = locked(path)
        stale = []
        for req in reqs:
            if req.marker is not None and not req.marker.evaluate():
                continue
            name = req.name.lower().replace("_", "-")
            if name not in pins or not req.specifier.contains(pins[name][0], prereleases=True):
                stale.append(f"{req} (locked: {pins.get(name, ('nothing',))[0]})")
        assert stale == [], f"{path} is out of date with pyproject.toml: run `make lock`: {stale}"
    runtime_pins, dev_pins = locked("requirements.txt"), locked("requirements-dev.txt")
    assert {n: v for n, (v, _) in runtime_pins.items() if dev_pins.get(n, ("",))[0] != v} == {}


def test_the_build_lock_holds_the_same_pip_and_setuptools_as_the_dev_lock():
    """requirements-build.txt goes in first on a new venv (its own setuptools cannot build an sdist such as
    docopt's): it must hold what requirements-build.in names, hashed, at the versions requirements-dev.txt has."""
    build, dev = locked("requirements-build.txt"), locked("requirements-dev.txt")
    wanted = {Requirement(line).name.lower() for line in (ROOT / "requirements-build.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert set(build) == wanted == {"pip", "setuptools"}
    assert {n: v for n, (v, hashes) in build.items() if hashes == 0 or dev[n][0] != v} == {}


def test_make_setup_installs_only_hashed_packages(tmp_path):
    """Every pip install that `make setup` runs checks hashes, or installs carepath itself without dependencies
    and without fetching a build backend."""
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "-n", f"VENV={venv}", f"{venv}/.installed"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    installs = [line for line in proc.stdout.splitlines() if "pip install" in line]
    assert len(installs) == 3, proc.stdout
    assert "--require-hashes" in installs[0] and "-r requirements-build.txt" in installs[0]
    assert "--require-hashes" in installs[1] and "-r requirements-dev.txt" in installs[1]
    assert all(flag in installs[2] for flag in ("--no-deps", "--no-build-isolation", "-e .")), installs[2]


def test_the_test_client_is_starlettes_own_choice_httpx2():
    """httpx2 stays a dev dependency only while Starlette's TestClient imports it (docs/security.md): if
    Starlette goes back to httpx, this fails and the choice is made again."""
    import starlette.testclient

    assert starlette.testclient.httpx.__name__ == "httpx2"


# ---------------------------------------------------------------- make audit's verdict

VULNERABLE_PY = {"dependencies": [
    {"name": "jinja2", "version": "3.1.2", "vulns": [
        {"id": "GHSA-h5c8-rqwp-cp95", "aliases": ["CVE-2024-22195"], "fix_versions": ["3.1.3"],
         "description": "xmlattr filter allows keys with spaces"}]},
    {"name": "six", "version": "1.17.0", "vulns": []}], "fixes": []}
UNREACHABLE_PY = {"dependencies": [
    {"name": "six", "skip_reason": "Dependency not found on PyPI and could not be audited: six (1.17.0)"}]}
CLEAN_PY = {"dependencies": [{"name": "six", "version": "1.17.0", "vulns": []}], "fixes": []}
LOCK = {"packages": {"": {}, "node_modules/axe-core": {"version": "4.14.1"}}}
CLEAN_NPM = {"auditReportVersion": 2, "vulnerabilities": {}, "metadata": {}}
UNREACHABLE_NPM = {"message": "405 Method Not Allowed - POST …/security/advisories/bulk", "statusCode": 405,
                   "error": {"summary": "", "detail": ""}}
VULNERABLE_NPM = {"auditReportVersion": 2, "vulnerabilities": {"axe-core": {
    "name": "axe-core", "severity": "high", "range": "<4.14.2",
    "via": [{"source": 1, "title": "Prototype pollution", "url": "https://example.invalid/advisories/GHSA-xxxx-yyyy-zzzz",
             "range": "<4.14.2"}],
    "fixAvailable": {"name": "axe-core", "version": "4.14.2"}}}}


def test_a_known_vulnerability_fails_with_the_package_advisory_and_fix():
    code, report = audit.verdict([audit.python_findings(VULNERABLE_PY), audit.npm_findings(CLEAN_NPM, LOCK)])
    assert code == 1
    assert "VULNERABLE  jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in report
    assert "audit FAILED" in report
    code, report = audit.verdict([audit.python_findings(CLEAN_PY), audit.npm_findings(VULNERABLE_NPM, LOCK)])
    assert code == 1
    assert "axe-core <4.14.2: GHSA-xxxx-yyyy-zzzz Prototype pollution (fixed in axe-core 4.14.2)" in report


def test_an_unreachable_service_is_not_audited_never_clean():
    """What pip-audit and npm audit answer on a machine that reaches the registries but not their advisory
    services: pip-audit says "No known vulnerabilities found" and exits 0; make audit says NOT AUDITED, exit 2."""
    code, report = audit.verdict([audit.python_findings(UNREACHABLE_PY), audit.npm_findings(CLEAN_NPM, LOCK)])
    assert code == 2 and "NOT AUDITED six: Dependency not found" in report and "passed" not in report
    code, report = audit.verdict([audit.python_findings(CLEAN_PY), audit.npm_findings(UNREACHABLE_NPM, LOCK)])
    assert code == 2 and "NOT AUDITED all 1 packages: 405 Method Not Allowed" in report
    # a vulnerability outranks a package not checked
    code, _ = audit.verdict([audit.python_findings(VULNERABLE_PY), audit.npm_findings(UNREACHABLE_NPM, LOCK)])
    assert code == 1


def test_a_clean_audit_passes_and_an_ignored_advisory_is_not_counted():
    code, report = audit.verdict([audit.python_findings(CLEAN_PY), audit.npm_findings(CLEAN_NPM, LOCK)])
    assert (code, report.splitlines()[-1]) == (0, "audit passed: every locked package checked, no known vulnerability")
    code, _ = audit.verdict([audit.python_findings(VULNERABLE_PY, frozenset({"CVE-2024-22195"})),
                             audit.npm_findings(VULNERABLE_NPM, LOCK, frozenset({"GHSA-xxxx-yyyy-zzzz"}))])
    assert code == 0
