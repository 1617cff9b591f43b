"""Which passwords may be set (docs/security.md, "Passwords, sign-in and lock-out").

NCSC password guidance ("Password administration for system owners"): block the most common passwords, ask for
a sensible minimum length, and impose no composition rules (no "one capital, one digit") and no expiry. So a
password is refused only when it is too short, too long, the username, or on the common-password list shipped
in api/data/common-passwords.txt.gz (source and licence: api/data/COMMON-PASSWORDS.md). The list is compared
lower-cased and with surrounding spaces stripped, as it is stored lower-cased.

Every place a password is set calls `password_problem`: `api.auth.create_user` (the demo users, scripts and
tests), and the administration pages and API (`api.admin.create`, `set_password`).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

MIN_PASSWORD, MAX_PASSWORD = 8, 1024
COMMON_LIST = Path(__file__).parent / "data" / "common-passwords.txt.gz"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, read once (about 20,000 entries, 0.3 MB in memory)."""
    with gzip.open(COMMON_LIST, "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


def is_common(password: str) -> bool:
    return password.strip().lower() in common_passwords()


def password_problem(password: str, username: str = "") -> str | None:
    """What is wrong with `password` as a new password, in words for the person setting it, or None."""
    if len(password) < MIN_PASSWORD:
        return f"Password must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"Password must be {MAX_PASSWORD} characters or fewer"
    if username and password.strip().lower() == username.lower():
        return "Password must not be the username"
    if is_common(password):
        return ("Password is on a list of commonly used passwords that attackers try first: "
                "choose another, for example three random words")
    return None
