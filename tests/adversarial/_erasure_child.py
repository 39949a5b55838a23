"""A hub process that an erasure test interrupts: it opens the hub at DATA, publishes two
accounts, folds them into the views, signs a checkpoint and erases SUBJECT as ACTOR (case CASE),
its view step (step 3, right after the key destroy) replaced by MODE:

- ``kill``: the process ends at once with exit code 137 (``os._exit``: no clean-up runs);
- ``pause``: it prints ``paused``, waits for a line on standard input, goes on, closes the hub
  and prints ``recorded``.

In ``kill`` mode it prints ``erasing`` before the erasure. ``--inherit-env`` reads the settings
from its own environment (an HA replica's); otherwise only ``HUB_PROJECTION_AUTOSTART=false``
is set.

    python -m tests.adversarial._erasure_child DATA MODE CASE ACTOR SUBJECT NAME OTHER KEPT
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from core.events import OutgoingEvent
from core.ports.policy import Principal
from governance.erasure import Eraser
from hub.bootstrap import bootstrap
from hub.settings import load_settings


def opened(account_id: str, name: str) -> dict[str, str]:
    return {
        "account_id": account_id,
        "customer_name": name,
        "email": "x@example.org",
        "date_of_birth": "1980-02-03",
        "country": "GB",
        "kyc_level": "STANDARD",
        "risk_rating": "LOW",
        "base_currency": "EUR",
        "opened_at": "2026-11-25T10:00:00Z",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("data", "mode", "case", "actor", "subject", "name", "other", "kept"):
        ap.add_argument(name)
    ap.add_argument("--inherit-env", action="store_true")
    a = ap.parse_args()
    environ = None if a.inherit_env else {"HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=environ, data_dir=Path(a.data)))
    h.publisher.publish(
        "accounts",
        [
            OutgoingEvent(event_type="hub.accounts.AccountOpened", value=opened(a.subject, a.name)),
            OutgoingEvent(event_type="hub.accounts.AccountOpened", value=opened(a.other, a.kept)),
        ],
        "test",
    )
    h.projections.run(["accounts"])
    h.ledger.sync(force_checkpoint=True)
    views = Eraser._erase_views

    def killed(*args: Any, **kwargs: Any) -> Any:
        os._exit(137)

    def paused(*args: Any, **kwargs: Any) -> Any:
        print("paused", flush=True)
        sys.stdin.readline()
        return views(*args, **kwargs)

    Eraser._erase_views = killed if a.mode == "kill" else paused  # type: ignore[method-assign]
    if a.mode == "kill":
        print("erasing", flush=True)
    h.eraser.erase(
        Principal(a.actor, frozenset({"compliance_officer"})), a.subject, a.case, tenant_scope=None
    )
    h.close()
    print("recorded", flush=True)


if __name__ == "__main__":
    main()
