"""Reading a case's history and open tasks in the operating-model scenario tests."""

from __future__ import annotations


def events(eng, case_id, kind):
    return [e for e in eng.history(case_id) if e["type"] == kind]


def fired(eng, case_id):
    return [e["data"]["element_id"] for e in events(eng, case_id, "timer.fired")]


def fired_at(eng, case_id, element_id):
    return [e["at"] for e in events(eng, case_id, "timer.fired") if e["data"]["element_id"] == element_id]


def handlers_called(eng, case_id):
    return [(e["data"]["element_id"], e["data"]["handler"]) for e in events(eng, case_id, "handler.called")]


def completed_route(eng, case_id):
    return [e["data"]["element_id"] for e in events(eng, case_id, "task.completed")]


def instances(eng, case_id):
    return [(i["process_id"], i["status"]) for i in eng.get_case(case_id)["instances"]]


def the_task(eng, case_id, element_id):
    [task] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element_id]
    return task


def started_data(eng, case_id, instance_id):
    [e] = [e for e in events(eng, case_id, "instance.started") if e["instance_id"] == instance_id]
    return e["data"]["data"]


def cld_rows(eng, case_id):
    """The case's Client Level Data rows as (event type, start, end, outcome) — what a scenario asserts."""
    from handlers import cld

    return [(r["event_type"], r["event_start"], r["event_end"], r["outcome"])
            for r in cld.derive_cld_events(eng.get_case(case_id), eng.history(case_id))]


def cld_full(eng, case_id):
    """The case's Client Level Data rows with every field (service type, review reason, person fields)."""
    from handlers import cld

    return cld.derive_cld_events(eng.get_case(case_id), eng.history(case_id))
