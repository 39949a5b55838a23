"""Session 25 (redteam-auditor25): the figures ``report.html`` states, against the pack's files.

``report.html`` is what an auditor reads first: the range, each control's population count,
the entries listed under each control, the checkpoints summary, and the warning that the range
ends after the export. hub-verify checked the machine-readable files (session 24) but the report
only through its SHA-256 in the manifest: a pack re-signed with the hub's key (the threat of
tests/adversarial/test_s19_rtb_pack_claims.py) verified OK with a padded population count, an
entry's row dropped from a control's table, a gap hidden, or the "Incomplete range" warning
removed. Now each of those figures must be the one the signed files give."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adversarial.test_s19_rtb_pack_claims import invalid, resigned
from tests.service.test_evidence import hub_verify, pack  # noqa: F401  (fixture)


def test_the_honest_report_verifies(pack: tuple[Path, Path, Path]) -> None:  # noqa: F811
    _data, out, pub = pack
    r = hub_verify("bundle", str(out), "--public-key", str(pub))
    assert r.returncode == 0, r.stderr
    assert "report.html's and report.pdf's figures checked" in r.stdout, (
        r.stdout
    )  # s26: the PDF's too


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> Callable[[bytes], bytes]:
    def edit(b: bytes) -> bytes:
        text, n = re.subn(pattern, repl, b.decode(), count=1)
        assert n == 1, pattern
        return text.encode()

    return edit


def _padded(m: re.Match[str]) -> str:
    return f"{m.group(1)}{int(m.group(2)) + 5}{m.group(3)}"


CASES = {
    # the Summary table's count of CC6
    "summary count": (
        _sub(r"(<tr><td>CC6</td><td>[^<]*</td><td>)(\d+)(</td></tr>)", _padded),
        "population",
    ),
    # a control section's "Population: N"
    "section count": (
        _sub(r"(Population: (?:<strong>)?)(\d+)((?:</strong>)? ledger)", _padded),
        "population",
    ),
    # a row of a population table dropped (the count left as it was)
    "row dropped": (_sub(r"<tr><td>\d+</td><td>[^<]*</td>.*?</tr>", ""), "entries"),
    # the range stated in the heading
    "range": (_sub(r"entries from 2000-01-01", "entries from 2001-01-01"), "range"),
    # the warning that the range ends after the export, removed
    "incomplete hidden": (_sub(r"<p>(?:<strong>)?Incomplete range:.*?</p>", ""), "incomplete"),
    # the checkpoint count in the checkpoints table
    "checkpoints": (
        _sub(r"(<tr><th>Checkpoints</th><td class='mono'>)(\d+)(</td>)", _padded),
        "Checkpoints",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_figure_changed_in_the_report_is_refused(
    case: str,
    pack: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data, out, pub = pack
    edit, word = CASES[case]
    dst = resigned(data, out, tmp_path / "p.zip", files={"report.html": edit})
    invalid(dst, pub, "report.html", word)
