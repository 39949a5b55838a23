"""What the lake tests share: the CLI runner and a data folder holding opened accounts (with PII
fields), synced to a signed checkpoint, for ``hub lake export`` to read."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from hub.bootstrap import bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.publish import OutgoingEvent


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def publish(data: Path, first: int, n: int) -> None:
    """Open accounts ACC-<first> .. ACC-<first+n-1> and sign a checkpoint over them."""
    h = bootstrap(load_settings(data_dir=data))
    try:
        h.publisher.publish(
            "accounts",
            [
                OutgoingEvent(
                    event_type="hub.accounts.AccountOpened",
                    value={
                        "account_id": f"ACC-{i:05d}",
                        "customer_name": f"Secret Name {i}",
                        "email": f"a{i}@example.org",
                        "date_of_birth": "1980-02-03",
                        "country": "GB",
                        "kyc_level": "STANDARD",
                        "risk_rating": "LOW",
                        "base_currency": "EUR",
                        "opened_at": "2026-11-25T10:00:00Z",
                    },
                )
                for i in range(first, first + n)
            ],
            producer="test",
        )
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
