"""The Enrolments page and the redemption page in real Chromium: a second admin approves an
enrolment and gets the second half; the person redeems the token in their own browser (the
secret generated there) and logs in with the key; the requester's own approval is refused with
the API's message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import Server, screenshot
from .test_console import _wait, login

pytestmark = pytest.mark.timeout(300)


def _request(server: Server, owner: str) -> dict[str, Any]:
    """An enrolment for ``owner`` (security_admin) requested by the server's admin; a second
    approver exists (the witness), so it waits for one."""
    server.witness()
    r = server.api("POST", "/v1/keys", json={"roles": ["security_admin"], "owner": owner})
    assert r.status_code == 201, r.text
    ticket: dict[str, Any] = r.json()
    assert ticket["status"] == "pending_approval", ticket
    return ticket


def _row(driver: Any, enrolment_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return _wait(
        driver,
        lambda d: [
            r
            for r in d.find_elements(By.CSS_SELECTOR, "#enrolments tbody tr")
            if enrolment_id in r.text
        ],
        60,
        f"the row of enrolment {enrolment_id}",
    )[0]


def _click_approve(driver: Any, enrolment_id: str, reason: str) -> None:
    from selenium.webdriver.common.by import By

    row = _row(driver, enrolment_id)
    assert "pending_approval" in row.text
    row.find_element(By.CSS_SELECTOR, "input.enrolment-reason").send_keys(reason)
    row.find_element(By.CSS_SELECTOR, "button.enrolment-approve").click()


def test_a_second_admin_approves_and_the_person_redeems_in_the_browser(
    browser: Any, console_server: Server
) -> None:
    from selenium.webdriver.common.by import By

    server = console_server
    owner = f"sia{uuid.uuid4().hex[:6]}"
    ticket = _request(server, owner)
    eid = ticket["enrolment_id"]

    login(browser, server, server.witness(), "/ui/enrolments")
    row = _row(browser, eid)
    assert owner in row.text and "security_admin" in row.text
    _click_approve(browser, eid, "met them in person")
    _wait(browser, lambda d: d.find_element(By.ID, "enrolment-half").text != "", 20, "the half")
    half = browser.find_element(By.ID, "enrolment-half").text
    assert len(half) == 43 and browser.find_element(By.ID, "enrolment-owner").text == owner
    assert browser.find_element(By.ID, "enrolment-error").text == ""
    screenshot(browser, "enrolment-approved")
    # the list now shows it ready (approved, not yet redeemed), without a button
    _wait(browser, lambda d: "ready" in _row(d, eid).text, 20, "the row marked ready")
    assert not _row(browser, eid).find_elements(By.CSS_SELECTOR, "button.enrolment-approve")

    # The person, in a browser without a session, redeems the token with the half.
    browser.delete_all_cookies()
    browser.get(server.url + "/ui/enrol")
    assert "/ui/enrol" in browser.current_url  # public: no redirect to the login page
    browser.find_element(By.ID, "enrol-token").send_keys(ticket["enrolment_token"])
    # without the approver's half: the API's refusal is shown, nothing is redeemed
    browser.find_element(By.ID, "enrol-submit").click()
    _wait(browser, lambda d: d.find_element(By.ID, "enrol-error").text != "", 20, "the refusal")
    refusal = browser.find_element(By.ID, "enrol-error").text
    assert browser.find_element(By.ID, "enrol-done").get_attribute("hidden") is not None
    browser.find_element(By.ID, "enrol-second").send_keys(half)
    browser.find_element(By.ID, "enrol-submit").click()
    _wait(browser, lambda d: d.find_element(By.ID, "enrol-key").text != "", 20, "the new key")
    key = browser.find_element(By.ID, "enrol-key").text
    key_id, _, secret = key.partition(":")
    assert key_id == browser.find_element(By.ID, "enrol-key-id").text and len(secret) == 43
    assert browser.find_element(By.ID, "enrol-token").get_attribute("value") == ""
    assert browser.find_element(By.ID, "enrol-error").text == "", refusal
    screenshot(browser, "enrolment-redeemed")
    # the key works, as its owner; the token is spent
    who = server.api("GET", "/v1/whoami", key=key)
    assert who.status_code == 200 and owner in who.text, who.text
    listed = server.api("GET", "/v1/enrolments").json()
    assert next(e for e in listed if e["enrolment_id"] == eid)["state"] == "redeemed"
    login(browser, server, key, "/ui/enrolments")
    assert owner in browser.find_element(By.CSS_SELECTOR, "header .user").text


def test_the_requester_approving_their_own_enrolment_is_refused(
    browser: Any, console_server: Server
) -> None:
    from selenium.webdriver.common.by import By

    server = console_server
    ticket = _request(server, f"sib{uuid.uuid4().hex[:6]}")
    eid = ticket["enrolment_id"]
    login(browser, server, server.admin_key, "/ui/enrolments")
    _click_approve(browser, eid, "it is me")
    _wait(browser, lambda d: d.find_element(By.ID, "enrolment-error").text != "", 20, "refusal")
    shown = browser.find_element(By.ID, "enrolment-error").text
    screenshot(browser, "enrolment-self-approval-refused")
    assert browser.find_element(By.ID, "enrolment-second").get_attribute("hidden") is not None
    api = server.api("POST", f"/v1/enrolments/{eid}/approve", json={"reason": "it is me"})
    assert api.status_code == 403
    assert shown == api.json()["message"] and "Two-person rule" in shown
    listed = server.api("GET", "/v1/enrolments").json()
    assert next(e for e in listed if e["enrolment_id"] == eid)["state"] == "pending_approval"
    assert "pending_approval" in _row(browser, eid).text
