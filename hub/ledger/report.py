"""The evidence pack's HTML report: self-contained (inline CSS, no script, no external link).

One table per requested SOC 2 control (entry index, time, actor, action, resource, the checkpoint
it is proven against), the checkpoints with their roots and times, and how to verify the pack.
Every value is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from hub.ledger.controls import CONTROLS

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:72em;color:#1b1f24;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.6em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em;
word-break:break-all}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.6em .9em;border-radius:4px}
.muted{color:#57606a}
"""


def _time_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def render(
    *,
    origin: str,
    public_key: str,
    range_from: str,
    range_to: str,
    controls: Sequence[str],
    entries: Sequence[Mapping[str, Any]],
    checkpoints: Sequence[Mapping[str, Any]],
    created_at: str,
    exported_by: str,
) -> str:
    e = escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>SOC 2 evidence — {e(origin)} — {e(range_from)} to {e(range_to)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>SOC 2 evidence pack</h1><p class='muted'>Ledger <code>{e(origin)}</code>, "
        f"entries from {e(range_from)} to {e(range_to)} (log time, end exclusive). Exported "
        f"{e(created_at)} by <code>{e(exported_by)}</code>.</p>",
        "<h2>Summary</h2><table><tr><th>Control</th><th>Criterion</th><th>Entries</th></tr>",
    ]
    by_control: dict[str, list[Mapping[str, Any]]] = {c: [] for c in controls}
    for entry in entries:
        by_control.setdefault(entry["control"], []).append(entry)
    for c in controls:
        parts.append(
            f"<tr><td>{e(c)}</td><td>{e(CONTROLS[c])}</td><td>{len(by_control[c])}</td></tr>"
        )
    parts.append("</table>")
    for c in controls:
        rows = by_control[c]
        parts.append(f"<h2 id='{e(c)}'>{e(CONTROLS[c])}</h2>")
        if not rows:
            parts.append("<p class='muted'>No ledger entry in this range evidences it.</p>")
            continue
        parts.append(
            "<table><tr><th>Entry</th><th>Time (UTC)</th><th>Actor</th><th>Action</th>"
            "<th>Resource</th><th>Topic</th><th>Proven in checkpoint</th></tr>"
        )
        for r in rows:
            parts.append(
                f"<tr><td>{r['index']}</td><td>{e(str(r['time']))}</td>"
                f"<td>{e(str(r.get('actor') or ''))}</td><td>{e(str(r.get('action') or ''))}</td>"
                f"<td class='mono'>{e(str(r.get('resource') or ''))}</td>"
                f"<td>{e(r['topic'])}[{r['partition']}]@{r['offset']}</td>"
                f"<td><a href='#cp-{r['checkpoint']}'>{r['checkpoint']}</a></td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h2>Checkpoints</h2><p>Each signed checkpoint commits to every ledger entry below its "
        "size; each names the previous one by hash, and consecutive ones are linked by a "
        "consistency proof in the pack.</p><table><tr><th>Size</th><th>Signed at (UTC)</th>"
        "<th>Root hash (SHA-256)</th></tr>"
    )
    for cp in checkpoints:
        parts.append(
            f"<tr id='cp-{cp['size']}'><td>{cp['size']}</td><td>{e(_time_us(cp['time_us']))}"
            f"</td><td class='mono'>{e(cp['root'])}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>How to verify this pack</h2><ol>"
        "<li>Obtain the hub's public key <em>from the hub's operator, independently of this "
        "pack</em> (for example <code>GET /v1/ledger/public-key</code> or the file "
        "<code>keys/ledger.pub</code> in the hub's data folder), and compare it with:"
        f"<br><code>{e(public_key)}</code></li>"
        "<li>Run <code>hub-verify bundle PACK.zip --public-key ledger.pub</code>. It recomputes "
        "every entry's leaf hash from its fields, checks its inclusion proof against its "
        "checkpoint, every checkpoint signature, the hash chain and consistency between "
        "checkpoints, every file digest and the manifest signature. Exit status 0 means valid."
        "</li></ol><p class='note'><strong>Integrity is not origin.</strong> The key inside "
        "the pack (<code>public-key.txt</code>) only proves the pack is internally consistent "
        "and unaltered since it was signed by <em>that</em> key: anyone can build a "
        "self-consistent pack with a key of their own. Only a key obtained independently from "
        "the hub (<code>--public-key</code>) proves the pack came from this hub.</p>"
        "<p class='muted'>Entries carry SHA-256 digests of record keys and values, never the "
        "data itself: crypto-shredded payloads keep their proofs valid and nothing personal is "
        "disclosed by the pack. This report is a reading aid; the evidence is the signed files "
        "beside it.</p></body></html>"
    )
    return "".join(parts)
