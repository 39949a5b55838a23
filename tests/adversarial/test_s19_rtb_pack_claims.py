"""`hub-verify bundle` and what an evidence pack's manifest claims about its entries.

The manifest is the hub's signed word, but until session 19 the verifier checked only that each
control lists entries present in the pack: a pack signed with the hub's key (a tool holding it,
a bug in the writer, an operator building a pack to suit) verified OK "integrity and origin"
with a change-management entry padded into the access-review population (CC6), an access
entry cut from its population while kept in the pack, a range that excludes its own entries,
or a tenant scope (``acme`` only) over another tenant's entries; and the OK line named neither
range nor scope. Each claim is now checked against the entries' hashed fields: controls by
``audit.controls`` (the hub's mapping, moved there), time against ``range``, ``ce_tenant``
against ``tenant_scope``."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit import bundle
from audit.note import parse_signer_key, sign_note
from tests.service.test_evidence import hub_verify, pack  # noqa: F401  (fixture)


def entries_of(path: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(path) as zf:
        return [json.loads(x) for x in zf.read(bundle.ENTRIES).splitlines()]


def resigned(
    data: Path,
    src: Path,
    dst: Path,
    change: Callable[[dict[str, Any]], None] = lambda m: None,
    files: dict[str, Callable[[bytes], bytes]] | None = None,
) -> Path:
    """The pack with its manifest (and ``files``) changed, the manifest's digests updated and
    signed again with the hub's own key."""
    key = parse_signer_key((data / "keys" / "ledger.key").read_text().strip())
    edits = files or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        manifest = json.loads(zin.read(bundle.MANIFEST))
        change(manifest)
        members = {i.filename: zin.read(i.filename) for i in zin.infolist()}
        for name, edit in edits.items():
            members[name] = edit(members[name])
            manifest["files"][name] = hashlib.sha256(members[name]).hexdigest()
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        for info in zin.infolist():
            if info.filename == bundle.MANIFEST:
                zout.writestr(info, body)
            elif info.filename == bundle.SIGNATURE:
                zout.writestr(info, sign_note(bundle.manifest_note_text(body), key))
            else:
                zout.writestr(info, members[info.filename])
    return dst


def invalid(dst: Path, pub: Path, *words: str) -> str:
    r = hub_verify("bundle", str(dst), "--public-key", str(pub))
    text = r.stdout + r.stderr
    assert r.returncode == 1, text  # before: 0, "OK evidence pack ... integrity and origin"
    assert "INVALID" in text and "Traceback" not in text, text
    for w in words:
        assert w in text, (w, text)
    return text


def test_the_honest_pack_names_its_range_and_scope(pack: tuple[Path, Path, Path]) -> None:  # noqa: F811
    _data, out, pub = pack
    r = hub_verify("bundle", str(out), "--public-key", str(pub))
    assert r.returncode == 0, r.stderr
    # a range to 2100 ends after the export: said (test_s23_auditor_evidence_range)
    assert "range 2000-01-01T00:00:00+00:00 .. 2100-01-01T00:00:00+00:00 (INCOMPLETE" in r.stdout
    assert "of the range was later than the export), every tenant" in r.stdout


def test_a_change_entry_padded_into_the_access_population(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack
    config = next(e["index"] for e in entries_of(out) if e["topic"] == "hub.config")

    def pad(m: dict[str, Any]) -> None:
        m["controls"]["CC6"] = sorted([*m["controls"]["CC6"], config])

    invalid(resigned(data, out, tmp_path / "p.zip", pad), pub, f"entry {config}", "CC6")


def test_an_access_entry_cut_from_its_population(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack
    cut: list[int] = []

    def drop(m: dict[str, Any]) -> None:
        cut.append(m["controls"]["CC6"].pop(0))

    text = invalid(resigned(data, out, tmp_path / "p.zip", drop), pub, "CC6")
    assert f"entry {cut[0]} is listed under controls" in text, text


def test_a_range_that_excludes_the_entries(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack

    def narrow(m: dict[str, Any]) -> None:
        m["range"] = {"from": "2000-01-01T00:00:00+00:00", "to": "2001-01-01T00:00:00+00:00"}

    invalid(resigned(data, out, tmp_path / "p.zip", narrow), pub, "outside the pack's range")


def test_a_tenant_scope_over_another_tenants_entries(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack
    tenants = {
        base64.b64decode(v).decode()
        for e in entries_of(out)
        for n, v in e["headers"]
        if n == "ce_tenant"
    }
    assert tenants and "acme" not in tenants, tenants

    def scope(m: dict[str, Any]) -> None:
        m["tenant_scope"] = "acme"

    invalid(resigned(data, out, tmp_path / "p.zip", scope), pub, "claims tenant scope 'acme'")


def test_a_pack_without_the_mapping_says_its_claims_are_unchecked(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A pack made before manifests named their mapping still verifies (archived evidence must
    not turn INVALID), and the OK line says what was not checked: dropping the field is no
    silent way around the checks."""
    data, out, pub = pack

    def old(m: dict[str, Any]) -> None:
        del m["claims"]
        m["controls"]["CC6"] = m["controls"]["CC6"][1:]  # unchecked: said, not refused

    r = hub_verify(
        "bundle", str(resigned(data, out, tmp_path / "p.zip", old)), "--public-key", str(pub)
    )
    assert r.returncode == 0, r.stderr
    assert "range, tenant scope and control populations NOT checked" in r.stdout, r.stdout


def test_a_pack_naming_another_mapping_is_refused(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack

    def other(m: dict[str, Any]) -> None:
        m["claims"] = "hub-controls/9"

    invalid(resigned(data, out, tmp_path / "p.zip", other), pub, "hub-controls/9", "upgrade")


def test_an_entry_left_out_of_the_population_csv(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """What the auditor reads is ``populations/<control>.csv``: one row dropped from it (the
    entry kept in entries.jsonl and the control's list) verified OK before."""
    data, out, pub = pack

    def drop_last_row(b: bytes) -> bytes:
        return b"".join(b.splitlines(keepends=True)[:-1])

    dst = resigned(data, out, tmp_path / "p.zip", files={"populations/CC6.csv": drop_last_row})
    invalid(dst, pub, "populations/CC6.csv has", "rows, but control CC6 lists")


def test_a_cell_of_the_population_csv_altered(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack

    def other_actor(b: bytes) -> bytes:
        lines = b.decode().splitlines(keepends=True)
        cells = lines[1].split(",")
        cells[2] = "someone-else"
        lines[1] = ",".join(cells)
        return "".join(lines).encode()

    dst = resigned(data, out, tmp_path / "p.zip", files={"populations/CC6.csv": other_actor})
    invalid(dst, pub, "populations/CC6.csv line 2", "actor column", "'someone-else'")
