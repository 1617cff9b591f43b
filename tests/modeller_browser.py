"""What the browser tests of the modeller page (/processes/drafts/{id}/edit) share: opening a new draft
from a process's page, waiting for the server's checks, drawing with the context pad, and reading the
problems list. Used by tests/test_modeller_page.py and tests/test_workbench_journey.py."""

from __future__ import annotations

READY = "#modeller[data-ready='true'], #modeller[data-ready='failed']"


def open_new_draft(page, base: str, process_id: str = "front_door") -> int:
    """From the process's page, as a process owner: "Start a draft from the live version" opens the modeller."""
    page.goto(f"{base}/processes/{process_id}")
    page.get_by_role("button", name="Start a draft from the live version").click()
    page.wait_for_url("**/edit")
    wait_ready(page)
    return int(page.url.rstrip("/").split("/")[-2])


def wait_ready(page) -> None:
    """Wait until the modeller has opened the draft (and fail with its status if it could not)."""
    page.wait_for_selector(READY, timeout=20_000)
    assert page.get_attribute("#modeller", "data-ready") == "true", page.inner_text("#modeller-status")


def checks(page) -> int:
    """How many times the server has checked the draft since the page opened."""
    return int(page.get_attribute("#modeller", "data-checks") or 0)


def wait_checked(page, before: int) -> None:
    """Wait until the server has checked the draft again since `before` (and the lint has run)."""
    page.wait_for_function(f"() => Number(document.querySelector('#modeller').dataset.checks || 0) > {before}",
                           timeout=10_000)


def append(page, source_id: str, replace_with: str) -> str:
    """Select `source_id`, append a task with the context pad, change its type; the new element's id."""
    selected = page.evaluate("() => window.carepathModeller.bpmn.get('selection').get().map(e => e.id)")
    if selected != [source_id]:
        # bring the element clear of the palette (which overlays the canvas's left edge), then click it
        element = page.locator(f".djs-element[data-element-id='{source_id}']").first
        box, palette = element.bounding_box(), page.locator(".djs-palette").first.bounding_box()
        if box and palette and box["x"] < palette["x"] + palette["width"] + 20:
            page.evaluate("dx => window.carepathModeller.bpmn.get('canvas').scroll({dx: dx, dy: 0})",
                          palette["x"] + palette["width"] + 40 - box["x"])
        element.click()
    page.locator(".djs-context-pad [data-action='append.append-task']").click()
    page.keyboard.press("Escape")  # leave the name editing that bpmn-js opens on a new task
    return replace_selected(page, replace_with)


def replace_selected(page, replace_with: str) -> str:
    """Change the type of the selected task with the context pad (e.g. "user-task"); its id."""
    page.locator(".djs-context-pad [data-action='replace']").click()
    page.locator(f".djs-popup [data-id='replace-with-{replace_with}']").click()
    return page.evaluate("() => window.carepathModeller.bpmn.get('selection').get()[0].id")


def select(page, element_id: str) -> None:
    """Select an element as the modeller's search would (when a label covers it at this zoom)."""
    page.evaluate("id => { const m = window.carepathModeller.bpmn;"
                  " m.get('selection').select(m.get('elementRegistry').get(id)); }", element_id)


def open_carepath_group(page) -> None:
    """Open the properties panel's carepath group if it is closed."""
    header = page.locator("[data-group-id='group-carepath'] .bio-properties-panel-group-header")
    if "open" not in (header.get_attribute("class") or ""):
        header.click()


def wait_problem(page, element_id: str, pattern: str, *, shown: bool = True) -> None:
    """Wait until the problems list shows (or no longer shows) a problem at `element_id` matching `pattern`."""
    page.wait_for_function("""([id, pattern, shown]) => shown === Array.from(
        document.querySelectorAll('#modeller-problems li')).some(
        li => li.dataset.elementId === id && new RegExp(pattern).test(li.textContent))""",
                           arg=[element_id, pattern, shown])


def problem_texts(page) -> list[str]:
    return page.locator("#modeller-problems li").all_inner_texts()


def focused(page) -> dict:
    """What has the keyboard focus: id, class, tag, whether it is in the properties panel, its text."""
    return page.evaluate("""() => { const a = document.activeElement;
        return {id: a.id, cls: a.className && String(a.className), tag: a.tagName,
                inPanel: !!a.closest('#modeller-properties'), text: (a.textContent || '').slice(0, 200)}; }""")
