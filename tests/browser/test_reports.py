"""The Reports page in real Chromium (issue 15): a compliance officer runs a signed report, sees
it listed, and verifies its signature from the page; an analyst is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import Server, screenshot
from .test_console import _wait, login

pytestmark = pytest.mark.timeout(600)


def test_a_compliance_officer_runs_and_verifies_a_report(
    browser: Any, console_server: Server
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    key = console_server.key("compliance_officer", owner=f"co{uuid.uuid4().hex[:6]}")
    login(browser, console_server, key, "/ui/reports")
    assert browser.find_element(By.CSS_SELECTOR, "nav a.current").text == "Reports"
    Select(browser.find_element(By.ID, "kind")).select_by_value("data-quality")
    browser.find_element(By.ID, "run-report").click()
    last = _wait(
        browser,
        lambda d: d.find_element(By.ID, "last").get_attribute("data-report"),
        120,
        "the report to be made",
    )
    assert "accuracy" in browser.find_element(By.ID, "last").text
    row = _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-report="{last}"]'),
        30,
        "the new report in the list",
    )[0]
    links = [a.text for a in row.find_elements(By.TAG_NAME, "a")]
    assert links == ["PDF", "HTML", "signed pack"]
    button = row.find_element(By.CSS_SELECTOR, "button.verify")
    # The button is next to the report id, not past a horizontal scroll of the wide table.
    inside = browser.execute_script(
        "const b = arguments[0].getBoundingClientRect();"
        "const s = arguments[0].closest('.scroll').getBoundingClientRect();"
        "return b.left >= s.left && b.right <= s.right;",
        button,
    )
    assert inside, "the verify button lies outside the visible part of the reports table"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "verified").get_attribute("data-ok") is not None,
        60,
        "the verification",
    )
    verified = browser.find_element(By.ID, "verified")
    assert verified.get_attribute("data-ok") == "true", verified.text
    assert verified.text.startswith("OK hub-report/v1 report data-quality")
    screenshot(browser, "reports")


def test_an_analyst_is_refused_the_reports_page(browser: Any, console_server: Server) -> None:
    from selenium.webdriver.common.by import By

    key = console_server.key("analyst", owner=f"an{uuid.uuid4().hex[:6]}")
    login(browser, console_server, key, "/ui/reports")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Access refused"
    assert "report.read" in browser.find_element(By.ID, "refusal").text
