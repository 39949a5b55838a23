"""The Security page's key buttons in real Chromium: a key created there logs in; rotated, its
old secret is refused and the new one logs in; revoked, it is refused."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from .conftest import Server, screenshot
from .test_console import _wait, login

pytestmark = pytest.mark.timeout(300)


def _login_refused(driver: Any, server: Server, key: str) -> str:
    """Try to log in with ``key``; the login page's error (the key was refused)."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(server.url + "/ui/login")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    _wait(driver, lambda d: d.find_element(By.ID, "login-error").text != "", 20, "the refusal")
    assert "/ui/login" in driver.current_url
    return str(driver.find_element(By.ID, "login-error").text)


def _row(driver: Any, key_id: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    try:
        return _wait(
            driver,
            lambda d: [
                r for r in d.find_elements(By.CSS_SELECTOR, "#keys tbody tr") if key_id in r.text
            ],
            60,  # the key list loads after login; a loaded CI machine has taken over 20 s
            f"the row of key {key_id}",
        )[0]
    except TimeoutException:
        # Say what the page shows instead (a refusal, an empty list, another page) so that a
        # failure on a CI machine explains itself.
        shown = driver.find_elements(By.ID, "keys")
        raise AssertionError(
            f"no row of key {key_id} after 60 s at {driver.current_url}; the key table shows: "
            f"{shown[0].text[:2000] if shown else '(no key table)'!r}"
        ) from None


def _secret_shown(driver: Any, previous: str = "") -> str:
    from selenium.webdriver.common.by import By

    _wait(
        driver,
        lambda d: d.find_element(By.ID, "key-token").text not in ("", previous),
        20,
        "the new secret",
    )
    return str(driver.find_element(By.ID, "key-token").text)


def test_create_rotate_and_revoke_a_key_from_the_security_page(
    browser: Any, console_server: Server
) -> None:
    from selenium.webdriver.common.by import By

    server = console_server
    owner = f"kim{uuid.uuid4().hex[:6]}"
    login(browser, server, server.admin_key, "/ui/security")
    browser.find_element(By.ID, "key-owner").send_keys(owner)
    browser.find_element(By.ID, "key-roles").send_keys("analyst")
    browser.find_element(By.ID, "key-create-button").click()
    token = _secret_shown(browser)
    key_id = token.split(":", 1)[0]
    assert browser.find_element(By.ID, "key-new-owner").text.startswith(owner)
    assert "active" in _row(browser, key_id).text
    screenshot(browser, "security-key-created")

    # The new key logs in, as its owner.
    browser.delete_all_cookies()
    login(browser, server, token, "/ui/markets")
    assert f"{owner} (analyst)" in browser.find_element(By.CSS_SELECTOR, "header .user").text

    # Rotated by the admin: the old secret is refused, the new one logs in.
    browser.delete_all_cookies()
    login(browser, server, server.admin_key, "/ui/security")
    _row(browser, key_id).find_element(By.CSS_SELECTOR, "button.key-rotate").click()
    new_token = _secret_shown(browser)
    new_id = new_token.split(":", 1)[0]
    assert new_id != key_id
    assert _login_refused(browser, server, token)
    login(browser, server, new_token, "/ui/markets")
    assert owner in browser.find_element(By.CSS_SELECTOR, "header .user").text

    # Revoked: refused at login (and its open sessions end, tests/service/test_console.py).
    browser.delete_all_cookies()
    login(browser, server, server.admin_key, "/ui/security")
    row = _row(browser, new_id)
    row.find_element(By.CSS_SELECTOR, "input.key-reason").send_keys("left the team")
    row.find_element(By.CSS_SELECTOR, "button.key-revoke").click()
    _wait(browser, lambda d: new_id in d.find_element(By.ID, "key-result").text, 20, "revoked")
    screenshot(browser, "security-key-revoked")
    assert server.api("GET", "/v1/whoami", key=new_token).status_code == 401
    message = _login_refused(browser, server, new_token)
    assert message, "the login page shows why the key was refused"


_HOLD_NEXT_KEY_LIST = """
// The next answer to GET /ui/api/security/keys is held back until window.releaseKeyList() is
// called: the request reaches the server now, its answer reaches the page later.
const original = window.fetch;
let held = false;
window.fetch = async (path, options) => {
  const response = await original(path, options);
  if (!held && String(path).endsWith("/ui/api/security/keys") && !(options && options.method)) {
    held = true;
    await new Promise((resolve) => { window.releaseKeyList = resolve; });
  }
  return response;
};
"""


def test_a_key_list_answer_that_arrives_late_does_not_hide_a_new_key(
    browser: Any, console_server: Server
) -> None:
    """A list asked for before a key was created, whose answer arrives after the list asked for
    after it, must not redraw the table without the new key (a CI run lost a row this way)."""
    from selenium.webdriver.common.by import By

    server = console_server
    old_id = server.key("analyst", owner=f"lee{uuid.uuid4().hex[:6]}").split(":", 1)[0]
    login(browser, server, server.admin_key, "/ui/security")
    _row(browser, old_id)
    browser.execute_script(_HOLD_NEXT_KEY_LIST)
    # rotating reloads the list: that answer (without the key created next) is held
    _row(browser, old_id).find_element(By.CSS_SELECTOR, "button.key-rotate").click()
    _wait(browser, lambda d: d.execute_script("return !!window.releaseKeyList"), 20, "held list")
    rotated = _secret_shown(browser)
    browser.find_element(By.ID, "key-owner").send_keys(f"kim{uuid.uuid4().hex[:6]}")
    browser.find_element(By.ID, "key-roles").send_keys("analyst")
    browser.find_element(By.ID, "key-create-button").click()
    new_id = _secret_shown(browser, rotated).split(":", 1)[0]
    _row(browser, new_id)
    browser.execute_script("window.releaseKeyList()")
    time.sleep(0.5)  # the held answer is handled in the page's next tasks
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#keys tbody tr")]
    assert any(new_id in r for r in rows), f"the late answer hid the new key: {rows}"


def test_an_approver_created_on_the_security_page_gets_an_enrolment_token(
    browser: Any, console_server: Server
) -> None:
    """A role that may approve is never handed to the admin who creates it: the page shows an
    enrolment token and what to do with it; the person redeems it and logs in as themselves."""
    import secrets

    import httpx
    from selenium.webdriver.common.by import By

    server = console_server
    witness = server.witness()  # a second approver exists: the token is half of one
    owner = f"sia{uuid.uuid4().hex[:6]}"
    login(browser, server, server.admin_key, "/ui/security")
    browser.find_element(By.ID, "key-owner").send_keys(owner)
    browser.find_element(By.ID, "key-roles").send_keys("security_admin")
    browser.find_element(By.ID, "key-create-button").click()
    token = _secret_shown(browser)
    assert token.startswith("he_") and ":" not in token
    assert "hub enrol" in browser.find_element(By.ID, "key-result").text
    screenshot(browser, "security-enrolment-token")
    eid = token.split(".")[0]
    half = server.api("POST", f"/v1/enrolments/{eid}/approve", key=witness, json={}).json()
    secret = secrets.token_urlsafe(32)
    body = {"token": token, "second_half": half["second_half"], "secret": secret}
    done = httpx.post(server.url + "/v1/enrol", json=body, timeout=30)
    assert done.status_code == 201, done.text
    browser.delete_all_cookies()
    login(browser, server, f"{done.json()['key_id']}:{secret}", "/ui/markets")
