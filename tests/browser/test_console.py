"""The console in real Chromium: log in, live candles, a query, a ledger proof, a refusal."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import Server, screenshot

pytestmark = pytest.mark.timeout(600)


def _wait(driver: Any, condition: Any, timeout: float = 20.0, what: str = "") -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # an element found in one poll may be replaced by a re-render before it is read: the next
    # poll finds the new one (this ended a trial once: the login page's error after a reload)
    return WebDriverWait(
        driver, timeout, poll_frequency=0.02, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, what)


def login(driver: Any, server: Server, key: str, path: str = "/ui") -> None:
    from selenium.webdriver.common.by import By

    # a blank page first: the page left open (e.g. /ui/markets) polls, and once its cookies
    # are gone it sends itself to /ui/login?next=<itself>; that navigation could win over
    # ours, and the login would land there (a CI run ended on /ui/markets, not /ui/security)
    driver.get("about:blank")
    driver.get(server.url + path)
    _wait(driver, lambda d: "/ui/login" in d.current_url, what="the login page")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    _wait(driver, lambda d: "/ui/login" not in d.current_url, what="leaving the login page")


def trade(server: Server, instrument: str, price: str, quantity: str = "10") -> float:
    """Publish one trade executed now; the time just before the call (monotonic)."""
    started = time.monotonic()
    value = {
        "trade_id": f"T-{uuid.uuid4().hex[:12]}",
        "account_id": "ACC-0001",
        "instrument": instrument,
        "side": "BUY",
        "quantity": quantity,
        "price": price,
        "currency": "USD",
        "executed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    r = server.api("POST", "/v1/topics/trades/events", json={"events": [{"value": value}]})
    assert r.status_code == 201, r.text
    return started


def _chart(driver: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "chart").get_attribute(f"data-{name}") or "")


def test_login_then_the_candle_chart_updates_live_after_a_trade(
    browser: Any, console_server: Server
) -> None:
    instrument = f"TST{uuid.uuid4().hex[:6].upper()}"
    trade(console_server, instrument, "100.00")
    login(browser, console_server, console_server.admin_key, f"/ui/markets?instrument={instrument}")
    assert browser.current_url.endswith(f"/ui/markets?instrument={instrument}")
    _wait(browser, lambda d: _chart(d, "trades") == "1", 60, "the first trade on the chart")
    assert _chart(browser, "last-close") == "100.00000000"

    # No reload: the next trade arrives over Server-Sent Events.
    published = trade(console_server, instrument, "104.50", "30")
    _wait(browser, lambda d: _chart(d, "trades") == "2", 30, "the second trade on the chart")
    seconds = time.monotonic() - published
    assert _chart(browser, "last-close") == "104.50000000"
    svg_title = browser.find_element("css selector", "#chart svg title").get_attribute(
        "textContent"
    )
    assert instrument in svg_title
    screenshot(browser, "markets-live-update")
    print(f"\npublish -> chart update: {seconds * 1000:.0f} ms")
    assert seconds < 5, f"the chart took {seconds:.2f} s to show a published trade"


def test_a_query_runs_and_shows_its_rows(browser: Any, console_server: Server) -> None:
    from selenium.webdriver.common.by import By

    instrument = f"QRY{uuid.uuid4().hex[:6].upper()}"
    trade(console_server, instrument, "55.00")
    login(browser, console_server, console_server.admin_key, "/ui/explore")
    _wait(browser, lambda d: "ohlcv_1m" in d.find_element(By.ID, "catalog").text, 30, "catalog")
    sql = browser.find_element(By.ID, "sql")
    sql.clear()
    sql.send_keys(
        f"SELECT instrument, sum(events) AS trades FROM ohlcv_1m WHERE instrument = '{instrument}' "
        "GROUP BY instrument"
    )
    deadline = time.monotonic() + 30
    while True:  # the projection may not have folded the trade yet
        browser.find_element(By.ID, "run").click()
        _wait(browser, lambda d: d.find_element(By.ID, "status").text.endswith(" ms"), 30, "rows")
        if instrument in browser.find_element(By.ID, "results").text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#results tbody td")]
    assert cells == [instrument, "1"]
    bars = browser.find_elements(By.CSS_SELECTOR, "#result-chart svg rect")
    assert len(bars) == 1  # the result as a chart too: trades by instrument
    screenshot(browser, "explore-query")

    # A saved (named) query of the catalog: mark-to-market P&L.
    browser.find_element(By.CSS_SELECTOR, 'button.saved-query[data-name="mark_to_market"]').click()
    _wait(
        browser,
        lambda d: "unrealised_pnl" in d.find_element(By.ID, "results").text,
        30,
        "the saved query's columns",
    )
    assert "FROM positions AS p" in sql.get_attribute("value")

    sql.clear()
    sql.send_keys("SELECT no_such_column FROM ohlcv_1m")
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: d.find_element(By.ID, "error").text != "", 30, "the error")
    assert "no_such_column" in browser.find_element(By.ID, "error").text


def test_a_ledger_entry_proof_verifies_in_the_browser(browser: Any, console_server: Server) -> None:
    from selenium.webdriver.common.by import By

    trade(console_server, "LDG", "1.00")
    login(browser, console_server, console_server.admin_key, "/ui/ledger?topic=trades")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#entries tr.link"), 30, "entries")
    row = browser.find_elements(By.CSS_SELECTOR, "#entries tr.link")[-1]
    index = int(row.get_attribute("data-index"))
    row.click()
    verdict = _wait(
        browser,
        lambda d: (
            d.find_element(By.ID, "verdict").get_attribute("data-ok")
            and d.find_element(By.ID, "verdict")
        ),
        30,
        "the verdict",
    )
    checks = browser.find_element(By.ID, "checks").text
    browser.execute_script("document.getElementById('checks').scrollIntoView()")
    screenshot(browser, "ledger-proof")
    assert verdict.get_attribute("data-ok") == "true", checks
    assert "leaf hash recomputed" in checks and "Ed25519" in checks
    assert f"Entry {index}: trades/" in browser.find_element(By.ID, "entry-title").text

    # The same checks fail on a changed proof, a changed note or a changed field.
    outcome = browser.execute_async_script(
        """
        const [index, done] = arguments;
        (async () => {
          const L = window.hubLedger;
          const e = await (await fetch(`/ui/api/ledger/entries/${index}`)).json();
          const key = (await (await fetch('/ui/api/ledger/key')).json()).verifier_key;
          const proof = e.proof.map(L.unhex);
          const leaf = L.unhex(e.leaf_hash);
          const good = L.hex(await L.rootFromProof(leaf, e.index, e.checkpoint.size, proof));
          const bad = proof.map((p) => p.slice());
          if (bad.length) bad[0][0] ^= 1;
          const tampered = L.hex(await L.rootFromProof(leaf, e.index, e.checkpoint.size, bad));
          const outcome = (p) => p.then(() => 'ok', (x) => x.message);
          const signed = await outcome(L.verifyNote(e.checkpoint.note, key));
          const note = e.checkpoint.note.replace(/\\n(\\d+)\\n/, '\\n9$1\\n');
          const forged = await outcome(L.verifyNote(note, key));
          const leafHash = async (x) =>
            L.hex(await L.sha256(new Uint8Array([0, ...L.leafInput(x)])));
          const leafOk = await leafHash(e);
          const leafBad = await leafHash({...e, offset: e.offset + 1});
          done({good, tampered, proofLength: proof.length, signed, forged, leafOk, leafBad,
                leafHash: e.leaf_hash, root: e.checkpoint.root});
        })().catch((x) => done({error: String(x)}));
        """,
        index,
    )
    assert "error" not in outcome, outcome
    assert outcome["good"] == outcome["root"]
    if outcome["proofLength"]:
        assert outcome["tampered"] != outcome["root"]
    assert outcome["signed"] == "ok"
    assert "does not verify" in outcome["forged"]
    assert outcome["leafOk"] == outcome["leafHash"]
    assert outcome["leafBad"] != outcome["leafHash"]


def test_a_page_without_the_role_is_refused(browser: Any, console_server: Server) -> None:
    from selenium.webdriver.common.by import By

    owner = f"pub{uuid.uuid4().hex[:6]}"
    key = console_server.key("publisher", owner=owner)
    login(browser, console_server, key, "/ui/ledger")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Access refused"
    assert "ledger.read" in browser.find_element(By.ID, "refusal").text
    screenshot(browser, "refused")


def test_a_second_person_approves_a_policy_change(browser: Any, console_server: Server) -> None:
    from selenium.webdriver.common.by import By

    server = console_server
    owner = f"sam{uuid.uuid4().hex[:6]}"
    # issued by the admin who proposes below, then rotated by its owner: the owner's own key
    second = server.own_key(server.key("security_admin", owner=owner))
    from core.policybundle import PolicyBundle

    files = dict(PolicyBundle.from_dir().files)
    current = server.api("GET", "/v1/policy").json()
    if current.get("change"):  # a change activated earlier: build on its files
        change = server.api("GET", f"/v1/policy/changes/{current['change']['change_id']}").json()
        files = change.get("files") or files
    files["hub/authz.rego"] += f"\n# reviewed in the console ({owner})\n"
    proposed = server.api(
        "POST", "/v1/policy/changes", json={"files": files, "reason": "annotate the policy"}
    )
    assert proposed.status_code == 201, proposed.text
    change_id = proposed.json()["change_id"]
    assert proposed.json()["status"] == "pending_approval"

    login(browser, server, second, "/ui/security")
    row = _wait(
        browser,
        lambda d: [
            r for r in d.find_elements(By.CSS_SELECTOR, "#pending tbody tr") if change_id in r.text
        ],
        30,
        "the pending change",
    )[0]
    row.find_element(By.CSS_SELECTOR, "input.approve-reason").send_keys("read the diff: a comment")
    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    _wait(browser, lambda d: "activated" in d.find_element(By.ID, "approve-result").text, 60, "ok")
    screenshot(browser, "security-approved")
    now = server.api("GET", "/v1/policy").json()
    assert now["version"] == proposed.json()["bundle_version"]
    approvals = server.api("GET", f"/v1/policy/changes/{change_id}").json()["approvals"]
    assert owner in str(approvals)


def test_a_verifier_key_with_plus_signs_in_its_base64_verifies(
    browser: Any, console_server: Server
) -> None:
    """Key strings are ``name+hexid+base64``; base64 itself may hold ``+`` (a bug once)."""
    from audit.note import SignerKey, sign_note

    seed = 0
    while True:  # a key whose encoding has a "+" inside the base64 part
        signer = SignerKey("test.example/log", seed.to_bytes(32, "big"))
        if "+" in signer.verifier.encode().split("+", 2)[2]:
            break
        seed += 1
    note = sign_note("test.example/log\n1\n" + "A" * 43 + "=\n", signer).decode()
    login(browser, console_server, console_server.admin_key, "/ui/ledger")
    _wait(browser, lambda d: d.execute_script("return !!window.hubLedger"), 30, "the script")
    outcome = browser.execute_async_script(
        """
        const [note, key, done] = arguments;
        window.hubLedger.verifyNote(note, key).then(() => done('ok'), (x) => done(x.message));
        """,
        note,
        signer.verifier.encode(),
    )
    assert outcome == "ok"
