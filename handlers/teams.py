"""The council's teams: who a user task goes to (its candidate groups, else its lane's name).

Users are given these teams (api/auth.py), and every diagram is checked against them wherever it
is deployed or checked (the engine's `HandlerRegistry.teams`, set by `handlers.register`), so a
user task can never go to a team nobody is in.
"""

from __future__ import annotations

TEAMS: tuple[str, ...] = ("front_door", "reablement", "social_work", "team_manager", "finance", "safeguarding",
                          "hospital_team")
