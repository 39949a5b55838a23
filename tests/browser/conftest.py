"""A real hub server and a real Chromium for the console's browser tests.

- ``console_server``: ``hub serve`` in a subprocess on a fresh data folder, on the first free port
  of 127.0.0.1:26080-26089 (``HUB_BROWSER_PORTS=first-last`` to change), with its admin key.
- ``browser``: Debian's ``chromium`` driven through ``chromium-driver`` by Selenium, headless.
  Missing locally: the tests skip with the command that installs them (``make browser-deps``);
  under ``CI=true`` they fail instead.
- Screenshots go to ``HUB_TEST_ARTIFACTS`` (default ``.artifacts/``, gitignored) under
  ``browser/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("HUB_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing(what: str) -> None:
    message = (
        f"{what} is not installed: the console's browser tests need Debian's chromium and "
        "chromium-driver (run `make browser-deps`, as root)."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def artifacts() -> Path:
    folder = Path(os.environ.get("HUB_TEST_ARTIFACTS", ROOT / ".artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    first, _, last = os.environ.get("HUB_BROWSER_PORTS", "26080-26089").partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"No free port in {first}-{last} for the hub under test.")


@dataclass
class Server:
    url: str
    admin_key: str
    data_dir: Path
    _witness: str = ""

    def api(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        auth = tuple((key or self.admin_key).split(":", 1))
        return httpx.request(method, self.url + path, auth=auth, timeout=30, **kw)  # type: ignore[arg-type]

    def key(self, *roles: str, owner: str) -> str:
        """A key for ``owner``; a role that may approve goes through enrolment (a witness admin
        adds the second half when the two-person rule needs one; governance.enrolment)."""
        witness = self.witness()  # first: with it the bootstrap window is closed
        r = self.api("POST", "/v1/keys", json={"roles": list(roles), "owner": owner})
        assert r.status_code == 201, r.text
        if "token" in r.json():
            return str(r.json()["token"])
        body = {"token": r.json()["enrolment_token"], "secret": secrets.token_urlsafe(32)}
        if r.json()["status"] == "pending_approval":
            eid = r.json()["enrolment_id"]
            half = self.api("POST", f"/v1/enrolments/{eid}/approve", key=witness, json={})
            assert half.status_code == 200, half.text
            body["second_half"] = half.json()["second_half"]
        done = httpx.post(self.url + "/v1/enrol", json=body, timeout=30)
        assert done.status_code == 201, done.text
        return f"{done.json()['key_id']}:{body['secret']}"

    def witness(self) -> str:
        """An independent admin (the hub's own bootstrap key, made once in this process), and
        a second one: three approvers close the bootstrap window, so every person the admin
        creates is enrolled with a second approver's half, never from a token the admin saw
        whole."""
        if not self._witness:
            from hub.bootstrap import bootstrap
            from hub.settings import load_settings

            h = bootstrap(load_settings(environ={}, data_dir=self.data_dir))
            try:
                h.keys.create(["admin"], owner="witness-2")
                self._witness = h.keys.create(["admin"], owner="witness").token
            finally:
                h.close()
        return self._witness

    def own_key(self, token: str) -> str:
        """``token``'s owner rotates it, acting with that key: the new key is the owner's own,
        whose secret the admin who issued the old one never saw (the two-person rule counts
        only such a key as a second person's when that admin proposes)."""
        key_id = token.split(":", 1)[0]
        r = self.api("POST", f"/v1/keys/{key_id}/rotate", key=token, json={"reason": "my own"})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("console") / "data"
    port = _free_port()
    key_file = data / "admin.key"
    hub_cli = [sys.executable, "-m", "hub.cli"]
    admin = ["--admin-key-file", str(key_file)]
    log = (artifacts() / "server.log").open("w")
    proc = subprocess.Popen(
        [*hub_cli, "--data-dir", str(data), "serve", "--port", str(port), *admin],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HUB_LOG_LEVEL": "WARNING"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hub serve exited with {proc.returncode}: see {log.name}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200 and key_file.exists():
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub serve did not answer on {url} within 120 s")
            time.sleep(0.3)
        yield Server(url, key_file.read_text().strip(), data)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _missing("chromium")
    if not (Path(DRIVER).exists() or shutil.which("chromedriver")):
        _missing("chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - selenium is in the lock file
        _missing("selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    chromium.delete_all_cookies()
    yield chromium


def screenshot(driver: Any, name: str) -> Path:
    path = artifacts() / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
