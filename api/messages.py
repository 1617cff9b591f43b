"""Delivering a message to a case: `POST /api/messages` (engine/messages.py, docs/engine.md "Messages").

Who may: casework roles (as for adding to a case record); with a case named, only someone who may open
that case (the opening is logged as `message`, a refusal as `refused:message`). Without a case the message
may only start a process on a new case (a message start event). Bad input is a 422 naming the field; an
unknown case or message name a 404; a message nothing waits for when messages are not kept, or two
instances that both wait for it, a 409 — and nothing is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from engine.messages import resolve_case

from .auth import User, current_user, get_engine
from .cases import _writer, may_write
from .errors import forbidden
from .inputs import Id

router = APIRouter(prefix="/api/messages")


class MessageIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    case: Id | str | None = Field(default=None, description="the case's number or reference (CASE-000007)")
    correlation: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(default=None, min_length=1, max_length=255, description="idempotency key")


async def message_sender(user: Annotated[User, Depends(current_user)]) -> User:
    """Casework roles only: checked before the body is read, so a role that may not send is refused (403)
    whatever it sent, as every state-changing route refuses it."""
    if not may_write(user):
        raise forbidden("your role does not send messages to cases")
    return user


@router.post("", status_code=200)
def post_message(user: Annotated[User, Depends(message_sender)], body: MessageIn,
                 engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    case_id = resolve_case(engine, body.case)
    if case_id is not None:
        _writer(engine, user, case_id, "message")
    result = engine.deliver_message(body.name, case_id=case_id, correlation=body.correlation, data=body.data,
                                    key=body.key, actor=user.username)
    return result.to_dict()
