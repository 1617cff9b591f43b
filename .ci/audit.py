"""`make audit`: the locked Python and npm packages checked against known vulnerabilities (issue 15 item 8).

Runs pip-audit on requirements-dev.txt (every pin with its hashes, nothing installed: `--disable-pip`) and
`npm audit` on package-lock.json, reads both answers as JSON and says, package by package, one of three things:

* exit 1, VULNERABLE: a locked package has a published advisory (its id, the versions that fix it);
* exit 2, NOT AUDITED: nothing vulnerable was found, but some packages could not be checked because the
  advisory service did not answer (offline, blocked, an error) - listed by name;
* exit 0: every package was checked and none has a known vulnerability.

Why the wrapper: pip-audit prints "No known vulnerabilities found" and exits 0 when it could not look a single
package up (each one only gets a `skip_reason`), and `npm audit` exits 1 alike for a vulnerability and for an
unreachable service. An audit that cannot tell "safe" from "not checked" is not a control (docs/security.md,
"Dependencies"). `--ignore ID` (repeatable) accepts one advisory judged not to apply; say why in that section.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Findings:
    """What one audit tool said: advisories per package, and packages it could not check (with why)."""

    tool: str
    vulnerable: list[str] = field(default_factory=list)  # "name version: ID (fixed in …)"
    not_audited: list[str] = field(default_factory=list)  # "name version: why"
    audited: int = 0


def python_findings(report: dict, ignore: frozenset[str] = frozenset()) -> Findings:
    """pip-audit's JSON (`-f json`): `dependencies` with `vulns` when looked up, `skip_reason` when not."""
    out = Findings("pip-audit (requirements-dev.txt)")
    for dep in report.get("dependencies", []):
        name, version = dep.get("name", "?"), dep.get("version", "")
        if "skip_reason" in dep:
            out.not_audited.append(f"{name}: {dep['skip_reason']}")
            continue
        out.audited += 1
        for v in dep.get("vulns", []):
            ids = {v.get("id", "?"), *v.get("aliases", [])}
            if ids & ignore:
                continue
            fixed = ", ".join(v.get("fix_versions", [])) or "no fixed version yet"
            out.vulnerable.append(f"{name} {version}: {v.get('id', '?')} (fixed in {fixed})")
    return out


def npm_findings(report: dict, lock: dict, ignore: frozenset[str] = frozenset()) -> Findings:
    """`npm audit --json`: `vulnerabilities` by package when the registry answered, `error` when it did not."""
    out = Findings("npm audit (package-lock.json)")
    packages = [p for p in lock.get("packages", {}) if p]  # "" is the project itself
    if "error" in report or "vulnerabilities" not in report:
        err = report.get("error", {})
        why = (err.get("summary") or err.get("code") or report.get("message")
               or "no answer from the registry's audit service")
        out.not_audited = [f"all {len(packages)} packages: {why}".strip()]
        return out
    out.audited = len(packages)
    for name, vuln in sorted(report["vulnerabilities"].items()):
        for via in vuln.get("via", []):
            if not isinstance(via, dict):  # vulnerable only through another package, listed on its own
                continue
            ident = str(via.get("url", "")).rsplit("/", 1)[-1] or str(via.get("source", "?"))
            if ident in ignore:
                continue
            fix = vuln.get("fixAvailable")
            fixed = f"fixed in {fix['name']} {fix['version']}" if isinstance(fix, dict) else (
                "fix available" if fix else "no fix yet")
            out.vulnerable.append(f"{name} {via.get('range', '')}: {ident} {via.get('title', '')} ({fixed})")
    return out


def verdict(findings: list[Findings]) -> tuple[int, str]:
    """The exit code and the report: a vulnerability outranks a package not checked, which outranks clean."""
    lines: list[str] = []
    for f in findings:
        lines.append(f"{f.tool}: {f.audited} audited, {len(f.vulnerable)} vulnerable, "
                     f"{len(f.not_audited)} not audited")
        lines += [f"  VULNERABLE  {v}" for v in f.vulnerable]
        lines += [f"  NOT AUDITED {n}" for n in f.not_audited[:5]]
        if len(f.not_audited) > 5:
            lines.append(f"  NOT AUDITED … and {len(f.not_audited) - 5} more")
    if any(f.vulnerable for f in findings):
        lines.append("audit FAILED: known vulnerabilities in locked packages - upgrade them (make lock "
                     "LOCK_ARGS='--upgrade-package NAME') or record why one does not apply (docs/security.md)")
        return 1, "\n".join(lines)
    if any(f.not_audited for f in findings):
        lines.append("audit NOT DONE: the advisory service could not be reached for the packages above - "
                     "nothing is known to be vulnerable, and nothing is known to be safe")
        return 2, "\n".join(lines)
    lines.append("audit passed: every locked package checked, no known vulnerability")
    return 0, "\n".join(lines)


def _run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return {"error": {"summary": f"{cmd[0]} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ignore", action="append", default=[], help="an advisory id judged not to apply")
    args = ap.parse_args(argv)
    ignore = frozenset(args.ignore)
    pip_audit = Path(sys.executable).with_name("pip-audit")
    py = _run_json([str(pip_audit), "-r", "requirements-dev.txt", "--require-hashes", "--disable-pip",
                    "--progress-spinner", "off", "-f", "json"])
    if "error" in py:
        found_py = Findings("pip-audit (requirements-dev.txt)", not_audited=[py["error"]["summary"]])
    else:
        found_py = python_findings(py, ignore)
    npm = _run_json(["npm", "audit", "--package-lock-only", "--json"])
    found_npm = npm_findings(npm, json.loads((ROOT / "package-lock.json").read_text()), ignore)
    code, report = verdict([found_py, found_npm])
    print(report)
    return code


if __name__ == "__main__":
    sys.exit(main())
