"""The demo data set: reproducible, loads once, planted bad records end in quarantine."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from click.testing import CliRunner

from hub.cli import main
from hub.demo import generate
from tests.cli_keys import admin_args


def test_generator_is_seeded() -> None:
    def first_500(seed: int) -> list[dict]:  # the generator is lazy: only these are made
        return [e.value for e in islice(generate(seed), 500)]

    a = first_500(7)
    assert a == first_500(7)
    assert a != first_500(8)
    payments = [e.value for e in generate(7) if e.topic == "payments"]
    assert any(p.get("counterparty_country") == "KP" for p in payments)
    structuring = [
        p
        for p in payments
        if p["account_id"] == "ACC-0042"
        and 9500 <= float(p["amount"]) < 10000
        and "counterparty_iban" in p
    ]
    assert len(structuring) >= 9


def test_demo_load_is_idempotent_and_quarantines_bad_records(tmp_path: Path) -> None:
    args = admin_args(tmp_path)
    r = CliRunner().invoke(main, [*args, "demo", "load"])
    assert r.exit_code == 0, r.output
    assert "trades     accepted=3000 rejected=3 duplicates=1" in r.stdout

    def data_topics() -> list[str]:  # hub.decisions grows with every command: each is decided
        out = CliRunner().invoke(main, [*args, "topics"]).stdout.splitlines()
        return [line for line in out if not line.startswith("hub.decisions\t")]

    before = data_topics()
    r = CliRunner().invoke(main, [*args, "demo", "load"])
    assert "already loaded" in r.stdout
    assert data_topics() == before
    q = CliRunner().invoke(main, [*args, "quarantine", "list"]).stdout.splitlines()
    rules = {line.split("\t")[3] for line in q}
    assert {"trade.quantity.positive", "quote.not.crossed", "settlement.after.initiation"} <= rules
    shown = CliRunner().invoke(main, [*args, "quarantine", "show", "0"])
    assert '"original_text"' in shown.stdout and "BAD-001" in shown.stdout
    replay = CliRunner().invoke(main, [*args, "quarantine", "replay", "0"])
    assert "trades: accepted=0 rejected=1" in replay.stdout  # the rule still holds
    q = CliRunner().invoke(main, [*args, "quarantine", "list", "--status", "requarantined"])
    assert q.stdout.startswith("0\ttrades\t") and "status=requarantined" in q.stdout
    again = CliRunner().invoke(main, [*args, "quarantine", "replay", "0"])
    assert again.exit_code == 1
    assert "already replayed" in again.stderr and "new quarantine entry at offset" in again.stderr
