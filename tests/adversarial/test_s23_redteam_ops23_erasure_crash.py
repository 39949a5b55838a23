"""An erasure killed after its keys were destroyed is completed at the next open (session 23).

``hub erase`` (and ``POST /v1/erasures``) destroys the subject's keys (step 2), then scrubs the
views (3), deletes the ML side's derived rows (3b) and records the erasure on the ledger (4).
A process killed between 2 and 4 (``kill -9``, the OOM killer, a node lost) left the key
destroyed but the views still holding the subject's plaintext (name, e-mail) and nothing on the
ledger: every later open served the plaintext, ``hub ledger verify`` passed, and the evidence
showed no erasure. The module docstring said to run the same command again, but nothing told
anyone it had to be: the officer saw a dropped connection, the auditor saw nothing.

The eraser now writes its intent (subject, scope, reason, actor) to the data folder before
step 2 and removes it after step 5; every open finds an intent left behind and, when a key it
names was destroyed, completes steps 3-5 (the reason recorded says it was completed after an
interruption). An intent whose keys are all still live (killed before step 2: nothing was
erased; or a planted file) erases nothing and is dropped with a warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.ports.policy import Principal
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SUBJECT, OTHER = "ACC-K1", "ACC-K2"
NAME, KEPT = "Kim Killed-Midway", "Otto Kept"
OPERATOR = Principal("ops", frozenset({"admin"}))
ENV = {"HUB_PROJECTION_AUTOSTART": "false"}
CHILD = [sys.executable, "-m", "tests.adversarial._erasure_child"]


def views_text(h: Hub) -> str:
    table = h.projections.query(
        h.policy, OPERATOR, "SELECT * FROM accounts_current", store="transactional"
    )
    return json.dumps(table.to_pylist(), default=str)


def erasures(h: Hub, subject: str) -> list[dict[str, object]]:
    """The ledger's ``subject.erase`` entries of ``subject``: actor and details."""
    found = []
    for e in h.ledger.entries(action="subject.erase", resource=f"subject:{subject}"):
        value = h.reader.read("hub.audit", e["partition"], e["offset"], 1)[0]["value"]
        found.append({"actor": e["actor"], "details": json.loads(value["details"])})
    return found


def test_an_erasure_killed_after_its_keys_went_is_completed_at_the_next_open(
    tmp_path: Path,
) -> None:
    data = tmp_path / "hub"
    out = subprocess.run(
        [*CHILD, str(data), "kill", "DSR-77", "officer-1", SUBJECT, NAME, OTHER, KEPT],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "erasing" in out.stdout and out.returncode == 137, out.stderr[-3000:]
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        assert NAME not in views_text(h), "the erased subject's name is still in the views"
        assert KEPT in views_text(h)
        done = erasures(h, SUBJECT)
        assert len(done) == 1, "the erasure is not on the ledger"
        assert done[0]["actor"] == "officer-1"
        reason = str(done[0]["details"]["reason"])  # type: ignore[index]
        assert "DSR-77" in reason and "interrupted" in reason
    finally:
        h.close()
    # the next open has nothing left to complete: no second entry
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        assert len(erasures(h, SUBJECT)) == 1
    finally:
        h.close()


def test_an_intent_whose_keys_are_live_erases_nothing_and_is_dropped(tmp_path: Path) -> None:
    """Killed before step 2 (or a file planted in the data folder): no key was destroyed, so
    the next open erases nothing, records nothing, and drops the intent."""
    from core.events import OutgoingEvent
    from governance.erasure_intents import ErasureIntents, Intent

    data = tmp_path / "hub"
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        value = {
            "account_id": OTHER, "customer_name": KEPT, "email": "x@example.org",
            "date_of_birth": "1980-02-03", "country": "GB", "kyc_level": "STANDARD",
            "risk_rating": "LOW", "base_currency": "EUR", "opened_at": "2026-11-25T10:00:00Z",
        }  # fmt: skip
        event = OutgoingEvent(event_type="hub.accounts.AccountOpened", value=value)
        h.publisher.publish("accounts", [event], "test")
        h.projections.run(["accounts"])
        folder = h.settings.erasure_intents_dir
    finally:
        h.close()
    planted = Intent(OTHER, None, "planted", "mallory", "default", ("default",), True, True, 0)
    planter = ErasureIntents(folder)
    planter.begin(planted)
    planter.release(OTHER, None)  # the planting process is gone: its erasure is not running
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        assert KEPT in views_text(h)
        assert erasures(h, OTHER) == []
        assert not list(folder.glob("*.json"))
        assert h.keystore.for_tenant("default").exists(OTHER)
    finally:
        h.close()
