"""The Security page's key buttons in real Chromium: a key created there logs in; rotated, its
old secret is refused and the new one logs in; revoked, it is refused."""

from __future__ import annotations

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
    from selenium.webdriver.common.by import By

    return _wait(
        driver,
        lambda d: [
            r for r in d.find_elements(By.CSS_SELECTOR, "#keys tbody tr") if key_id in r.text
        ],
        60,  # the key list loads after login; a loaded CI machine has taken over 20 s
        f"the row of key {key_id}",
    )[0]


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
