"""The administration pages (api/admin.py): an administrator adds a user who can sign in once a second
administrator approves the account, changes and deactivates accounts, and a case is restricted — in a real browser
with axe-core WCAG 2.1 AA checks, the approval by keyboard."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.browser import AXE, launch, run_axe, sign_in
from tests.front_door_world import PASSWORD
from tests.test_pages_intake import server, signin, world  # noqa: F401 (fixtures)


def test_administrator_adds_a_user_who_can_then_sign_in(server):  # noqa: F811
    base, eng, people = server
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    from api.auth import create_user

    create_user(eng, "admin2", PASSWORD, display_name="Second Admin", roles=["administrator"])  # the operator's
    with launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "administrator", PASSWORD, then="/home")  # no inbox for an administrator: home
        run_axe(page, "home for an administrator")
        nav = page.get_by_role("navigation", name="Main")
        assert nav.get_by_role("link").all_inner_texts() == ["Administration"]
        nav.get_by_role("link", name="Administration").click()
        page.wait_for_url(f"{base}/admin/users")
        assert "front-door-advisor" in page.locator("table").inner_text()
        run_axe(page, "users")

        page.get_by_role("link", name="Add a user").click()
        page.wait_for_url(f"{base}/admin/users/new")
        run_axe(page, "add a user")
        page.fill("#username", "New Person")
        page.fill("#display_name", "Nina Patel")
        page.fill("#password", "short")
        page.get_by_role("button", name="Add user").click()
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        text = summary.inner_text()
        assert "Username must be 2 to 64 characters" in text
        assert "Password must be at least 8 characters" in text
        assert "Select at least one role" in text
        assert page.input_value("#display_name") == "Nina Patel" and page.input_value("#password") == ""
        run_axe(page, "add a user with errors")

        page.fill("#username", "n.patel")
        page.fill("#password", "a long enough password")
        page.get_by_label("Social worker").check()
        page.get_by_label("Safeguarding").check()
        page.get_by_role("button", name="Add user").click()
        page.wait_for_url(f"{base}/admin/users")
        banner = page.locator(".govuk-notification-banner").inner_text()
        assert "User n.patel added" in banner and "once another administrator approves the new account" in banner
        assert "Waiting for approval" in page.locator("tr", has_text="n.patel").inner_text()  # no role, cannot sign in
        card = page.locator(".govuk-summary-card",
                            has_text="administrator asks to add n.patel (Nina Patel) as social worker")
        assert "social work" in card.inner_text() and "safeguarding" in card.inner_text()  # the teams asked for
        assert "Waiting for another administrator" in card.inner_text() and card.get_by_role("button").count() == 0
        run_axe(page, "users after adding, the new account waiting")
        page.goto(f"{base}/admin/users/n.patel")
        status = page.locator(".govuk-summary-list").first.inner_text()
        assert "New account waiting for approval: cannot sign in yet" in status
        assert page.get_by_role("button", name="Reactivate account").count() == 0
        assert page.get_by_role("button", name="Set password").count() == 0
        run_axe(page, "a new account waiting for approval")
        # a new password for someone who opens case records waits too
        page.goto(f"{base}/admin/users/social-worker")
        page.fill("#password", "Summer2026")
        page.get_by_role("button", name="Set password").click()
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        assert "Password is too easy to guess" in summary.inner_text()
        run_axe(page, "a password too easy to guess")
        page.fill("#password", "kettle orbit lantern")
        page.get_by_role("button", name="Set password").click()
        page.wait_for_url(f"{base}/admin/users/social-worker")
        assert "The new password for social-worker waits for another administrator" in \
            page.locator(".govuk-notification-banner").inner_text()
        assert "A new password, asked by administrator" in page.locator(".govuk-summary-list").first.inner_text()
        run_axe(page, "user page with a new password waiting")

        # the user page: the administrator's own account cannot be deactivated
        page.goto(f"{base}/admin/users/administrator")
        assert page.get_by_role("button", name="Deactivate account").count() == 0
        run_axe(page, "own user page")
        page.goto(f"{base}/admin/restrictions?reference={eng.get_case(people['edith'])['reference']}")
        run_axe(page, "restrict a case")
        page.fill("#usernames", "n.patel\nnobody-here")
        page.fill("#reason", "A relative of staff")
        page.get_by_role("button", name="Restrict case").click()
        page.locator(".govuk-error-summary").wait_for()
        assert "There is no user called nobody-here" in page.locator(".govuk-error-summary").inner_text()
        run_axe(page, "restrict a case with errors")
        # restricting a case to oneself is refused; the summary's link takes the keyboard to the field
        page.fill("#usernames", "administrator")
        page.fill("#reason", "A relative of staff")
        page.get_by_role("button", name="Restrict case").click()
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        assert "You cannot restrict a case to yourself alone" in summary.inner_text()
        assert page.evaluate("document.activeElement.classList.contains('govuk-error-summary')")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "usernames"
        run_axe(page, "restrict a case to oneself, refused")
        context.close()

        # the second administrator approves the new account, by keyboard
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "admin2", PASSWORD, then="/home")
        page.goto(f"{base}/admin/users")
        run_axe(page, "users with a new account and a password to decide")
        card = page.locator(".govuk-summary-card", has_text="asks to add n.patel")
        card.locator("input[id^='reason-']").focus()
        page.keyboard.type("New starter in safeguarding, checked with her manager")
        page.keyboard.press("Tab")  # to Approve
        assert page.evaluate("document.activeElement.textContent.trim()") == "Approve"
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/admin/users")
        assert "New account for n.patel approved" in page.locator(".govuk-notification-banner").inner_text()
        row = page.locator("tr", has_text="n.patel").inner_text()
        assert "social worker" in row and "safeguarding" in row and "Active" in row
        assert page.locator(".govuk-summary-card", has_text="asks to set a new password for social-worker").count() == 1
        run_axe(page, "users after approving the new account")
        context.close()

        context = browser.new_context()
        page = context.new_page()
        # the administrator chose her password: she chooses her own first (api/own_password.py)
        sign_in(page, base, "n.patel", "a long enough password", then="/account/password")
        page.fill("#current_password", "a long enough password")
        page.fill("#new_password", "nina's own lantern orbit")
        page.fill("#confirm_password", "nina's own lantern orbit")
        page.get_by_role("button", name="Change password").click()
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url(f"{base}/tasks")
        assert page.locator("h1").inner_text() == "My team's queue"
        assert "Signed in as Nina Patel" in page.locator("header").inner_text()
        context.close()


def _action(client, csrf, username, **form):
    return client.post(f"/admin/users/{username}", data={"csrf_token": csrf, **form})


def test_deactivate_change_and_lock_out_refusals_on_the_pages(world):  # noqa: F811
    eng, app, _people = world
    admin, csrf = signin(app, "administrator")
    worker, _ = signin(app, "social-worker")
    r = _action(admin, csrf, "social-worker", action="deactivate")
    assert r.status_code == 303
    assert worker.get("/people").status_code == 303  # their session ended: back to sign-in
    assert "Account deactivated" in admin.get("/admin/users/social-worker").text
    assert _action(admin, csrf, "social-worker", action="reactivate").status_code == 303
    r = _action(admin, csrf, "social-worker", action="details", display_name="Sam Worker",
                roles=["social_worker", "team_manager"], teams=["social_work"])
    assert r.status_code == 303
    page = admin.get("/admin/users/social-worker").text  # the name is saved; the role waits
    assert "Sam Worker" in page and "it waits for another administrator to approve it" in page
    page = admin.get("/admin/users").text
    table = page[page.index("<table"):]
    assert "social worker, team manager" not in table and "Change waiting" in table
    assert "administrator asks to give social-worker team manager" in page
    # self lock-out: the page explains and nothing changes
    r = _action(admin, csrf, "administrator", action="details", display_name="Admin", roles=["auditor"])
    assert r.status_code == 400 and "You cannot remove your own administrator role" in r.text
    r = _action(admin, csrf, "administrator", action="deactivate")
    assert r.status_code == 400 and "You cannot deactivate your own account" in r.text
    assert admin.get("/admin/users").status_code == 200
    # CSRF and unknown users
    assert admin.post("/admin/users/social-worker", data={"action": "deactivate"}).status_code == 403
    assert _action(admin, csrf, "nobody", action="unlock").status_code == 404
    assert admin.get("/admin/users/nobody").status_code == 404


def test_only_administrators_see_user_pages_and_team_managers_restrict(world):  # noqa: F811
    eng, app, people = world
    for name in ("team-manager", "social-worker", "auditor"):
        client, _ = signin(app, name) if name != "auditor" else _plain_signin(app, name)
        assert client.get("/admin/users").status_code == 403, name
        assert client.get("/admin/users/new").status_code == 403, name
    tm, csrf = signin(app, "team-manager")
    assert "Restrict a case" in tm.get("/people").text
    reference = eng.get_case(people["edward"])["reference"]
    assert tm.get("/admin/restrictions", params={"reference": reference}).status_code == 200
    r = tm.post(f"/admin/restrictions/{people['edward']}", data={
        "csrf_token": csrf, "action": "restrict", "usernames": "social-worker, team-manager", "reason": "Staff"})
    assert r.status_code == 303
    assert [e["data"]["allowed"] for e in eng.history(people["edward"]) if e["type"] == "case.restricted"] == [
        ["social-worker", "team-manager"]]
    r = tm.post(f"/admin/restrictions/{people['edward']}", data={"csrf_token": csrf, "action": "lift",
                                                                 "reason-lift": ""})
    assert r.status_code == 400 and "Enter why the restriction is lifted" in r.text
    worker, _ = signin(app, "social-worker")
    assert worker.get("/admin/restrictions").status_code == 403
    anon = TestClient(app, follow_redirects=False)
    assert anon.get("/admin/users").headers["location"] == "/sign-in"


def _plain_signin(app, username):
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    return client, None
