"""Demo users for the demo database only: one per role, password "demo-" + role + "-password" (e.g.
`demo-auditor-password`: strong enough for api/passwords.py, which refused `demo-auditor`), a second process
owner (`process-owner-2`, same password as `process-owner`) so that a draft one owner writes can be approved by
another (four eyes, engine/drafts.py), and a second administrator (`administrator-2`, same password as
`administrator`) so that a change one administrator makes that needs a second one (a new account with a role that
opens case records, docs/security.md "Privileged access") can be approved.

Never run this against a real council's database (docs/security.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .auth import ROLES, create_user, users

DEMO_TEAMS: dict[str, list[str]] = {
    "front_door_advisor": ["front_door"],
    "social_worker": ["social_work"],
    "occupational_therapist": ["reablement", "social_work"],  # reablement, and equipment/adaptation assessments
    "reablement_coordinator": ["reablement"],
    "team_manager": ["team_manager"],
    "finance_officer": ["finance"],
    "process_owner": [],
    "auditor": [],
    "administrator": [],
    "performance": [],
    "data_protection": [],
}


# more demo users with a role someone already has: username -> (role, teams; None = the role's demo teams)
EXTRA_USERS: dict[str, tuple[str, list[str] | None]] = {
    "process-owner-2": ("process_owner", None),
    "administrator-2": ("administrator", None),  # approves what the other administrator asks (dual control)
    "safeguarding-lead": ("social_worker", ["safeguarding"]),  # the safeguarding team's triage and enquiries
    "hospital-social-worker": ("social_worker", ["hospital_team"]),  # discharge referrals
    # a manager of the social work team, as a council sets one up: `team-manager` is in the team_manager team only
    # (approvals, sign-offs, escalations), so it can assign no caseworker's task; this one can (api/tasks.py
    # `assign`: a team manager of one of the task's teams)
    "social-work-manager": ("team_manager", ["team_manager", "social_work"]),
}


def demo_username(role: str) -> str:
    return role.replace("_", "-")


def demo_password(role: str) -> str:
    return f"demo-{role}-password"


def create_demo_users(engine: Any) -> list[str]:
    """Add the missing demo users (username = role with '-' for '_'); returns the usernames added."""
    with engine.db.engine.connect() as conn:
        existing = set(conn.execute(select(users.c.username)).scalars())
    added = []
    for role in ROLES:
        name = demo_username(role)
        if name in existing:
            continue
        create_user(engine, name, demo_password(role), display_name=f"Demo {role.replace('_', ' ')}",
                    roles=[role], teams=DEMO_TEAMS[role])
        added.append(name)
    for name, (role, teams) in EXTRA_USERS.items():
        if name in existing:
            continue
        create_user(engine, name, demo_password(role), display_name=f"Demo {name.replace('-', ' ')}",
                    roles=[role], teams=DEMO_TEAMS[role] if teams is None else teams)
        added.append(name)
    return added
