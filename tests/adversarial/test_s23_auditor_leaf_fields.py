"""Session 23 auditor review: the fields of an exported event that hub-verify did not read
(docs/benchmarks/s23-redteam-auditor23.md).

``hub ledger find --export FILE`` writes the event with its proof for ``hub-verify leaf``, and
beside the hashed fields it states what an auditor reads: ``actor``, ``action``, ``resource``,
``time``, ``tenant``, ``event_id``, the key and value digests. hub-verify recomputed the leaf
from the hashed fields only, so whoever handled the file changed ``"actor": "desk-1"`` into
someone else, or the time, and still got "OK leaf ... signed by ...". Evidence packs check
such fields (``audit.bundle``, session 19); the event file now is checked the same way, each
field the file states against the hashed record, naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from audit.verify import main as hub_verify
from hub.cli import main
from tests.cli_keys import admin_args
from tests.service.test_ledger_lookup import published_trade


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    tmp = tmp_path_factory.mktemp("leaf")
    data = tmp / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        event_id, _part, _off = published_trade(h)
        pub = h.settings.ledger_key_path.with_suffix(".pub")
    finally:
        h.close()
    out = tmp / "found.json"
    args = ["ledger", "find", "--event-id", event_id, "--export", str(out)]
    r = CliRunner().invoke(main, [*admin_args(data), *args])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text()), pub


def _verify(tmp_path: Path, event: dict[str, Any], pub: Path) -> int:
    f = tmp_path / "event.json"
    f.write_text(json.dumps(event))
    return hub_verify(["leaf", str(f), "--public-key", str(pub)])


def test_the_exported_event_verifies(
    exported: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event, pub = exported
    assert {"actor", "action", "resource", "time", "tenant", "event_id"} <= set(event)
    assert _verify(tmp_path, event, pub) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "carol"),
        ("action", "trade.cancelled"),
        ("resource", "ACC-9"),
        ("time", "2020-01-01T00:00:00+00:00"),
        ("tenant", "globex"),
        ("event_id", "0190c0de-0000-7000-8000-000000000000"),
        ("value_sha256", "00" * 32),
    ],
)
def test_an_edited_field_of_the_exported_event_is_named(
    exported: tuple[dict[str, Any], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: str,
) -> None:
    event, pub = exported
    assert _verify(tmp_path, {**event, field: value}, pub) == 1  # before: 0, "OK leaf"
    err = capsys.readouterr().err
    assert "INVALID" in err and field in err and "altered" in err, err
