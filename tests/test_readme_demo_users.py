"""The README's table of demo users names every role's demo account with the password that signs it in, and the
demo's own hint is right: the data protection officer's account was missing from the table and the demo printed
`demo-front_door_advisor` as a password (DPO's trial, finding 9)."""

from __future__ import annotations

import re
from pathlib import Path

from api.auth import ROLES
from api.demo_users import EXTRA_USERS, demo_password, demo_username

README = Path(__file__).resolve().parent.parent / "README.md"


def _rows() -> dict[str, str]:
    """username -> the password its README row gives."""
    out = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].startswith("`demo-"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                out[name] = cells[1].strip("`")
    return out


def test_every_role_and_extra_demo_account_is_in_the_readme_with_its_password():
    rows = _rows()
    for role in ROLES:
        assert rows.get(demo_username(role)) == demo_password(role), role
    for name, (role, _teams) in EXTRA_USERS.items():
        assert rows.get(name) == demo_password(role), name

