"""Handlers for the README's CLI tour and the test diagrams (tests/diagrams)."""

from __future__ import annotations

import os


def register(registry):  # type: ignore[no-untyped-def]
    @registry.register("notify")
    def notify(ctx, message):  # type: ignore[no-untyped-def]
        return {"sent_at": ctx.now.isoformat(), "message": message}

    @registry.register("calculate_budget")
    def calculate_budget(ctx, points):  # type: ignore[no-untyped-def]
        if os.environ.get("CAREPATH_TOUR_RATES") == "missing":
            raise RuntimeError("the rates table is missing")
        return {"amount": points * 400, "points": points}
