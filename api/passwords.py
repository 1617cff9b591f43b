"""Which passwords may be set (docs/security.md, "Passwords, sign-in and lock-out").

NCSC password guidance ("Password administration for system owners"): block the most common passwords, ask for
a sensible minimum length, and impose no composition rules (no "one capital, one digit") and no expiry. So a
password is refused only when it is too short, too long, the username, on the common-password list shipped
in api/data/common-passwords.txt.gz (source and licence: api/data/COMMON-PASSWORDS.md), or too easy to guess.
The list is compared lower-cased and with surrounding spaces stripped, as it is stored lower-cased.

"Too easy to guess" is zxcvbn's estimate (Dropbox's password strength estimator, PyPI `zxcvbn`): it finds the
patterns attackers' tools try — dictionary words and names, common passwords with small changes ("Password123!"),
keyboard runs, repeats ("aaaaaaaaaaaa"), dates and years ("Summer2026") — and the words of this account and
place given as "user inputs": the username, the person's name, "carepath" and the council's name. A password
scoring under 3 of 4 ("safely unguessable: moderate protection from an offline attack" is 3) is refused with
zxcvbn's feedback in words. No composition rule is added: a long phrase of ordinary words passes.

Every place a password is set calls `password_problem`: `api.auth.create_user` (the demo users, scripts and
tests), and the administration pages and API (`api.admin.create`, `set_password`).
"""

from __future__ import annotations

import gzip
import re
import threading
from functools import lru_cache
from pathlib import Path

from zxcvbn import zxcvbn

MIN_PASSWORD, MAX_PASSWORD = 8, 1024
COMMON_LIST = Path(__file__).parent / "data" / "common-passwords.txt.gz"
MIN_SCORE = 3  # zxcvbn's 0-4; 3: about 10^8 guesses or more
# zxcvbn's own limit: its work grows quickly with length (a 1,024-character password takes a minute), so only the
# first 72 characters are scored; a longer password whose first 72 are weak is refused (it is weak where it starts)
SCORED_LENGTH = 72
# zxcvbn keeps the user inputs in a dictionary of its module while it scores: one password at a time, or two
# requests' inputs could mix
_ZXCVBN = threading.Lock()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, read once (about 20,000 entries, 0.3 MB in memory)."""
    with gzip.open(COMMON_LIST, "rt", encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


def is_common(password: str) -> bool:
    return password.strip().lower() in common_passwords()


def council_name() -> str:
    """The council's name from its details (processes/config/council.json, CAREPATH_COUNCIL_CONFIG), or ""."""
    from handlers.letters import load_council

    try:
        name = load_council().get("name")
    except (ValueError, OSError):
        return ""
    return name if isinstance(name, str) else ""


def user_inputs(username: str = "", display_name: str = "") -> list[str]:
    """The words of this account and place a password must not lean on: each whole, run together, and their words
    of three letters or more ("Northshire Council": also "northshirecouncil", "northshire" and "council")."""
    out: list[str] = []
    for text in (username, display_name, "carepath", council_name()):
        text = " ".join(text.lower().split())
        for item in [text, re.sub(r"[\W_]+", "", text), *re.split(r"[\W_]+", text)]:
            if len(item) >= 3 and item not in out:
                out.append(item)
    return out


def strength(password: str, inputs: list[str]) -> dict:
    """zxcvbn's result for the first `SCORED_LENGTH` characters."""
    with _ZXCVBN:
        return zxcvbn(password[:SCORED_LENGTH], user_inputs=inputs)


def strength_problem(password: str, username: str = "", display_name: str = "") -> str | None:
    """Why `password` is too easy to guess, in plain words with zxcvbn's feedback, or None."""
    result = strength(password, user_inputs(username, display_name))
    if result["score"] >= MIN_SCORE:
        return None
    reasons = []
    if any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"]):
        reasons.append("it uses the username, the person's name, the council's name or “carepath”")
    warning = result["feedback"]["warning"].strip().rstrip(".")
    if warning:
        reasons.append(warning[:1].lower() + warning[1:])
    text = "Password is too easy to guess" + (": " + "; ".join(reasons) if reasons else "") + "."
    advice = " ".join(s.strip() for s in result["feedback"]["suggestions"] if s.strip())
    return f"{text} {advice} A long password of three or more random words is easy to remember and hard to guess" \
        .replace("  ", " ")


def password_problem(password: str, username: str = "", display_name: str = "") -> str | None:
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
    return strength_problem(password, username, display_name)
