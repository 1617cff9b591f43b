"""Every event type the engine, the handlers and the app write, with a label for people.

`CASE_EVENTS` are written into a case's own chain (what the auditors' "Event type" filter offers,
api/audit.py); `SYSTEM_EVENTS` into the system chain. tests/test_audit_search.py checks that every event
type named in the source is in one of them, and that every type a realistic run writes into a case is
offered — add a new type here when code starts writing it.
"""

from __future__ import annotations

CASE_EVENTS: dict[str, str] = {
    "case.created": "Case opened",
    "case.updated": "Case details changed",
    "case.record_updated": "Case record corrected",
    "case.closed": "Case closed",
    "case.reopened": "Case reopened",
    "case.carried_over": "Case carried over",
    "case.restricted": "Case restricted",
    "case.unrestricted": "Case restriction lifted",
    "case.break_glass": "Case opened by breaking the glass",
    "case.break_glass_reviewed": "Breaking the glass reviewed",
    "case.erased": "Case erased under a retention rule",
    "person.subject_access_exported": "Subject access request exported",
    "instance.started": "Process started",
    "instance.child_started": "Child process started",
    "instance.completed": "Process finished",
    "instance.cancelled": "Process cancelled",
    "instance.suspended": "Process paused",
    "instance.resumed": "Process resumed",
    "instance.ended": "Process ended on resuming",
    "instance.migrated": "Process moved to another version",
    "task.ready": "Task ready",
    "task.claimed": "Task picked up",
    "task.released": "Task put back",
    "task.assigned": "Task assigned",
    "task.delegated": "Task delegated",
    "task.returned": "Task returned",
    "task.draft_saved": "Task draft saved",
    "task.completed": "Task completed",
    "task.left": "Task left when the process moved on",
    "timer.set": "Timer set",
    "timer.fired": "Timer fell due",
    "timer.cleared": "Timer cleared",
    "handler.called": "Automatic step run",
    "handler.failed": "Automatic step failed",
    "incident.opened": "Problem recorded",
    "incident.retried": "Problem retried",
    "message.received": "Message received",
    "message.delivered": "Message delivered to a waiting process",
    "message.kept": "Message kept until a process waits for it",
    "message.thrown": "Message sent by the diagram to the case",
}

SYSTEM_EVENTS: dict[str, str] = {
    "definitions.deployed": "Diagrams deployed",
    "clock.advanced": "Clock advanced",
    "integrity.checked": "Integrity checked",
    "instances.migrated": "Processes moved to another version",
    "draft.created": "Draft created", "draft.saved": "Draft saved", "draft.submitted": "Draft submitted",
    "draft.approved": "Draft approved", "draft.refused": "Draft refused", "draft.withdrawn": "Draft withdrawn",
    "draft.rebased": "Draft rebased",
    "retention.listed": "Case listed for erasure", "retention.held": "Erasure held",
    "retention.released": "Erasure hold released", "retention.case_erased": "Case erased",
    "user.created": "User created", "user.changed": "User changed", "user.password_set": "Password set",
    "user.password_changed": "Password changed", "user.unlocked": "User unlocked",
    "user.mfa_enabled": "Two-step verification set up", "user.mfa_reset": "Two-step verification reset",
}
