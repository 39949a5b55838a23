"""An evidence pack's display fields against what its leaves hash. Each entry states time,
actor, action, resource and tenant beside the fields its leaf hash is recomputed from
(headers, timestamp, key and value digests); ``hub-verify bundle`` checked only the latter, so
a pack whose displayed actor (or action, resource, time) was edited and re-signed verified.
The pack now also carries each entry's ledger columns (``leaf_columns``: actor, action,
resource as the ledger indexes them), and the offline verifier derives them, the time and the
tenant from the hashed fields as the hub does, refusing a difference of one byte. Not covered:
the displayed actor, action and resource of a control-plane entry, which describe its value
(held as a digest only)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import bundle
from audit.note import generate_key, sign_note
from tests.service.test_evidence import hub_verify, pack, rewrite  # noqa: F401  (fixture)


def _resigned(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes]], None]:
    """Edit the first entry that has the edited field, then re-sign the whole pack (as whoever
    holds the signing key would): only the display check can tell."""
    forger = generate_key("hub.local/ledger")

    def forge(f: dict[str, bytes]) -> None:
        lines = [json.loads(x) for x in f["entries.jsonl"].splitlines() if x.strip()]
        for e in lines:
            if edit(e):  # type: ignore[func-returns-value]
                break
        else:
            raise AssertionError("no entry to edit")
        f["entries.jsonl"] = b"".join(
            json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in lines
        )
        for name in [n for n in f if n.startswith("checkpoints/")]:
            text = f[name][: f[name].rindex(b"\n\n") + 1].decode()
            f[name] = sign_note(text, forger)
        f["public-key.txt"] = (forger.verifier.encode() + "\n").encode()
        m = json.loads(f["manifest.json"])
        m["public_key"] = forger.verifier.encode()
        m["files"] = {
            n: hashlib.sha256(d).hexdigest()
            for n, d in f.items()
            if n not in ("manifest.json", "manifest.sig")
        }
        mb = json.dumps(m, indent=2, sort_keys=True).encode() + b"\n"
        f["manifest.json"] = mb
        f["manifest.sig"] = sign_note(bundle.manifest_note_text(mb), forger)

    return forge


def _at(e: dict[str, Any], field: str) -> tuple[dict[str, Any], str]:
    """The object holding ``field`` ("leaf_columns.actor": the entry's leaf_columns)."""
    *outer, name = field.split(".")
    for part in outer:
        e = e.get(part) or {}
    return e, name


def _one_byte(field: str) -> Callable[[dict[str, Any]], bool]:
    def edit(e: dict[str, Any]) -> bool:
        holder, name = _at(e, field)
        value = holder.get(name)
        if not isinstance(value, str) or not value:
            return False
        last = value[-1]
        holder[name] = value[:-1] + ("x" if last != "x" else "y")
        return True

    return edit


def test_an_honest_resigned_pack_still_verifies(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    _, out, _ = pack
    same = rewrite(out, tmp_path / "same.zip", _resigned(lambda e: True))
    r = hub_verify("bundle", str(same))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "field",
    ["leaf_columns.actor", "leaf_columns.action", "leaf_columns.resource", "time", "tenant"],
)
def test_a_display_field_changed_by_one_byte_fails(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
    field: str,
) -> None:
    _, out, _ = pack
    entries = [json.loads(x) for x in bundle_member(out, "entries.jsonl").splitlines() if x.strip()]
    if not any(_at(e, field)[0].get(_at(e, field)[1]) for e in entries):
        pytest.skip(f"no entry of this pack shows a {field}")
    forged = rewrite(out, tmp_path / "forged.zip", _resigned(_one_byte(field)))
    r = hub_verify("bundle", str(forged))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "display fields were altered" in r.stderr, r.stderr


def bundle_member(path: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return zf.read(name)
