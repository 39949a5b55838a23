"""Backup, restore and the disaster-recovery drill of a hub (the application layer around
``storage.backup``, which knows files and objects but not the hub).

``restore`` (``hub backup restore``) reports success only after, in order:
0. without a named backup: the one chosen (the store's newest complete one within the bounds)
   is not older than the newest the backup witness beside the KEK records within them
   (``storage.backup_witness``: a deleted ``manifest.sig`` would roll back), unless the
   operator passes ``--allow-older``; a missing witness is a warning; 0b. every erasure journal
   entry that the newest backup's signed manifest lists is still in the store;
1. ``storage.backup.fetch_backup``: the manifest's signature, the KEK, every object's SHA-256
   and the restored ledger's root at the manifest's tree size (see there); 1b. a backup of a
   hub whose subject keys live in Vault: Vault holds every key (and version, and erasure
   tombstone) the manifest names (``_check_vault_keys``);
2. the staged hub opens (bootstrap), its ledger adopts what the log snapshot holds beyond the
   ledger snapshot, and the whole ledger verifies (``ledger.verify.verify_ledger``, the check
   ``hub ledger verify`` runs), the root at the manifest's size still being the manifest's;
3. the restoring principal is allowed ``backup.restore`` by the restored hub's policy;
4. every subject in the store's erasure journal, or in the backup witness's erasure lines (the
   anchor outside the store: a journal entry deleted there is re-applied from the witness and
   named), whose key the restored key ring still holds is erased again
   (``governance.erasure.erase``), so an erasure made after the backup holds;
5. the restore is recorded on the restored ledger (``backup.restore``) under a signed checkpoint;
6. the staging folder is renamed to the target (which must not exist, or be empty).
Any failure removes the staging folder and leaves the target untouched; on the distributed
footprint it also deletes the Kafka topics the replay created under the target prefix and
drops the PostgreSQL ledger schema it filled (``_Outside``), and the error says what it undid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, HubError
from core.ports.keystore import parse_scoped, scoped_subject
from core.ports.ledgerstore import LedgerStore
from core.ports.objectstore import ObjectStore
from core.ports.signer import Signer
from ledger.witness_log import CHECKPOINT, Head, WitnessLog, check_ledger, log_path, outside_dir
from storage.backup import (
    Kek,
    LedgerState,
    Manifest,
    RestoreRefused,
    backup_ids,
    check_erasures_kept,
    choose_backup,
    create_backup,
    fetch_backup,
)
from storage.backup_witness import (
    Witnessed,
    WitnessedErasure,
    add_to_witness,
    check_not_rolled_back,
    newer_than_named,
    witness_path,
    witnessed_erasures,
)
from storage.erasures import JournalEntry, erased_subjects, record_erasure

if TYPE_CHECKING:
    from governance.erasure import Erasure
    from hub.bootstrap import Hub
    from hub.settings import Settings
    from ledger.service import Ledger

Progress = Callable[[str], None]
RESTORE_ACTOR = "backup-restore"


# What a restore needs beyond the ports from the adapters the settings name (the composition root
# builds them; this module never imports an adapter): checked by duck type, refused by name.
def _need(thing: Any, method: str, what: str) -> Any:
    if not callable(getattr(thing, method, None)):
        raise ConfigError(f"{type(thing).__name__} is not {what}: it has no {method}().")
    return thing


def _vault(keystore: Any) -> Any:
    return _need(keystore, "key_versions", "the Vault key store (HUB_KEYSTORE=vault)")


def _kafka(log: Any) -> Any:
    return _need(log, "namespace_topics", "the Kafka event log (HUB_EVENT_LOG=kafka)")


def _droppable(store: Any) -> Any:
    return _need(store, "drop", "the PostgreSQL ledger store (HUB_LEDGER_STORE=postgres)")


def journal_erasure(settings: Settings, done: Erasure, signer: Signer) -> str | None:
    """Record an erasure in the object store's erasure journal (``storage.erasures``), signed
    by ``signer`` (the ledger's), and in the backup witness beside the KEK
    (``HUB_BACKUP_KEK_FILE``): whoever can write the store can delete its journal entry, and
    an erasure made after the newest backup is in no backup's manifest, so the witness is its
    anchor (a restore re-applies every witnessed erasure). Returns a warning when the erasure
    could not be witnessed (no KEK configured, or unreadable): it then rests on the store's
    journal alone. The erasure itself is done either way."""
    from hub.bootstrap import build_object_store
    from storage.backup import load_kek

    at_ms = time.time_ns() // 1_000_000
    # a tenant officer's erasure is journalled under the tenant-scoped key id
    # (``scoped_subject``: NUL tenant NUL subject, never a subject id); a plain subject id is an
    # erasure in every tenant, as every erasure journalled before keys were scoped was
    journalled = (
        done.subject
        if done.tenant_scope is None
        else scoped_subject(done.tenant_scope, done.subject)
    )
    # The journal failing (the store down, or made unwritable by whoever can write it) must
    # not skip the witness: the erasure is done, and the witness is then its only anchor.
    journal_lost = ""
    try:
        record_erasure(
            build_object_store(settings),
            JournalEntry(journalled, at_ms, done.audit_offset),
            signer.sign_note,
        )
    except HubError as exc:
        journal_lost = (
            f"WARNING: the erasure of {done.subject!r} is done, but its erasure journal entry "
            f"could not be written to the object store ({exc.message})"
        )
    unanchored = journal_lost or (
        f"WARNING: the erasure of {done.subject!r} is journalled in the object store only: "
        "whoever can write the store can delete that entry and a restore of a backup made "
        "before it would bring the subject's key back"
    )
    if settings.backup_kek_file is None:
        return f"{unanchored}. Set HUB_BACKUP_KEK_FILE so that erasures are witnessed."
    try:
        forbidden = (settings.data_dir, settings.objects_dir)  # as `hub backup` refuses
        kek = load_kek(settings.backup_kek_file, forbidden_under=forbidden)
        add_to_witness(
            kek,
            WitnessedErasure(journalled, at_ms, signer.verifier_key()),
            _witness_file(settings, kek),
        )
    except HubError as exc:
        return f"{unanchored}, because it could not be witnessed: {exc.message}"
    if journal_lost:
        return f"{journal_lost}; the backup witness holds it (a restore re-applies it)."
    return None


def _open_ledger_in(folder: Path) -> LedgerStore:
    """The LedgerStore of the embedded ledger file in ``folder`` (rows or tiles), through the
    port; RestoreRefused when there is none."""
    from hub.bootstrap import ledger_file_in, open_ledger_file

    path = ledger_file_in(folder)
    if path is None:
        raise RestoreRefused(f"{folder} holds no ledger (ledger-tiles.sqlite or ledger.sqlite).")
    return open_ledger_file(path)


def ledger_state_of(folder: Path) -> LedgerState:
    """Tree size, root and latest checkpoint of the ledger in a data folder (a snapshot)."""
    store = _open_ledger_in(folder)
    try:
        size = store.tree_size()
        cp = store.latest_checkpoint()
        note = cp.note.decode() if cp is not None else ""
        root = store.root(size)
    finally:
        store.close()
    origin, public = "", ""
    pub = folder / "keys" / "ledger.pub"
    if pub.exists():
        public = pub.read_text().strip()
        origin = public.split("+", 1)[0]
    return LedgerState(size, root, origin, public, note)


def ledger_root_of(folder: Path, size: int) -> bytes:
    store = _open_ledger_in(folder)
    try:
        if store.tree_size() < size:
            raise RestoreRefused(
                f"The restored ledger holds {store.tree_size()} entries, fewer than the "
                f"manifest's {size}: the restore is refused."
            )
        return store.root(size)
    finally:
        store.close()


def _log_end_offsets(path: Path) -> dict[str, dict[str, int]]:
    from hub.bootstrap import log_file_end_offsets

    return log_file_end_offsets(path)


def backup(
    h: Hub,
    store: ObjectStore,
    kek: Kek,
    *,
    chunk_bytes: int,
    progress: Progress | None = None,
) -> Manifest:
    """``hub backup create`` on an open hub (the embedded footprint's data folder), then the
    backup added to the witness beside the KEK (``storage.backup_witness``)."""
    witness = _witness_file(h.settings, kek)  # refused before anything is uploaded
    if h.settings.event_log != "sqlite" or h.settings.ledger_store not in ("sqlite", "tiles"):
        made = _backup_portable(h, store, kek, chunk_bytes=chunk_bytes, progress=progress)
    else:
        made = _backup_embedded(h, store, kek, chunk_bytes=chunk_bytes, progress=progress)
    add_to_witness(
        kek,
        path=witness,
        w=Witnessed(
            made.id, made.created_at_ms, made.ledger_size, hashlib.sha256(made.encode()).hexdigest()
        ),
    )
    return made


def _backup_embedded(
    h: Hub, store: ObjectStore, kek: Kek, *, chunk_bytes: int, progress: Progress | None
) -> Manifest:
    return create_backup(
        h.settings.data_dir,
        store,
        kek,
        sync_ledger=lambda: h.ledger.sync(force_checkpoint=True),
        sign_note=h.ledger.signer.sign_note,
        ledger_state=ledger_state_of,
        end_offsets=_log_end_offsets,
        chunk_bytes=chunk_bytes,
        progress=progress,
        exclude=(h.settings.objects_dir,),
        secret_files=secret_files_of(h.settings),
    )


def secret_files_of(settings: Settings) -> tuple[Path, ...]:
    """The secret files the settings name (a backup seals those inside the data folder)."""
    named = (settings.metrics_token_file, settings.alert_webhook_secret_file)
    return tuple(Path(p).expanduser() for p in named if p is not None)


@dataclass
class RestoreResult:
    backup_id: str
    target: str
    ledger_size_in_backup: int
    ledger_root: str
    ledger_size_after: int
    records: int
    bytes: int
    erasures_reapplied: list[str] = field(default_factory=list)
    vault_keys: dict[str, int] = field(default_factory=dict)  # checked, erased since the backup
    seconds: dict[str, float] = field(default_factory=dict)
    rolled_back_from: int | None = None  # the newer ledger size the outside witness held

    def as_dict(self) -> dict[str, Any]:
        return {
            **({"rolled_back_from": self.rolled_back_from} if self.rolled_back_from else {}),
            "backup": self.backup_id,
            "target": self.target,
            "ledger": {
                "size_in_backup": self.ledger_size_in_backup,
                "root": self.ledger_root,
                "size_after": self.ledger_size_after,
                "verified": True,
            },
            "records": self.records,
            "bytes": self.bytes,
            "erasures_reapplied": self.erasures_reapplied,
            "vault_keys": self.vault_keys,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _witness_file(settings: Settings, kek: Kek) -> Path:
    """The backup witness (``HUB_BACKUP_WITNESS_FILE``, default beside the KEK), refused inside
    the data folder or the local object folder: whoever writes those could delete it."""
    path = Path(settings.backup_witness_file or witness_path(kek)).expanduser()
    resolved = path.resolve()
    for root in (settings.data_dir, settings.objects_dir):
        if resolved.is_relative_to(Path(root).expanduser().resolve()):
            raise ConfigError(
                f"The backup witness {path} lies inside {root}, where whoever can change the "
                "data or the store could delete it; set HUB_BACKUP_WITNESS_FILE elsewhere."
            )
    return path


def _target_ready(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RestoreRefused(
            f"The restore target {target} exists and is not empty; restore into a new or "
            "empty folder (the restore never overwrites a data folder)."
        )


def restore(
    settings: Settings,
    store: ObjectStore,
    kek: Kek,
    target: Path,
    token: str | None,
    *,
    backup_id: str | None = None,
    at_size: int | None = None,
    at_time_ms: int | None = None,
    allow_older: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore a backup into ``target`` (steps in the module docstring). Without a named
    backup, one older than the newest the witness records for the same bounds is refused
    unless ``allow_older`` (step 0)."""
    from core.errors import Forbidden, Unauthenticated
    from hub.bootstrap import bootstrap
    from hub.cli import principal_of_token
    from ledger.verify import verify_ledger

    say = progress or (lambda _msg: None)
    target = Path(target).expanduser()
    _target_ready(target)
    if not token:
        raise Unauthenticated(
            "Restoring needs the credential of a principal of the backed-up hub allowed "
            "backup.restore: pass --key KEY_ID:SECRET or --key-file FILE."
        )
    witness = _witness_file(settings, kek)
    skipped: list[str] = []
    chosen = choose_backup(
        store, backup_id, at_size=at_size, at_time_ms=at_time_ms, kek=kek, skipped=skipped
    )
    older_than_witnessed = None
    if backup_id is None:  # 0. the store's newest is not necessarily the newest made
        bad = {w.split()[2] for w in skipped}  # "WARNING: backup <id> ..."
        warning = check_not_rolled_back(
            kek,
            chosen,
            [b for b in backup_ids(store) if b not in bad],
            at_size=at_size,
            at_time_ms=at_time_ms,
            allow_older=allow_older,
            path=witness,
        )
        if warning is not None:
            say(warning)
            older_than_witnessed = warning
    else:  # a named backup: honoured, but a rollback past witnessed backups is said and recorded
        older_than_witnessed = newer_than_named(kek, chosen, witness)
        if older_than_witnessed is not None:
            say(older_than_witnessed)
    skipped += check_erasures_kept(store, kek)  # 0b. no erasure the newest knows was deleted
    for line in dict.fromkeys(skipped):
        say(line)
    staging = target.parent / f".{target.name}.restoring-{chosen}"
    if staging.exists():
        shutil.rmtree(staging)
    # the target's outside witness (ledger.witness_log); the staged hub writes its own, beside
    # the staging folder (the target's may hold a newer ledger: step 5b acknowledges that). The
    # configured HUB_LEDGER_WITNESS_DIR is the live folder's: only a restore in its place
    # (target = data_dir) acknowledges a rollback there; a restore elsewhere (a drill, a copy to
    # inspect) gets its own beside the target and leaves the live hub's witness alone
    in_place = target.resolve() == settings.data_dir.expanduser().resolve()
    outside_witness = outside_dir(target, settings.ledger_witness_dir if in_place else None)
    staged_witness = _moved(settings, staging).outside_witness_dir
    rolled_back: Head | None = None
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    outside = _Outside(_moved(settings, staging))
    try:
        fetched = fetch_backup(  # 1
            store, chosen, kek, staging, ledger_root=ledger_root_of, progress=progress
        )
        seconds["fetch"] = fetched.seconds
        manifest = fetched.manifest
        vault_keys = _check_vault_keys(manifest, outside.settings)  # 1b
        say(f"fetched backup {chosen}: {fetched.bytes} bytes; opening and verifying")
        t = time.perf_counter()
        seconds["replay"] = _replay_portable(outside, staging, progress)
        # (the backup's erasures are checked, and the journal's re-applied, below)
        h = bootstrap(_moved(settings, staging), install_domain=False, check_erasures=False)
        try:
            h.ledger.sync(force_checkpoint=True)  # 2
            report = verify_ledger(h.ledger)
            if report.first is not None:
                raise RestoreRefused(
                    f"The restored ledger does not verify: {report.first.describe()}; the "
                    "restore is refused."
                )
            if h.ledger.store.root(manifest.ledger_size).hex() != manifest.ledger_root:
                raise RestoreRefused("The restored ledger's root changed while it was opened.")
            seconds["verify"] = time.perf_counter() - t
            principal = principal_of_token(h, token)  # 3
            decision = h.policy.decide(
                principal, "backup.restore", f"backup:{chosen}", {"channel": "cli"}
            )
            if not decision.allow:
                raise Forbidden(f"Access denied: {decision.reason}.")
            t = time.perf_counter()
            reapplied = []
            journal = {
                e.subject: e.erased_at_ms
                for e in erased_subjects(store, [h.ledger.signer.verifier()])
            }
            # 4. the witness is the anchor the store's writer cannot delete: an erasure it
            # records and the journal lacks is re-applied too, and the deletion is said
            ours = h.ledger.signer.verifier_key()
            lost = {
                w.subject: w.erased_at_ms
                for w in witnessed_erasures(kek, witness) or []
                if w.ledger == ours  # another hub's erasure (same KEK) is not this hub's
            }
            lost = {s: ms for s, ms in lost.items() if s not in journal}
            if lost:
                journal_lost = (
                    f"WARNING: the backup witness {witness} records {len(lost)} erasure(s) "
                    "the store's erasure journal lacks (deleted from the store): "
                    f"{', '.join(sorted(lost)[:5])}; re-applied from the witness."
                )
                say(journal_lost)
            for journalled, erased_at_ms in sorted(
                {**journal, **lost}.items(), key=lambda kv: (kv[1], kv[0])
            ):
                # a tenant-scoped key id: that tenant's erasure; a subject id: every tenant's
                scoped = parse_scoped(journalled)
                subject, scope = (journalled, None) if scoped is None else scoped[::-1]
                if h.eraser.key_live_again(subject, scope):
                    h.eraser.erase(
                        principal,
                        subject,
                        f"re-applied after restoring backup {chosen}: erased at "
                        f"{erased_at_ms} (epoch ms), after the backup was made",
                        tenant_scope=scope,  # decided when it was first erased; re-applied as is
                        # likewise its holds: one the backup holds was released before it was made
                        check_holds=False,
                        reapply=True,
                    )
                    reapplied.append(journalled)
            seconds["erasures"] = time.perf_counter() - t
            wlog = WitnessLog(
                log_path(outside_witness, h.ledger.signer.verifier()),
                [h.ledger.signer.verifier()],
                h.ledger.config.origin,
            )
            problem, head = check_ledger(h.ledger.store, wlog)
            if problem is not None and head is not None:  # 5b. a rollback: said and recorded
                rolled_back = head
                say(
                    f"WARNING: the outside witness {wlog.path} holds a newer ledger (size "
                    f"{head.size}, root {head.root.hex()}) than this backup's: the restore "
                    "rolls it back and records that on the ledger and in the witness."
                )
            h.ledger.record_action(  # 5
                principal.id,
                "backup.restore",
                f"backup:{chosen}",
                tenant=principal.tenant,
                details={
                    "ledger_size": manifest.ledger_size,
                    "ledger_root": manifest.ledger_root,
                    "erasures_reapplied": len(reapplied),
                    **({"warning": older_than_witnessed} if older_than_witnessed else {}),
                    **({"erasure_journal_lost": sorted(lost)} if lost else {}),
                    **(
                        {
                            "rolled_back_from": {
                                "size": rolled_back.size,
                                "root": rolled_back.root.hex(),
                            }
                        }
                        if rolled_back is not None
                        else {}
                    ),
                },
            )
            h.ledger.sync(force_checkpoint=True)
            size_after = h.ledger.store.tree_size()
            _witness_restore(h.ledger, wlog, rolled_back, f"backup {chosen} by {principal.id}")
        finally:
            h.close()
        if target.exists():  # 6. an empty folder: move the contents in
            _move_into(staging, target)
        else:
            staging.rename(target)
        shutil.rmtree(staged_witness, ignore_errors=True)
    except BaseException as exc:
        try:
            undone = outside.roll_back()
        finally:
            # after the roll-back: it opens the restored topics with the staging folder's keys
            # (the Kafka log's MAC key would be made anew in a folder already deleted)
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(staged_witness, ignore_errors=True)
        if not undone or not isinstance(exc, Exception):
            raise
        note = f" The restore's writes outside its folder were rolled back: {undone}."
        if isinstance(exc, HubError):
            exc.message += note
            exc.args = (exc.message,)
            raise
        raise HubError(
            f"The restore failed ({type(exc).__name__}: {exc}).{note}", code="restore_failed"
        ) from exc
    seconds["total"] = time.perf_counter() - started
    return RestoreResult(
        backup_id=chosen,
        target=str(target),
        ledger_size_in_backup=manifest.ledger_size,
        ledger_root=manifest.ledger_root,
        ledger_size_after=size_after,
        records=manifest.records,
        bytes=fetched.bytes,
        erasures_reapplied=reapplied,
        vault_keys=vault_keys,
        seconds=seconds,
        rolled_back_from=None if rolled_back is None else rolled_back.size,
    )


def _check_vault_keys(manifest: Manifest, settings: Settings) -> dict[str, int]:
    """Step 1b: a backup whose data subject keys live in Vault (they are never exported)
    restores only where Vault holds every key it names, at the version it names or later, and
    every erasure tombstone it names; a key erased since the backup (its tombstone is there) is
    fine. Raises ``RestoreRefused`` naming what is missing; {} for a backup without Vault keys,
    else counts: checked, erased since the backup."""
    from hub.bootstrap import build_keystore

    vault = manifest.stats.get("footprint", {}).get("vault") or {}
    recorded: dict[str, int] = vault.get("transit_keys") or {}
    if not recorded:
        return {}
    if settings.keystore != "vault":
        raise RestoreRefused(
            f"Backup {manifest.id} holds data encrypted under {len(recorded)} Vault transit keys "
            f"({vault.get('url')}, mount {vault.get('mount')!r}) that it does not contain; "
            f"restore with HUB_KEYSTORE=vault and HUB_VAULT_URL naming a Vault that holds them, "
            "not the local key ring."
        )
    keystore = build_keystore(settings)
    try:
        have = _vault(keystore).key_versions()
    finally:
        keystore.close()
    problems: list[str] = []
    erased = 0
    for name, version in sorted(recorded.items()):
        got = have.get(name)
        if name.startswith("hub-erased-"):
            if got is None:
                problems.append(
                    f"{name} (an erasure tombstone: without it the subject's data "
                    "could be encrypted again)"
                )
        elif got is None:
            if "hub-erased-" + name.removeprefix("hub-subject-") in have:
                erased += 1  # erased after the backup: the erasure holds
            else:
                problems.append(f"{name} (missing)")
        elif got < version:
            problems.append(f"{name} (version {got} here, {version} in the backup)")
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise RestoreRefused(
            f"The Vault at {settings.vault_url} (mount {settings.vault_mount!r}) lacks "
            f"{len(problems)} of the {len(recorded)} keys backup {manifest.id} names: {shown}. "
            "Restore Vault from its own snapshot taken at or after this backup (bao operator "
            "raft snapshot restore) or point HUB_VAULT_URL / HUB_VAULT_MOUNT at the Vault that "
            "holds them; without them the restored PII cannot be read."
        )
    return {"checked": len(recorded), "erased_since_backup": erased}


def _move_into(staging: Path, target: Path) -> None:
    """``target`` is an existing empty folder: make it the owner's alone (0700, as the staging
    folder is: a mount point made by ``mkdir`` under umask 022 is 0755, and the restored log
    holds every tenant's records), move the staged contents in, then drop staging."""
    os.chmod(target, 0o700)
    for child in staging.iterdir():
        child.rename(target / child.name)
    staging.rmdir()


VAULT_KEYS_NOTE = (
    "The per-subject keys are Vault/OpenBao transit keys: they never leave Vault (the hub only "
    "asks Vault for HMAC-derived data keys), so this backup does not hold them; restore Vault "
    "from its own snapshot (bao operator raft snapshot save/restore) taken at or after this "
    "backup, or the restored PII fields stay unreadable (as after an erasure)."
)


def _backup_portable(
    h: Hub, store: ObjectStore, kek: Kek, *, chunk_bytes: int, progress: Progress | None
) -> Manifest:
    """``hub backup create`` of a hub whose log or ledger is not a SQLite file (Kafka,
    PostgreSQL): the ledger is copied through its port into a SQLite ledger file, then the log
    is exported through the EventLog port (``storage.portable``: records as stored, with
    offsets); the data folder's other files (local keys, checkpoints) are taken as usual; the
    same chunks, sealed keys and signed manifest follow (``storage.backup.create_backup``).

    Keys held by Vault are not exported: see ``VAULT_KEYS_NOTE`` (recorded in the manifest)."""
    import tempfile

    from hub.bootstrap import open_ledger_file
    from storage.backup import data_files, secret_rels, snapshot_file
    from storage.portable import LOG_EXPORT, copy_ledger, export_end_offsets, export_log

    say = progress or (lambda _msg: None)
    settings = h.settings
    h.ledger.sync(force_checkpoint=True)
    with tempfile.TemporaryDirectory(prefix="hub-portable-") as tmp:
        snap = Path(tmp) / "hub"
        snap.mkdir()
        for rel in data_files(settings.data_dir, (settings.objects_dir,)):
            if rel in ("ledger.sqlite", "ledger-tiles.sqlite", "log.sqlite"):
                continue
            if (settings.data_dir / rel).exists():
                snapshot_file(settings.data_dir / rel, snap / rel)
        t = time.perf_counter()
        ledger = open_ledger_file(snap / "ledger.sqlite")
        try:
            size = copy_ledger(h.ledger.store, ledger)  # the ledger first: the log covers it
        finally:
            ledger.close()
        say(f"ledger copied through its port: {size} leaves in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        export_log(h.log, snap / LOG_EXPORT, progress=progress)
        say(f"log exported through its port in {time.perf_counter() - t:.1f} s")
        footprint: dict[str, Any] = {
            "event_log": settings.event_log,
            "ledger_store": settings.ledger_store,
            "keystore": settings.keystore,
        }
        if settings.keystore == "vault":
            footprint["vault"] = {
                "url": settings.vault_url,
                "mount": settings.vault_mount,
                "keys": VAULT_KEYS_NOTE,
                "transit_keys": _vault(h.keystore).key_versions(),  # names and versions, no key
            }
        return create_backup(
            snap,
            store,
            kek,
            sync_ledger=lambda: None,  # synced above, before the copy
            sign_note=h.ledger.signer.sign_note,
            ledger_state=ledger_state_of,
            end_offsets=lambda p: export_end_offsets(p.parent / LOG_EXPORT),
            chunk_bytes=chunk_bytes,
            progress=progress,
            extra_stats={"footprint": footprint},
            secret_files=tuple(
                snap / rel for rel in secret_rels(settings.data_dir, secret_files_of(settings))
            ),
        )


def _replay_portable(outside: _Outside, staging: Path, progress: Progress | None) -> float:
    """A portable backup (``log.export.sqlite`` in ``staging``) restored into the footprint
    ``outside.settings`` name: the records replayed at their offsets into the (empty) log, and
    for a PostgreSQL ledger the ledger copied into its (empty) schema; seconds taken (0 when the
    backup is an embedded one, which holds ``log.sqlite`` itself). What it writes outside
    ``staging`` is noted in ``outside``, so that a failed restore undoes it."""
    from hub.bootstrap import build_event_log, open_ledger_file, open_ledger_store
    from storage.portable import LOG_EXPORT, copy_ledger, replay_log

    settings = outside.settings
    export = staging / LOG_EXPORT
    if not export.exists():
        return 0.0
    if settings.event_log == "sqlite" and (staging / "log.sqlite").exists():
        raise RestoreRefused(f"The backup holds both {LOG_EXPORT} and log.sqlite.")
    say = progress or (lambda _msg: None)
    t = time.perf_counter()
    log = build_event_log(settings)
    try:
        if settings.event_log == "kafka":
            outside.kafka_topics_before = _kafka(log).namespace_topics()
        n = replay_log(export, log, progress=progress)
    finally:
        log.close()
    say(f"replayed {n} records into the {settings.event_log} log")
    if settings.ledger_store == "postgres":
        src = open_ledger_file(staging / "ledger.sqlite")
        dst = open_ledger_store(settings)
        try:
            outside.ledger_schema_filled = dst.tree_size() == 0  # empty: ours to undo
            copy_ledger(src, dst)
        finally:
            src.close()
            dst.close()
        (staging / "ledger.sqlite").unlink()
    export.unlink()
    return time.perf_counter() - t


@dataclass
class _Outside:
    """What a restore writes outside its staging folder (the distributed footprint), so that
    a failed restore leaves nothing half-written behind: the Kafka topics its replay created
    in the target namespace (the topic prefix), and the PostgreSQL ledger schema it filled."""

    settings: Settings
    kafka_topics_before: set[str] | None = None  # the namespace's topics before the replay
    ledger_schema_filled: bool = False

    def roll_back(self) -> str:
        """Undo those writes; what was undone, as a phrase ("" when nothing was written). A
        rollback that fails itself is named, never hidden."""
        from hub.bootstrap import build_event_log, open_ledger_store

        done: list[str] = []
        if self.kafka_topics_before is not None:
            prefix = self.settings.kafka_topic_prefix
            try:
                log = build_event_log(self.settings)
                try:
                    kafka = _kafka(log)
                    created = kafka.namespace_topics() - self.kafka_topics_before
                    kafka.delete_namespace_topics(created)
                finally:
                    log.close()
                if created:
                    done.append(
                        f"deleted the {len(created)} Kafka topics it created under prefix "
                        f"{prefix!r} ({', '.join(sorted(created))})"
                    )
            except HubError as exc:
                done.append(
                    f"FAILED to delete the Kafka topics it created under prefix {prefix!r} "
                    f"({exc.message}); delete them by hand before restoring into this prefix"
                )
        if self.ledger_schema_filled:
            schema = self.settings.ledger_postgres_schema
            try:
                store = open_ledger_store(self.settings)
                try:
                    _droppable(store).drop()
                finally:
                    store.close()
                done.append(f"dropped the PostgreSQL ledger schema {schema!r} it filled")
            except HubError as exc:
                done.append(
                    f"FAILED to drop the PostgreSQL ledger schema {schema!r} ({exc.message}); "
                    "drop it by hand"
                )
        return "; ".join(done)


def describe(manifest: Manifest) -> str:
    return json.dumps(manifest.summary(), indent=2)


def drill(
    h: Hub,
    store: ObjectStore,
    kek: Kek,
    token: str | None,
    scratch: Path | None,
    *,
    backup_first: bool,
    rebuild_views: bool,
    chunk_bytes: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``hub dr drill``: the live folder is copied, the copy destroyed, then restored from the
    store's newest backup, as after losing the machine.

    1. (``backup_first``) back up now;
    2. note the disaster time and the live log's end offsets;
    3. copy the data folder (consistent snapshots) into the scratch folder, then destroy it;
    4. restore the newest backup that verifies there (every check of ``restore``, as chosen
       by ``choose_backup``: a planted newest is skipped and named), and, with
       ``rebuild_views``, run every projection: RTO is the time from 4 to ready;
    5. check the restored ledger is a prefix of the live one (the live root at the backup's tree
       size equals the manifest's); RPO is the disaster time minus the backup's snapshot time,
       and the records lost are the live records the backup does not hold.
    """
    import tempfile

    from storage.backup import data_files, read_manifest, snapshot_file

    say = progress or (lambda _msg: None)
    if backup_first:  # 1
        backup(h, store, kek, chunk_bytes=chunk_bytes, progress=progress)
    if not backup_ids(store):
        raise HubError(
            "The object store holds no backup to drill with: run `hub backup create` first "
            "(or pass --backup-first).",
            code="backup_not_found",
        )
    # the newest that verifies, as a restore chooses: a manifest.sig planted under an id sorting
    # last made every drill fail (the restore's witness check still sees a removed genuine one)
    latest = choose_backup(store, kek=kek)
    h.ledger.sync(force_checkpoint=True)
    disaster_ms = time.time_ns() // 1_000_000  # 2
    live_offsets = {
        t.name: {str(p): o for p, o in h.log.end_offsets(t.name).items()} for t in h.log.topics()
    }
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)  # a named work folder may not exist yet
    work = Path(tempfile.mkdtemp(prefix="hub-dr-", dir=scratch))
    try:
        copy = work / "primary"
        for rel in data_files(h.settings.data_dir, (h.settings.objects_dir,)):  # 3
            if (h.settings.data_dir / rel).exists():
                snapshot_file(h.settings.data_dir / rel, copy / rel)
        copied = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file())
        shutil.rmtree(copy)
        say(f"destroyed the copy ({copied} bytes); restoring backup {latest}")
        started = time.perf_counter()  # 4
        # unnamed: every check of a restore of the newest, the witness's rollback check included
        result = restore(h.settings, store, kek, copy, token, progress=progress)
        if result.backup_id != latest:  # the store changed during the drill
            raise RestoreRefused(
                f"The drill chose backup {latest} but the restore took {result.backup_id}: "
                "the store changed during the drill; run it again."
            )
        views_s = 0.0
        if rebuild_views:
            from projections.catalog import PROJECTIONS

            t = time.perf_counter()
            restored = _open(h.settings, copy)
            try:
                restored.projections.run([p.name for p in PROJECTIONS])
            finally:
                restored.close()
            views_s = time.perf_counter() - t
        rto = time.perf_counter() - started
        manifest = read_manifest(store, latest)[0]
        live_root = h.ledger.store.root(manifest.ledger_size).hex()  # 5
        if live_root != manifest.ledger_root:
            raise RestoreRefused(
                f"Backup {latest} is not a prefix of the live ledger: the live root at size "
                f"{manifest.ledger_size} is {live_root}, the backup's {manifest.ledger_root}."
            )
        live_records = sum(sum(p.values()) for p in live_offsets.values())
        return {
            "backup": latest,
            "backup_taken_at": manifest.summary()["created_at"],
            "rto_s": round(rto, 3),
            "rpo_s": round(max(0, disaster_ms - manifest.created_at_ms) / 1000, 3),
            "records_lost": max(0, live_records - manifest.records),
            "records_restored": manifest.records,
            "bytes_restored": result.bytes,
            "ledger_size": manifest.ledger_size,
            "ledger_root": manifest.ledger_root,
            "ledger_root_matches_live": True,
            "ledger_verified": True,
            "erasures_reapplied": result.erasures_reapplied,
            "seconds": {**result.as_dict()["seconds"], "views": round(views_s, 3)},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _open(settings: Settings, data_dir: Path) -> Hub:
    from hub.bootstrap import bootstrap

    return bootstrap(_moved(settings, data_dir), install_domain=False)


def _moved(settings: Settings, data_dir: Path) -> Settings:
    """The same settings on another data folder, with the same object store; its outside
    witness beside that folder (a staged or drilled hub is not the live one)."""
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "object_store_dir": settings.objects_dir,
            "ledger_witness_dir": None,
        }
    )


def _witness_restore(ledger: Ledger, wlog: WitnessLog, rolled_back: Head | None, by: str) -> None:
    """Step 5b: the restored ledger's newest checkpoint into the target's outside witness; a
    rollback (the witness held a newer ledger) first as a signed ``rollback`` record naming both
    sizes and roots, so verification tells this acknowledged restore from a silent rollback."""
    cp = ledger.store.latest_checkpoint()
    if cp is None:
        return
    if rolled_back is not None:
        wlog.append_rollback(
            ledger.signer,
            rolled_back.size,
            rolled_back.root,
            cp.size,
            cp.root,
            time.time_ns() // 1_000_000,
            f"hub backup restore of {by}",
        )
    wlog.append(CHECKPOINT, cp.note)
