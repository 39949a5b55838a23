"""Evidence packs, format ``hub-evidence/v1``: layout and the offline verifier (stdlib + crypto).

Layout of the zip::

    manifest.json          format, origin, range, controls {id: [entry index, ...]}, leaf
                           format, public key, checkpoint sizes, entry count, and the SHA-256
                           of every other file ("files")
    manifest.sig           C2SP signed note by the hub's key over the text
                           "hub-evidence/v1\\nmanifest.json sha256 <hex>\\n"
    public-key.txt         the hub's verifier key (<name>+<key id>+<base64>)
    checkpoints/<size:020d>.note   signed checkpoints: a consecutive run of the hub's chain
    consistency.jsonl      {"from": s1, "to": s2, "proof": [hex]} for each consecutive pair
    context.jsonl          (optional) entries as in entries.jsonl outside the populations:
                           starts of the hub that recorded no access decision (step 3b)
    entries.jsonl          one entry a line: index, topic, partition, offset, timestamp_ms,
                           key_sha256, value_sha256, headers [[name, base64]], leaf_hash,
                           checkpoint (the size it is proven against), proof [hex], the
                           ledger's columns {actor, action, resource} (leaf_columns), and
                           display fields (time, actor, action, resource, tenant, control)
    report.html            the human-readable report (covered by the manifest digest)
    report.pdf             the same report as PDF (its figures checked like report.html's)
    checkpoints.csv        every checkpoint of the pack: size, time, root, hash (the reports
                           summarise them); hub-verify checks it row for row against the notes
    populations/<id>.csv   each control's population: one row per entry (actor, action,
                           resource, outcome, policy version, decision, approver, diff ...)

:func:`verify_pack` checks, in order (the first failure raises ``AuditError`` naming it):
    0. the zip's layout (``audit.packfile.check_archive``): its members, each name once, are
       all its bytes up to the central directory (nothing another unzip tool could show that
       the checks below never read);
    1. the verifier key: the pack's, or ``trusted`` (``hub-verify bundle --public-key``), which
       MUST then be the key that signed. A key found inside the pack proves integrity only:
       anyone can build a self-consistent pack with their own key; origin needs a key the
       auditor obtained independently from the hub's operator.
    2. every checkpoint's signature, origin and name; the ``prev`` hash chain, non-decreasing
       times and a verified consistency proof between each consecutive pair;
    3. every entry: its leaf hash recomputed from its fields (``audit.leaf``), its inclusion
       proof against its checkpoint; indexes strictly increasing; the controls list only
       entries present; what the manifest claims about each entry, from its hashed fields:
       its time inside ``range`` [from, to), its tenant (``ce_tenant``) the ``tenant_scope``
       or none when a scope is named, and the controls listing it exactly those of the pack's
       controls its topic and action evidence (``audit.controls``: no entry listed under a
       control it does not evidence, none left out of one it does), for a manifest whose
       ``claims`` names the mapping (``audit.controls.MAPPING``; a pack made before it is
       said to be unchecked in the OK line, one naming another mapping is refused), and each
       control's ``populations/<id>.csv`` row for row those entries' fields; its
       display fields equal to what the hub derives from the hashed fields (``_displayed``):
       time from ``timestamp_ms``; tenant, and the ledger's actor, action and resource
       (``leaf_columns``; the displayed ones too on data topics) from the headers, a key shown
       as text or ``sha256:<prefix>`` against ``key_sha256``;
    3b. ``context.jsonl`` (session 25; packs before it have none): starts of the hub that
       recorded no access decision which the range or the tenant scope leaves out of the
       populations, each proven like an entry and refused unless it is such a start
       (``_context``);
    4. every file's SHA-256 against the manifest, and no unlisted file; ``checkpoints.csv`` row
       for row the signed notes; for a pack whose claims are checked, the manifest's
       ``checkpoint_summary`` (count, ends, median interval, number of gaps) recomputed from
       the notes and its ``populations`` counts from the controls' lists (session 24);
       and for a pack whose manifest names ``audit.reportcheck.REPORT_FIGURES`` (session 25),
       the figures ``report.html`` states (``audit.reportcheck.check_report``);
    5. the manifest's signature over its SHA-256.
The OK line states the range the pack's entries cover: its ``range``, marked INCOMPLETE when the
range ends after the time of the pack's newest checkpoint (the export's): nothing logged after
the export can be in it (``_covered``). It also names the pack's starts of the hub that
recorded no access decision (``DECISIONS_UNRECORDED`` entries, session 24, and the context
entries of session 25): the CC6 population lacks every decision those processes made.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import itertools
import json
import statistics
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from audit import leaf as leaf_format
from audit.controls import AUDIT_TOPIC, DECISIONS_UNRECORDED, MAPPING, controls_of
from audit.csvcell import formula_safe
from audit.errors import AuditError, NoteError
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.note import (
    Checkpoint,
    VerifierKey,
    checkpoint_hash,
    open_checkpoint,
    open_note,
)
from audit.packfile import PUBLIC_KEY as PUBLIC_KEY  # the member name, for the pack writers
from audit.packfile import pack_key, read_member
from audit.reportcheck import REPORT_FIGURES, REPORT_FIGURES_HTML, ReportError, check_report
from audit.reportpdf import check_report_pdf

FORMAT = "hub-evidence/v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ENTRIES = "entries.jsonl"
CONSISTENCY = "consistency.jsonl"
REPORT = "report.html"
REPORT_PDF = "report.pdf"
CONTEXT = "context.jsonl"
UNSIGNED = frozenset({MANIFEST, SIGNATURE})


def checkpoint_name(size: int) -> str:
    return f"checkpoints/{size:020d}.note"


def manifest_note_text(manifest_bytes: bytes) -> str:
    """The text the hub signs for a manifest."""
    return f"{FORMAT}\n{MANIFEST} sha256 {hashlib.sha256(manifest_bytes).hexdigest()}\n"


class PackError(AuditError):
    """An evidence pack fails verification."""


def _hash(text: object, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != 64:
        raise PackError(f"{what} must be 64 hex digits, got {text!r}.")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise PackError(f"{what} must be 64 hex digits, got {text!r}.") from None


def _opt_hash(text: object, what: str) -> bytes | None:
    return None if text is None else _hash(text, what)


def _int(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise PackError(f"{what} must be a non-negative integer, got {value!r}.")
    return value


def _jsonl(zf: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(
        read_member(zf, name, PackError).decode("utf-8", "replace").splitlines(), 1
    ):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise PackError(f"{name} line {n} is not JSON: {exc}.") from None
        if not isinstance(obj, dict):
            raise PackError(f"{name} line {n} is not an object.")
        out.append(obj)
    return out


def _checkpoints(
    zf: zipfile.ZipFile, manifest: Mapping[str, Any], key: VerifierKey
) -> dict[int, Checkpoint]:
    sizes = manifest.get("checkpoints")
    if not isinstance(sizes, list) or not sizes:
        raise PackError("manifest lists no checkpoints.")
    origin = manifest.get("origin")
    out: dict[int, Checkpoint] = {}
    notes: list[bytes] = []
    for i, s in enumerate(sizes):
        size = _int(s, f"checkpoint size {i}")
        if out and size <= max(out):
            raise PackError(f"checkpoint sizes must increase: {size} after {max(out)}.")
        note = read_member(zf, checkpoint_name(size), PackError)
        try:
            cp, _ = open_checkpoint(note, [key])
        except NoteError as exc:
            raise PackError(f"checkpoint {size}: {exc}") from None
        if cp.size != size or cp.origin != origin:
            raise PackError(
                f"checkpoint file {checkpoint_name(size)} holds origin {cp.origin!r} size "
                f"{cp.size}, not origin {origin!r} size {size}."
            )
        out[size] = cp
        notes.append(note)
    proofs = _jsonl(zf, CONSISTENCY)
    ordered = list(out.values())
    if len(proofs) != len(ordered) - 1:
        raise PackError(
            f"{CONSISTENCY} has {len(proofs)} proofs; {len(ordered)} checkpoints need "
            f"{len(ordered) - 1}."
        )
    for n, (old, new, line) in enumerate(zip(ordered, ordered[1:], proofs, strict=False)):
        if new.prev_hash != checkpoint_hash(notes[n]):
            raise PackError(
                f"checkpoint {new.size} does not name checkpoint {old.size} as its previous one "
                "(prev hash chain broken: a checkpoint was dropped, inserted or replaced)."
            )
        if (new.time_micros or 0) < (old.time_micros or 0):
            raise PackError(f"checkpoint {new.size} is dated before checkpoint {old.size}.")
        if (line.get("from"), line.get("to")) != (old.size, new.size):
            raise PackError(
                f"{CONSISTENCY} line {n + 1} links {line.get('from')}→{line.get('to')}, "
                f"expected {old.size}→{new.size}."
            )
        raw = line.get("proof")
        if not isinstance(raw, list):
            raise PackError(f"{CONSISTENCY} line {n + 1} has no proof list.")
        proof = [
            _hash(p, f"consistency proof {old.size}→{new.size} element {j}")
            for j, p in enumerate(raw)
        ]
        try:
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except AuditError as exc:
            raise PackError(f"checkpoints {old.size}→{new.size}: {exc}") from None
    return out


def _entry_leaf(e: Mapping[str, Any], where: str) -> bytes:
    headers = e.get("headers")
    if not isinstance(headers, list):
        raise PackError(f"{where}: headers must be a list of [name, base64] pairs.")
    pairs = []
    for h in headers:
        if not (isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h)):
            raise PackError(f"{where}: header {h!r} is not a [name, base64] pair.")
        try:
            pairs.append((h[0], base64.b64decode(h[1], validate=True)))
        except (binascii.Error, ValueError):
            raise PackError(f"{where}: header {h[0]!r} value is not base64.") from None
    topic = e.get("topic")
    if not isinstance(topic, str):
        raise PackError(f"{where}: topic must be text.")
    ts = e.get("timestamp_ms")
    if type(ts) is not int:
        raise PackError(f"{where}: timestamp_ms must be an integer.")
    try:
        data = leaf_format.encode_digests(
            topic,
            _int(e.get("partition"), f"{where} partition"),
            _int(e.get("offset"), f"{where} offset"),
            ts,
            _opt_hash(e.get("key_sha256"), f"{where} key_sha256"),
            pairs,
            _opt_hash(e.get("value_sha256"), f"{where} value_sha256"),
        )
    except leaf_format.LeafError as exc:
        raise PackError(f"{where}: {exc}") from None
    _displayed(e, pairs, where)
    return leaf_hash(data)


# The query columns as the hub derives them from a record (``ledger.leaves.query_columns``,
# ``ledger.evidence._resource``), restated here: this folder imports nothing of the hub.
_ENVELOPE = ("ce_", "hub_")
AMBIGUOUS_TENANT = "(ambiguous)"


def _once(pairs: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """The headers as a dict, an envelope header carried more than once read as absent."""
    out = dict(pairs)
    names = [n for n, _ in pairs]
    for name in set(names):
        if names.count(name) > 1 and (name.startswith(_ENVELOPE) or name == "content-type"):
            out.pop(name, None)
    return out


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _key_shown(shown: object, key_sha: bytes | None) -> bool:
    """Whether ``shown`` (a display resource) is the key whose SHA-256 is ``key_sha``: as
    text, as ``0x<hex>`` (a key that is not UTF-8), or as ``sha256:<prefix>``."""
    if key_sha is None:
        return shown is None
    if not isinstance(shown, str):
        return False
    if shown.startswith("sha256:"):
        return len(shown) > 7 and key_sha.hex().startswith(shown[7:]) and len(shown) == 23
    if hashlib.sha256(shown.encode()).digest() == key_sha:
        return True
    try:
        return (
            shown.startswith("0x") and hashlib.sha256(bytes.fromhex(shown[2:])).digest() == key_sha
        )
    except ValueError:
        return False


def _displayed(e: Mapping[str, Any], pairs: list[tuple[str, bytes]], where: str) -> None:
    """The entry's display fields against the hashed ones (module docstring, step 3): time and
    tenant always; actor, action and resource in ``leaf_columns`` (the ledger's columns, as
    the side index holds them), and the displayed ones too on a data topic. On a control-plane
    topic (``hub.*``, ``_schemas``) the displayed actor, action and resource describe the
    event's value, which the pack holds as a digest only: not checked here. A field the pack
    leaves out is not checked; one it states must match."""
    h = _once(pairs)
    tenant = _text(h.get("ce_tenant"))
    if tenant is None and [n for n, _ in pairs].count("ce_tenant") > 1:
        tenant = AMBIGUOUS_TENANT
    ts = e["timestamp_ms"]
    try:
        time = datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise PackError(f"{where}: timestamp_ms {ts} is not a time.") from None
    _same(e, {"time": time, "tenant": tenant}, where, "")
    want = {
        "actor": _text(h.get("ce_source")),
        "action": _text(h.get("hub_action") or h.get("ce_type")),
    }
    subject = _text(h.get("ce_subject"))
    key_sha = _opt_hash(e.get("key_sha256"), f"{where} key_sha256")
    cols = e.get("leaf_columns")
    if cols is not None:
        if not isinstance(cols, dict):
            raise PackError(f"{where}: leaf_columns must be an object.")
        _same(cols, want, where, "leaf_columns ")
        _resource_is(cols, subject, key_sha, where, "leaf_columns ")
    topic = str(e["topic"])
    if not (topic.startswith("hub.") or topic == "_schemas"):
        _same(e, want, where, "")
        _resource_is(e, subject, key_sha, where, "")


def check_displayed(e: Mapping[str, Any], pairs: list[tuple[str, bytes]], where: str) -> None:
    """``_displayed`` for another verifier of this folder (``hub-verify leaf``)."""
    _displayed(e, pairs, where)


def _same(e: Mapping[str, Any], want: Mapping[str, object], where: str, within: str) -> None:
    for name, value in want.items():
        if name in e and e[name] != value:
            raise PackError(
                f"{where}: its {within}{name} is {e[name]!r}, but the hashed record says "
                f"{value!r} (the entry's display fields were altered)."
            )


def _resource_is(
    e: Mapping[str, Any], subject: str | None, key_sha: bytes | None, where: str, within: str
) -> None:
    if "resource" not in e:
        return
    ok = e["resource"] == subject if subject is not None else _key_shown(e["resource"], key_sha)
    if not ok:
        raise PackError(
            f"{where}: its {within}resource {e['resource']!r} is neither the record's "
            "ce_subject nor its key (by key_sha256): the entry's display fields were altered."
        )


def _range_ms(manifest: Mapping[str, Any]) -> tuple[int, int]:
    """The manifest's ``range`` {from, to} (ISO times) as epoch milliseconds."""
    r = manifest.get("range")
    out = []
    for end in ("from", "to"):
        text = r.get(end) if isinstance(r, dict) else None
        try:
            when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            raise PackError(f"manifest range {end} {text!r} is not an ISO time.") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        out.append(int(when.timestamp() * 1000))
    return out[0], out[1]


def _claims(
    manifest: Mapping[str, Any], index: int, e: Mapping[str, Any], where: str
) -> tuple[str, ...]:
    """What the manifest says of entry ``e`` that its hashed fields decide (module docstring,
    step 3): inside the range, in the tenant scope; returns the controls it evidences."""
    since, until = _range_ms(manifest)
    if not since <= e["timestamp_ms"] < until:
        raise PackError(
            f"{where}: its time {e['timestamp_ms']} (epoch ms) is outside the pack's range "
            f"{manifest['range']['from']} .. {manifest['range']['to']}."
        )
    pairs = [(h[0], base64.b64decode(h[1])) for h in e["headers"]]
    h = _once(pairs)
    scope = manifest.get("tenant_scope")
    if scope is not None:
        tenant = _text(h.get("ce_tenant"))
        ambiguous = tenant is None and [n for n, _ in pairs].count("ce_tenant") > 1
        if ambiguous or tenant not in (None, scope):
            raise PackError(
                f"{where}: it is tenant {tenant or AMBIGUOUS_TENANT!r}'s entry, but the pack "
                f"claims tenant scope {scope!r} (its entries and those with no tenant only)."
            )
    return controls_of(str(e["topic"]), _text(h.get("hub_action") or h.get("ce_type")))


def _checks_claims(manifest: Mapping[str, Any]) -> bool:
    """Whether the manifest's claims are checked (module docstring, step 3)."""
    claims = manifest.get("claims")
    if claims is None:
        return False  # a pack made before the claims were recorded
    if claims != MAPPING:
        raise PackError(
            f"the pack's populations follow controls mapping {claims!r}; this hub-verify knows "
            f"{MAPPING!r}: upgrade hub-verify."
        )
    return True


def _proven(e: Mapping[str, Any], index: int, where: str, cps: Mapping[int, Checkpoint]) -> None:
    """Entry ``e``'s leaf hash recomputed from its fields, and its inclusion proof against the
    pack's checkpoint it names (step 3)."""
    recomputed = _entry_leaf(e, where)
    stated = _hash(e.get("leaf_hash"), f"{where} leaf_hash")
    if recomputed != stated:
        raise PackError(
            f"{where}: the leaf hash recomputed from its fields is {recomputed.hex()}, not "
            f"the stated {stated.hex()} (the entry was altered)."
        )
    size = e.get("checkpoint")
    cp = cps.get(size) if isinstance(size, int) else None
    if cp is None:
        raise PackError(f"{where} is proven against checkpoint {size!r}, absent from the pack.")
    raw = e.get("proof")
    if not isinstance(raw, list):
        raise PackError(f"{where}: proof must be a list of hashes.")
    proof = [_hash(p, f"{where} proof element {j}") for j, p in enumerate(raw)]
    try:
        verify_inclusion(recomputed, index, cp.size, proof, cp.root)
    except AuditError as exc:
        raise PackError(f"{where}: not included in checkpoint {cp.size}: {exc}") from None


def _is_unrecorded_start(e: Mapping[str, Any]) -> bool:
    """Whether entry ``e`` (its fields verified) is a start of the hub that recorded no access
    decision: ``hub_action`` ``DECISIONS_UNRECORDED`` on ``hub.audit``."""
    if e.get("topic") != AUDIT_TOPIC:
        return False
    pairs = [(h[0], base64.b64decode(h[1])) for h in e["headers"]]
    return _text(_once(pairs).get("hub_action")) == DECISIONS_UNRECORDED


def _context(
    zf: zipfile.ZipFile, manifest: Mapping[str, Any], cps: Mapping[int, Checkpoint]
) -> list[Mapping[str, Any]]:
    """``context.jsonl`` (step 3b; absent from packs made before it): entries the range or the
    tenant scope leaves out of the populations but that say what the populations lack. Each is
    proven like an entry, and MUST be a start of the hub that recorded no access decision
    (``DECISIONS_UNRECORDED``) dated before the range's end: the newest such start before the
    range (its process may have decided all through the range), and for a tenant's pack those
    inside the range (they are the hub's, tenant ``default``). Nothing else can be carried
    there: no entry of another tenant, none from outside the range."""
    if CONTEXT not in zf.namelist():
        return []
    until = _range_ms(manifest)[1]
    out: list[Mapping[str, Any]] = []
    for n, e in enumerate(_jsonl(zf, CONTEXT), 1):
        index = _int(e.get("index"), f"{CONTEXT} line {n} index")
        where = f"context entry {index} ({CONTEXT} line {n})"
        if out and index <= out[-1]["index"]:
            raise PackError(f"{where}: context entries must be in increasing index order.")
        _proven(e, index, where, cps)
        if not _is_unrecorded_start(e):
            raise PackError(
                f"{where} is not a start of the hub that recorded no access decision "
                f"({DECISIONS_UNRECORDED} on {AUDIT_TOPIC}): the context of a pack holds those "
                "only (an entry outside the pack's range or tenant scope was carried in)."
            )
        if e["timestamp_ms"] >= until:
            raise PackError(f"{where} is dated after the pack's range.")
        out.append(e)
    return out


def _entries(
    zf: zipfile.ZipFile, manifest: Mapping[str, Any], cps: Mapping[int, Checkpoint]
) -> list[int]:
    indexes: list[int] = []
    evidences: dict[int, tuple[str, ...]] = {}
    shown: dict[int, Mapping[str, Any]] = {}  # the entries, when the claims are checked
    for n, e in enumerate(_jsonl(zf, ENTRIES), 1):
        index = _int(e.get("index"), f"{ENTRIES} line {n} index")
        where = f"entry {index} ({ENTRIES} line {n})"
        if indexes and index <= indexes[-1]:
            raise PackError(
                f"{where} follows entry {indexes[-1]}: entries must be in increasing index "
                "order (reordered or duplicated entries)."
            )
        _proven(e, index, where, cps)
        if _checks_claims(manifest):
            evidences[index] = _claims(manifest, index, e, where)
            shown[index] = e
        indexes.append(index)
    if manifest.get("entries") != len(indexes):
        raise PackError(
            f"manifest says {manifest.get('entries')!r} entries; {ENTRIES} holds {len(indexes)}."
        )
    controls = manifest.get("controls")
    if not isinstance(controls, dict):
        raise PackError("manifest controls must be an object {control: [entry index, ...]}.")
    present = set(indexes)
    for control, listed in controls.items():
        # entry indexes only (an unhashable item crashed the verifier with a traceback)
        if not isinstance(listed, list) or not all(type(i) is int for i in listed):
            raise PackError(f"control {control} must list entry indexes (integers).")
        if not set(listed) <= present:
            raise PackError(f"control {control} lists entries that are not in the pack.")
    for index in evidences:  # each entry under exactly the pack's controls it evidences
        want = sorted(c for c in evidences[index] if c in controls)
        got = sorted(c for c, listed in controls.items() if index in listed)
        if got != want:
            raise PackError(
                f"entry {index} is listed under controls {got}, but its topic and action "
                f"evidence {want} of this pack's controls (a population was padded or cut)."
            )
    if shown:
        for control, listed in controls.items():
            _population_csv(zf, control, [shown[i] for i in listed])
    return indexes


# ``populations/<control>.csv``'s header, which ``ledger.report.population_csv`` writes (this
# folder imports nothing of the hub; the hub imports it from here): the population an auditor
# reads, row for row the entries the control lists, each cell the entry's field.
POPULATION_CSV_HEAD = [
    "entry",
    "time_utc",
    "actor",
    "action",
    "resource",
    "outcome",
    "policy_version",
    "decision_id",
    "case_id",
    "approver",
    "reason",
    "event_type",
    "topic",
    "partition",
    "offset",
    "checkpoint",
    "diff",
]
POPULATION_CSV_FIELDS = POPULATION_CSV_HEAD[2:12]


def _csv_row(e: Mapping[str, Any]) -> list[str]:
    cells = [str(e["index"]), str(e.get("time"))]
    cells += ["" if e.get(k) is None else str(e[k]) for k in POPULATION_CSV_FIELDS]
    cells += [str(e[k]) for k in ("topic", "partition", "offset", "checkpoint")]
    return [*cells, str(e.get("diff") or "")]


def population_cells(e: Mapping[str, Any]) -> list[str]:
    """One entry's row of ``populations/<control>.csv`` as the hub writes it: text cells
    formula-safe (``audit.csvcell``)."""
    return [formula_safe(c) for c in _csv_row(e)]


def _population_csv(zf: zipfile.ZipFile, control: str, listed: list[Mapping[str, Any]]) -> None:
    name = f"populations/{control}.csv"
    try:
        text = read_member(zf, name, PackError).decode("utf-8")
    except UnicodeDecodeError:
        raise PackError(f"{name} is not UTF-8 text.") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != POPULATION_CSV_HEAD:
        raise PackError(f"{name} does not start with the population header {POPULATION_CSV_HEAD}.")
    if len(rows) - 1 != len(listed):
        raise PackError(
            f"{name} has {len(rows) - 1} rows, but control {control} lists {len(listed)} "
            "entries (the population an auditor reads was cut or padded)."
        )
    for n, (row, e) in enumerate(zip(rows[1:], listed, strict=True), 2):
        want = population_cells(e)
        if row != want and row != _csv_row(e):  # packs before s22 wrote cells as stored
            col = next((i for i, (a, b) in enumerate(zip(row, want, strict=False)) if a != b), 0)
            head = POPULATION_CSV_HEAD[col] if col < len(POPULATION_CSV_HEAD) else "?"
            raise PackError(
                f"{name} line {n} differs from entry {e['index']} of {ENTRIES} in its {head} "
                f"column ({row[col] if col < len(row) else None!r}, the entry says "
                f"{want[col]!r}): the population an auditor reads was altered."
            )


CHECKPOINTS_CSV = "checkpoints.csv"
# ``checkpoints.csv``'s header, which ``ledger.report.checkpoints_csv`` writes
CHECKPOINTS_CSV_HEAD = ["size", "time_utc", "time_us", "root_sha256", "checkpoint_hash"]


def checkpoint_time(us: int) -> str:
    """A checkpoint's time as the reports and ``checkpoints.csv`` show it."""
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def checkpoint_cells(size: int, time_us: int, root: str, hash_hex: str) -> list[str]:
    """One checkpoint's row of ``checkpoints.csv``."""
    return [str(size), checkpoint_time(time_us), str(time_us), root, hash_hex]


GAP_FACTOR = 10
"""An interval between consecutive checkpoints is a gap when it is longer than GAP_FACTOR times
the median interval and longer than GAP_MIN_US."""
GAP_MIN_US = 60_000_000


def checkpoint_summary(checkpoints: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Count, first and last (size, time, root), size range and gaps of a checkpoint run."""
    if not checkpoints:
        return {"count": 0, "gaps": []}
    first, last = checkpoints[0], checkpoints[-1]
    steps = [(a, b, b["time_us"] - a["time_us"]) for a, b in itertools.pairwise(checkpoints)]
    median = statistics.median(d for _, _, d in steps) if steps else 0
    limit = max(GAP_MIN_US, GAP_FACTOR * median)
    gaps = [
        {
            "from_size": a["size"],
            "to_size": b["size"],
            "from_time": checkpoint_time(a["time_us"]),
            "to_time": checkpoint_time(b["time_us"]),
            "seconds": round(d / 1e6, 3),
        }
        for a, b, d in steps
        if d > limit
    ]
    return {
        "count": len(checkpoints),
        "first": {
            "size": first["size"],
            "time": checkpoint_time(first["time_us"]),
            "root": first["root"],
        },
        "last": {
            "size": last["size"],
            "time": checkpoint_time(last["time_us"]),
            "root": last["root"],
        },
        "min_size": min(c["size"] for c in checkpoints),
        "max_size": max(c["size"] for c in checkpoints),
        "median_interval_s": round(median / 1e6, 3),
        "gap_threshold_s": round(limit / 1e6, 3),
        "gaps": gaps,
    }


def _summary(manifest: Mapping[str, Any], cps: Mapping[int, Checkpoint]) -> None:
    """What the manifest states in numbers, recomputed: ``checkpoint_summary`` (count, first and
    last, size range, median interval, the number of gaps) from the signed notes, and
    ``populations`` (each control's count) from the controls' lists: for a pack whose claims
    are checked (``_checks_claims``), each when the manifest states it."""
    listed = manifest.get("controls")
    counts = manifest.get("populations")
    if isinstance(counts, dict) and isinstance(listed, dict):
        want_counts = {c: len(v) for c, v in listed.items() if isinstance(v, list)}
        if counts != want_counts:
            raise PackError(
                f"manifest populations {counts} are not the counts of the entries each control "
                f"lists ({want_counts})."
            )
    stated = manifest.get("checkpoint_summary")
    times = [cps[s].time_micros for s in sorted(cps)]
    if not isinstance(stated, dict) or any(t is None for t in times):
        return
    rows = [
        {"size": s, "time_us": cps[s].time_micros, "root": cps[s].root.hex()} for s in sorted(cps)
    ]
    summary = checkpoint_summary(rows)
    want = {k: v for k, v in summary.items() if k != "gaps"} | {"gaps": len(summary["gaps"])}
    for key in sorted(set(want) | set(stated)):
        if stated.get(key) != want.get(key):
            raise PackError(
                f"manifest checkpoint_summary {key} is {stated.get(key)!r}, but the signed "
                f"checkpoints give {want.get(key)!r} (a gap hidden, or the summary altered)."
            )


def _checkpoints_csv(zf: zipfile.ZipFile, cps: Mapping[int, Checkpoint]) -> None:
    """``checkpoints.csv`` (when the pack has one: packs made before it had none), what an
    auditor reads of the checkpoints (when each was signed, a gap between them), row for row
    the signed notes: their size, time, root and hash, in order."""
    if CHECKPOINTS_CSV not in zf.namelist():
        return
    text = read_member(zf, CHECKPOINTS_CSV, PackError).decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != CHECKPOINTS_CSV_HEAD:
        raise PackError(f"{CHECKPOINTS_CSV} does not start with the header {CHECKPOINTS_CSV_HEAD}.")
    sizes = sorted(cps)
    if len(rows) - 1 != len(sizes):
        raise PackError(
            f"{CHECKPOINTS_CSV} has {len(rows) - 1} rows, but the pack holds {len(sizes)} signed "
            "checkpoints (the list an auditor reads was cut or padded)."
        )
    for line, (size, got) in enumerate(zip(sizes, rows[1:], strict=True), 2):
        cp = cps[size]
        note = read_member(zf, checkpoint_name(size), PackError)
        got_us = got[2] if len(got) > 2 else None
        time_us = cp.time_micros if cp.time_micros is not None else _int_or(got_us)
        want = checkpoint_cells(size, time_us, cp.root.hex(), checkpoint_hash(note).hex())
        for col, name in enumerate(CHECKPOINTS_CSV_HEAD):
            have = got[col] if col < len(got) else None
            if have != want[col]:
                raise PackError(
                    f"{CHECKPOINTS_CSV} line {line}: its {name} column is {have!r}, but the "
                    f"signed checkpoint of size {size} says {want[col]!r}: the list an auditor "
                    "reads was altered."
                )


def _int_or(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return 0


def _files(zf: zipfile.ZipFile, manifest: Mapping[str, Any]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise PackError("manifest files must be an object {name: sha256}.")
    names = {i.filename for i in zf.infolist()} - UNSIGNED
    if names != set(files):
        extra = sorted(names - set(files))
        missing = sorted(set(files) - names)
        raise PackError(f"pack files differ from the manifest (extra {extra}, missing {missing}).")
    for name in sorted(files):
        want = _hash(files[name], f"manifest digest of {name}")
        if hashlib.sha256(read_member(zf, name, PackError)).digest() != want:
            raise PackError(f"{name} does not match its SHA-256 in the manifest (altered).")


def _covered(manifest: Mapping[str, Any], newest: Checkpoint) -> str:
    """What the OK line adds to the range: nothing when the pack's newest checkpoint (the
    ledger's at export, its time signed) is at or after the range's end; else that the entries
    are complete only up to that time. A range ending after its export (``--to`` a date still
    to come) holds nothing logged after it, and would otherwise read as the whole period."""
    until_ms = _range_ms(manifest)[1]
    if newest.time_micros is None:
        return " (complete up to its newest checkpoint, whose time is not stated)"
    if newest.time_micros >= until_ms * 1000:
        return ""
    at = datetime.fromtimestamp(newest.time_micros / 1e6, tz=UTC).isoformat()
    return (
        f" (INCOMPLETE: entries only up to {at}, the time of its newest checkpoint; the rest "
        "of the range was later than the export)"
    )


def verify_pack(
    zf: zipfile.ZipFile, manifest: dict[str, object], trusted: VerifierKey | None = None
) -> str:
    """Verify an opened ``hub-evidence/v1`` pack end to end; returns the OK line."""
    if manifest.get("format") != FORMAT or manifest.get("leaf_format") != leaf_format.VERSION:
        raise PackError(
            f"pack format {manifest.get('format')!r} leaf format {manifest.get('leaf_format')!r}"
            f" is not {FORMAT} with leaf format {leaf_format.VERSION}."
        )
    key = pack_key(zf, manifest, trusted, PackError, " given with --public-key")  # 1
    cps = _checkpoints(zf, manifest, key)  # 2
    indexes = _entries(zf, manifest, cps)  # 3
    context = _context(zf, manifest, cps)  # 3b
    starts = _unrecorded_starts(zf, context)
    _files(zf, manifest)  # 4
    _checkpoints_csv(zf, cps)  # 4, the checkpoints as an auditor reads them: the notes'
    if _checks_claims(manifest):  # a pack made before its claims were checked stays as it was
        _summary(manifest, cps)
    reports = _report(zf, manifest, cps, starts)  # 4, the figures an auditor reads first
    manifest_bytes = read_member(zf, MANIFEST, PackError)  # 5
    try:
        note = open_note(read_member(zf, SIGNATURE, PackError), [key])
    except NoteError as exc:
        raise PackError(f"the manifest signature does not verify: {exc}") from None
    if note.text != manifest_note_text(manifest_bytes):
        raise PackError("manifest.sig signs a different manifest.json (the manifest was altered).")
    origin = (
        "the trusted key given with --public-key (integrity and origin)"
        if trusted
        else "the key inside the pack (integrity only: pass --public-key with the hub's "
        "published key to establish origin)"
    )
    sizes = sorted(cps)
    if _checks_claims(manifest):
        r: Any = manifest["range"]
        scope = manifest.get("tenant_scope")
        claims = f"range {r['from']} .. {r['to']}{_covered(manifest, cps[sizes[-1]])}, " + (
            "every tenant" if scope is None else f"tenant {str(scope)!r} only"
        )
    else:
        claims = (
            "range, tenant scope and control populations NOT checked (a pack made before "
            "manifests recorded their controls mapping)"
        )
    return (
        f"OK evidence pack {FORMAT}: {len(indexes)} entries proven in {len(sizes)} checkpoints "
        f"(sizes {sizes[0]}..{sizes[-1]}, hash chain and consistency verified), controls "
        f"{', '.join(sorted(manifest['controls']))}; signed by {key.name}+{key.key_id:08x}, "  # type: ignore[call-overload]
        f"checked with {origin}; {claims}{reports}"
        f"{_decisions_unrecorded(manifest, starts, bool(context))}"
    )


def _unrecorded_starts(
    zf: zipfile.ZipFile, context: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The starts of the hub that recorded no access decision (``_is_unrecorded_start``) among
    the pack's entries (verified above) and its context, oldest first."""
    starts = {e["index"]: e for e in _jsonl(zf, ENTRIES) if _is_unrecorded_start(e)}
    starts |= {e["index"]: e for e in context}
    return sorted(starts.values(), key=lambda e: (e["timestamp_ms"], e["index"]))


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _decisions_unrecorded(
    manifest: Mapping[str, Any], starts: Sequence[Mapping[str, Any]], context: bool
) -> str:
    """The OK line's warning of ``starts``: the CC6 population, "every access decision", lacks
    every decision those processes made; one started before the range (a ``context`` entry)
    may have run all through it."""
    if not starts:
        return ""
    first = starts[0]["timestamp_ms"]
    before = (
        " (one before the range: if that process ran into the range, none of its decisions "
        "there is in the pack)"
        if context and first < _range_ms(manifest)[0]
        else ""
    )
    return (
        f"; WARNING: {len(starts)} start(s) of the hub recorded NO access decisions "
        f"(HUB_POLICY_RECORD_DECISIONS off; the first at {_iso_ms(first)}){before}: the CC6 "
        "population lacks every decision those processes made"
    )


def _report(
    zf: zipfile.ZipFile,
    manifest: Mapping[str, Any],
    cps: Mapping[int, Checkpoint],
    starts: Sequence[Mapping[str, Any]],
) -> str:
    """``report.html``'s figures against the verified files (``audit.reportcheck``), for a
    pack whose manifest names ``REPORT_FIGURES``; what the OK line says of the reports."""
    stated = manifest.get("report")
    if stated is None or not _checks_claims(manifest):
        return "; report.html and report.pdf NOT checked (a pack made before their figures were)"
    if stated not in (REPORT_FIGURES, REPORT_FIGURES_HTML):
        raise PackError(
            f"the pack's report is {stated!r}; this hub-verify checks {REPORT_FIGURES!r}: "
            "upgrade hub-verify."
        )
    sizes = sorted(cps)
    rows = [
        {"size": s, "time_us": cps[s].time_micros or 0, "root": cps[s].root.hex()} for s in sizes
    ]
    newest = cps[sizes[-1]].time_micros
    covered = (
        datetime.fromtimestamp(newest / 1e6, tz=UTC).isoformat()
        if newest is not None and newest < _range_ms(manifest)[1] * 1000
        else None
    )
    try:
        html = read_member(zf, REPORT, PackError).decode("utf-8")
    except UnicodeDecodeError:
        raise PackError(f"{REPORT} is not UTF-8 text.") from None
    entries = {e["index"]: e for e in _jsonl(zf, ENTRIES)}
    figures = (
        manifest,
        entries,
        checkpoint_summary(rows),
        covered,
        [_iso_ms(e["timestamp_ms"]) for e in starts],
    )
    try:
        check_report(html, *figures)
        if stated == REPORT_FIGURES:
            check_report_pdf(read_member(zf, REPORT_PDF, PackError), *figures)
    except ReportError as exc:
        raise PackError(str(exc)) from None
    if stated == REPORT_FIGURES_HTML:
        return "; report.html's figures checked against them (report.pdf by its digest only)"
    return "; report.html's and report.pdf's figures checked against them"
