"""Session 18 follow-up: the readers of the ledger's action column that already required the
hub's audit topic keep requiring it (pins, so a refactor cannot drop the gate).

A legacy subject (registered before the registry refused the names) lets a publisher write
records whose ledger action is ``retention.delete`` or ``subject.erase``. The retention cuts
(``ledger.cuts``, what ``hub ledger verify`` and the cold tier trust), the SOC 2 populations of an
evidence pack (``ledger.controls``) and the decision reader of access reviews count the hub's
internal topics only.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

from core.events import OutgoingEvent
from ledger import controls as soc2
from ledger.cuts import iter_cuts
from ledger.evidence import export_pack
from tests.adversarial._api import Api


def _legacy_record(api: Api, name: str, details: dict[str, object]) -> None:
    h = api.hub
    ns, _, short = name.rpartition(".")
    schema = {
        "type": "record",
        "name": short,
        "namespace": ns,
        "fields": [{"name": "details", "type": "string"}],
    }
    if "notes" not in {t.name for t in h.log.topics()}:
        h.log.create_topic("notes", 1, {"hub.subject.strategy": "record"})
    h.registry.register(name, json.dumps(schema))
    event = OutgoingEvent(value={"details": json.dumps(details)}, event_type=name, key="topic:x")
    h.publisher.publish("notes", [event], producer="p-publisher", tenant="default")


def test_a_published_retention_delete_is_no_cut_and_no_evidence(api: Api) -> None:
    _legacy_record(api, "retention.delete", {"topic": "accounts", "partition": 0, "to": 10**6})
    _legacy_record(api, "subject.erase", {"subject": "alice"})
    h = api.hub
    h.ledger.sync(force_checkpoint=True)
    assert [r[1] for r in h.ledger.store.query(action="retention.delete")] == ["notes"]
    assert list(iter_cuts(h.ledger)) == []  # no cut: verify and the cold tier ignore it
    assert soc2.controls_of("notes", "subject.erase") == ()
    now = datetime.now(UTC)
    pack = export_pack(
        h.ledger, now - timedelta(hours=1), now + timedelta(hours=1), ["PI1"], actor="auditor"
    )
    with zipfile.ZipFile(io.BytesIO(pack.data)) as zf:
        entries = [json.loads(line) for line in zf.read("entries.jsonl").splitlines() if line]
    assert all(e["topic"] != "notes" for e in entries), [e["topic"] for e in entries]
