"""An evidence pack MUST NOT pass ``hub-verify bundle`` while holding bytes it never checked
(session 17 red team: "can a pack pass verify while saying something the ledger does not?").

The verifier reads a zip through its central directory, and for a repeated name it reads the
last copy. Unzip tools differ: streaming readers (local headers from byte 0) and several GUI
tools show the first copy. So anyone who handles a pack on its way to the auditor (no key
needed) could put a forged ``report.html`` (e.g. "0 exceptions") before the signed members, or
add a second ``report.html`` ahead of the real one: the pack still answered ``OK ... integrity
and origin``, and the auditor's tool showed the forgery. The verifier now refuses a pack whose
members are not contiguous from byte 0 to the central directory, or that repeats a name."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

from tests.service.test_evidence import hub_verify, pack  # noqa: F401  (fixture)

FORGED = b"<html><body><h1>Evidence report</h1><p>0 exceptions in the period.</p></body></html>"


def _first_local_member(data: bytes) -> tuple[str, bytes]:
    """What a streaming unzip (local headers from byte 0) shows first: its name and bytes."""
    sig, _v, _f, method, _t, _d, _crc, csize, _usize, nlen, xlen = struct.unpack(
        "<4s5H3I2H", data[:30]
    )
    assert sig == b"PK\x03\x04" and method == zipfile.ZIP_STORED
    name = data[30 : 30 + nlen].decode()
    start = 30 + nlen + xlen
    return name, data[start : start + csize]


def _ok(path: Path, pub: Path) -> tuple[int, str]:
    r = hub_verify("bundle", str(path), "--public-key", str(pub))
    return r.returncode, r.stdout + r.stderr


def test_the_honest_pack_verifies(pack: tuple[Path, Path, Path]) -> None:  # noqa: F811
    _data, out, pub = pack
    code, text = _ok(out, pub)
    assert code == 0 and "integrity and origin" in text, text


def test_a_forged_member_prepended_to_the_pack_is_refused(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    _data, out, pub = pack
    front = io.BytesIO()
    with zipfile.ZipFile(front, "w") as zf:
        zf.writestr("report.html", FORGED)
    # the forged zip's local entry only (no central directory): what a streaming reader meets
    local = front.getvalue()[: front.getvalue().index(b"PK\x01\x02")]
    forged = tmp_path / "prepended.zip"
    forged.write_bytes(local + out.read_bytes())
    assert _first_local_member(forged.read_bytes()) == ("report.html", FORGED)
    with zipfile.ZipFile(forged) as zf:  # the central directory still names the real members
        assert zf.read("report.html") != FORGED
    code, text = _ok(forged, pub)
    assert code == 1, text
    assert "no member accounts for" in text, text


def test_a_second_copy_of_a_member_is_refused(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    _data, out, pub = pack
    forged = tmp_path / "twice.zip"
    with (
        zipfile.ZipFile(out) as src,
        zipfile.ZipFile(forged, "w") as dst,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # "Duplicate name": the point of the attack
        dst.writestr("report.html", FORGED)  # first: what many tools show
        for info in src.infolist():
            dst.writestr(info, src.read(info))  # the signed members, report.html last
    assert _first_local_member(forged.read_bytes()) == ("report.html", FORGED)
    code, text = _ok(forged, pub)
    assert code == 1, text
    assert "'report.html' more than once" in text, text


def test_bytes_hidden_between_members_are_refused(
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    _data, out, pub = pack
    forged = tmp_path / "gap.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(forged, "w") as dst:
        infos = src.infolist()
        for n, info in enumerate(infos):
            dst.writestr(info, src.read(info))
            if n == 0:  # a stray local entry between two members, named by no directory entry
                assert dst.fp is not None
                hidden = io.BytesIO()
                with zipfile.ZipFile(hidden, "w") as h:
                    h.writestr("report.html", FORGED)
                dst.fp.write(hidden.getvalue()[: hidden.getvalue().index(b"PK\x01\x02")])
                dst.start_dir = dst.fp.tell()
    with zipfile.ZipFile(forged) as zf:
        assert zf.read("report.html") != FORGED
    code, text = _ok(forged, pub)
    assert code == 1, text
    assert "no member accounts for" in text, text
