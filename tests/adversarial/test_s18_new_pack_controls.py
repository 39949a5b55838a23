"""Session 18 red team (new surfaces): ``hub-verify bundle`` on a pack whose (unsigned, altered)
manifest lists a control's entries as something other than indexes crashed with a Python
traceback (``TypeError: unhashable type``) at step 3, before the manifest signature (step 5)
would have named the alteration: the auditor saw a crash, not ``INVALID``. It now answers
INVALID naming the control."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.service.test_evidence import hub_verify, pack  # noqa: F401  (fixture)


def _rewrite(src: Path, dst: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """The pack with its manifest.json changed (what anyone handling the pack can do)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "manifest.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            zout.writestr(info, data)


@pytest.mark.parametrize("listed", [[{}], [[1]], ["1"]])
def test_a_control_listing_non_indexes_is_invalid_not_a_crash(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
    listed: list[Any],
) -> None:
    _data, out, pub = pack
    forged = tmp_path / "forged.zip"
    _rewrite(out, forged, lambda m: m.__setitem__("controls", {"CC6": listed}))
    r = hub_verify("bundle", str(forged), "--public-key", str(pub))
    text = r.stdout + r.stderr
    assert r.returncode == 1, text
    assert "Traceback" not in text and "INVALID" in text and "CC6" in text, text
