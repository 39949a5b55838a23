"""Session 25 (redteam-auditor25): a start that recorded no access decision, outside the pack.

Session 24 put every start with ``HUB_POLICY_RECORD_DECISIONS=false`` on the ledger
(``policy.decisions_unrecorded``) and had `hub-verify bundle` warn when a pack holds such an
entry. But the entry is written once, at start. Two packs still read as complete:
- a pack whose range begins after a long-running process started with recording off: the
  process decides all through the range, records nothing, and its start is before the range;
- one tenant's pack: the start entry is the hub's (tenant ``default``), so a tenant-limited
  pack leaves it out even when it lies inside the range.
Before: both verified with the plain OK line. Now the exporter adds the newest such start
before the range (and, for a tenant's pack, those inside it) as context entries
(``context.jsonl``), each proven like the entries, and hub-verify names them."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from audit import bundle
from core.ports.policy import Principal
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ledger.evidence import export_pack
from ledger.service import entry_fields
from tests.service.test_evidence import hub_verify

UNTIL = datetime(2100, 1, 1, tzinfo=UTC)


def _verify(data: Path, pack: bytes, out: Path) -> str:
    out.write_bytes(pack)
    r = hub_verify("bundle", str(out), "--public-key", str(data / "keys" / "ledger.pub"))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_pack_beginning_after_a_start_without_records_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, policy_record_decisions=False))
    try:
        h.ledger.sync(force_checkpoint=True)  # the start's entry, before the range
        time.sleep(0.05)
        since = datetime.now(UTC)
        time.sleep(0.05)
        mallory = Principal(id="mallory", roles=frozenset({"admin"}))
        for _ in range(3):  # the same process, inside the range: decided, never recorded
            assert h.policy.decide(mallory, "topic.read", "topics/trades").allow
        h.ledger.record_action("ann", "topic.created", "topics/trades")  # something in range
        pack = export_pack(h.ledger, since, UNTIL, ["CC6", "CC8"], actor="auditor")
    finally:
        h.close()
    out = _verify(data, pack.data, tmp_path / "pack.zip")
    # before: "OK evidence pack ..." and nothing of the process deciding unrecorded
    assert "recorded NO access decisions" in out, out
    assert "before the range" in out, out


def test_a_tenant_pack_shows_the_hub_start_without_records(tmp_path: Path) -> None:
    data = tmp_path / "data"
    since = datetime.now(UTC)
    h = bootstrap(load_settings(environ={}, data_dir=data, policy_record_decisions=False))
    try:
        h.ledger.record_action("ann", "topic.created", "topics/acme.trades", tenant="acme")
        pack = export_pack(h.ledger, since, UNTIL, ["CC6", "CC8"], actor="a", tenant_scope="acme")
    finally:
        h.close()
    out = _verify(data, pack.data, tmp_path / "pack.zip")
    assert "tenant 'acme' only" in out, out
    # before: the hub's start entry (tenant default) was not in acme's pack, and nothing said so
    assert "1 start(s) of the hub recorded NO access decisions" in out, out


def test_a_forged_context_entry_is_refused(tmp_path: Path) -> None:
    """A context entry must be a proven start without records: another entry placed there (to
    smuggle in what the range or the tenant scope leaves out) is refused."""
    data = tmp_path / "data"
    h = bootstrap(load_settings(environ={}, data_dir=data, policy_record_decisions=False))
    try:
        h.ledger.record_action("eve", "topic.created", "topics/other", tenant="other")
        h.ledger.sync(force_checkpoint=True)
        since = datetime.now(UTC)
        time.sleep(0.05)
        h.ledger.record_action("ann", "topic.created", "topics/acme.trades", tenant="acme")
        pack = export_pack(h.ledger, since, UNTIL, ["CC6", "CC8"], actor="a")
        rows = h.ledger.store.query(action="topic.created", topic="hub.audit")
        other = next(r for r in rows if r[8] == "other")
        e = entry_fields(other, h.ledger.record_at(other[1], other[2], other[3]))
        size = pack.checkpoints[-1]  # proven against a checkpoint the pack holds
        e["checkpoint"] = size
        e["proof"] = [p.hex() for p in h.ledger.store.inclusion_proof(other[0], size)]
        signer = h.ledger.signer
    finally:
        h.close()
    src = zipfile.ZipFile(io.BytesIO(pack.data))
    files = {n: src.read(n) for n in src.namelist() if n not in bundle.UNSIGNED}
    manifest = json.loads(src.read(bundle.MANIFEST))
    files["context.jsonl"] = files.get("context.jsonl", b"") + (json.dumps(e) + "\n").encode()
    manifest["files"] = {n: hashlib.sha256(b).hexdigest() for n, b in sorted(files.items())}
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    out = tmp_path / "forged.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(bundle.MANIFEST, body)
        zf.writestr(bundle.SIGNATURE, signer.sign_note(bundle.manifest_note_text(body)))
        for n in sorted(files):
            zf.writestr(n, files[n])
    r = hub_verify("bundle", str(out), "--public-key", str(data / "keys" / "ledger.pub"))
    assert r.returncode != 0, r.stdout
    assert "context" in r.stderr, r.stderr
