"""Red team s26 (rtaudit): the figures ``report.pdf`` states, against the pack's files.

Session 25 made hub-verify read ``report.html`` back; ``report.pdf`` (what auditors file) was
still covered only by its digest in the manifest, so a pack re-signed with the hub's key (the
threat of tests/adversarial/test_s19_rtb_pack_claims.py) verified OK with a PDF whose
population count was padded, whose range was moved a year, whose "Incomplete range" warning
was blanked or whose checkpoint count was changed. The hub writes the PDF's page streams
uncompressed, so hub-verify now reads its text back with the standard library and requires the
same figures as the HTML's (``audit.reportpdf``). Each edit keeps the file's length, so the
PDF's cross-reference table stays valid and it opens as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adversarial.test_s19_rtb_pack_claims import invalid, resigned
from tests.service.test_evidence import hub_verify, pack  # noqa: F401  (fixture)


def _bump(pattern: bytes) -> Callable[[bytes], bytes]:
    """Change the first number the group of ``pattern`` matches to another of its length."""

    def edit(b: bytes) -> bytes:
        m = re.search(pattern, b, re.S)
        assert m is not None, pattern
        old = m.group(1)
        new = str((int(old) + 5) % 10 ** len(old)).zfill(len(old)).encode()
        assert new != old and len(new) == len(old)
        return b[: m.start(1)] + new + b[m.end(1) :]

    return edit


def _blank(pattern: bytes) -> Callable[[bytes], bytes]:
    def edit(b: bytes) -> bytes:
        m = re.search(pattern, b, re.S)
        assert m is not None, pattern
        return b[: m.start()] + b" " * (m.end() - m.start()) + b[m.end() :]

    return edit


def _replace(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    assert len(old) == len(new)

    def edit(b: bytes) -> bytes:
        assert old in b, old
        return b.replace(old, new, 1)

    return edit


CASES = {
    # the Summary table's count of the first control
    "summary count": (_bump(rb"\(Summary\).*?\((\d+) entries\)"), "summary"),
    # a control section's "Population: N"
    "section count": (_bump(rb"\(Population: (\d+) ledger"), "population"),
    # the range stated in the heading
    "range": (_replace(b"entries from 2000-01-01", b"entries from 2001-01-01"), "heading"),
    # the warning that the range ends after the export, blanked
    "incomplete hidden": (_blank(rb"Incomplete range:"), "incomplete"),
    # the checkpoint count in the checkpoints table
    "checkpoints": (
        _bump(rb"\(Checkpoints\) Tj.*?\(Checkpoints\) Tj.*?\((\d+)\) Tj"),
        "Checkpoints",
    ),
    # the index of the first row listed under a control
    "row": (_bump(rb"\(Approver\) Tj.*?\((\d+)\) Tj"), "row"),
}


def test_the_honest_pdf_verifies(pack: tuple[Path, Path, Path]) -> None:  # noqa: F811
    _data, out, pub = pack
    r = hub_verify("bundle", str(out), "--public-key", str(pub))
    assert r.returncode == 0, r.stderr
    assert "report.pdf's figures checked" in r.stdout, r.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_figure_changed_in_the_pdf_is_refused(
    case: str,
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack
    edit, word = CASES[case]
    dst = resigned(data, out, tmp_path / "p.zip", files={"report.pdf": edit})
    invalid(dst, pub, "report.pdf", word)
