"""The urgent response to a crisis (processes/urgent_response.bpmn): the letter that confirms it.

A same-day response is either a rapid response visit by the reablement team or an urgent
assessment by a social worker; the worker records what was done and what happens next
(`onward`: a needs assessment, reablement, or close). The letter says so in plain words. The
deadline itself is worked out in the diagram from `urgent_response_within_hours`
(processes/config/timescales.json).
"""

from __future__ import annotations

from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from . import letters

KINDS = ("rapid_response", "urgent_assessment")
ONWARD = ("needs_assessment", "reablement", "close")

_KIND_TEXT = {
    "rapid_response": "our rapid response team visited you",
    "urgent_assessment": "a social worker saw you to look urgently at what you need",
}
_NEXT_TEXT = {
    "needs_assessment": "A social worker will contact you soon to assess your needs for care and support in more "
                        "detail (a needs assessment under the Care Act 2014). You do not need to do anything now.",
    "reablement": "Our reablement team will contact you to agree goals and help you get back to doing things "
                  "for yourself at home. The first 6 weeks of reablement are free.",
    "close": "We have not arranged any further support: we agreed with you that you can manage with the help "
             "described above. If things change, please call us.",
}


def urgent_response_letter(ctx: HandlerContext, person: dict[str, Any], response: dict[str, Any],
                           crisis_date: str) -> dict[str, Any]:
    """Confirms the urgent response: who came, what was done, what happens next.

    `response`: {kind: rapid_response|urgent_assessment, what_was_done, onward:
    needs_assessment|reablement|close}; `crisis_date`: the day we were told (YYYY-MM-DD).
    """
    response = letters._require(response, "response")
    kind, onward = response.get("kind"), response.get("onward")
    if kind not in KINDS:
        raise ValueError(f"response.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if onward not in ONWARD:
        raise ValueError(f"response.onward must be one of {', '.join(ONWARD)}, got {onward!r}")
    letters.long_date(crisis_date)  # a clear error for a date that is not one
    return letters._render(
        ctx, "urgent_response", "urgent_response.txt.j2", "The help we gave you urgently", person,
        response=response, crisis_date=crisis_date, kind_text=_KIND_TEXT[kind], next_text=_NEXT_TEXT[onward],
    )


def register(registry: HandlerRegistry) -> None:
    registry.register("urgent_response_letter", urgent_response_letter, document=True)
