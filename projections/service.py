"""ProjectionService: the projections of one hub process — runners, rebuilds, time travel,
digests, provable rows and policy-checked queries. Built by ``hub.bootstrap``; stores open lazily
(chDB loads only when an analytics projection or query needs it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from core.errors import HubError, InvalidInput, NotFound
from core.leadership import LeaderElector, NotLeader, WriterFence
from core.ports.eventlog import EventLog, StoredRecord
from core.ports.policy import PolicyEngine, Principal
from core.ports.views import Target, ViewGrant, ViewState, ViewStore, no_hook
from core.projection import Event, FoldContext, Projection, Table, Windowing, WindowState
from domain.envelope import parse_rfc3339
from projections import metadata
from projections.catalog import PROJECTIONS, by_name
from projections.decode import Decoder
from projections.digest import digest
from projections.runner import Bound, ProjectionRunner
from projections.types import canonical, row_json

# (projection, copy, record on the ledger) -> the rows cut
CutExpired = Callable[[Projection, Target, bool], object]

log = logging.getLogger("hub.projections")
# A rebuild's copy catches up over the whole log in batches of at least this many records: each
# batch pays a fixed cost (the fold's query, one INSERT per table, the checkpoint), which at the
# live runner's 20,000 is a large part of a column-wise replay (benchmarks/replay.py); 100,000
# stored records hold about 50 MiB while they are folded.
REBUILD_BATCH_RECORDS = 100_000


def projection(name: str) -> Projection:
    try:
        return by_name(name)
    except KeyError as exc:
        raise NotFound(
            f"There is no projection {exc.args[0]}.", code="projection_not_found"
        ) from exc


class ProjectionService:
    def __init__(
        self,
        event_log: EventLog,
        registry: Any,
        reader: Any,
        publisher: Any,
        metrics: Any,
        stores: dict[str, Callable[[], ViewStore]],
        *,
        windowing: Windowing | None = None,
        batch_records: int = 20_000,
        ledger: Any = None,
        keystore: Any = None,
        cut_expired: CutExpired | None = None,
        leader: LeaderElector | None = None,
    ) -> None:
        self.log = event_log
        # Several hub processes (core.leadership): runners write only in the leader, fenced.
        self.leader = leader
        # Retention's row cut, applied to a copy before it is swapped in or shown; the
        # composition root wires governance's (``cut_expired``, governance's retention).
        self.cut_expired = cut_expired
        self.registry = registry
        self.reader = reader
        self.publisher = publisher
        self.metrics = metrics
        self._factories = stores
        self._stores: dict[str, ViewStore] = {}
        self.windowing = windowing or Windowing()
        self.batch_records = batch_records
        self.ledger = ledger
        self.decoder = Decoder(registry, keystore)
        self._runners: dict[str, ProjectionRunner] = {}
        # the copies a rebuild is filling, by projection: swapped in as the live views, so an
        # erasure scrubs them too (``copies``)
        self._copies: dict[str, list[ProjectionRunner]] = {}
        self._guard = threading.Lock()
        # running followers by group ("all"; under leader election "shared" runs in the leader
        # only, "private" in every process): each group's stop event and threads
        self._groups: dict[str, tuple[threading.Event, list[threading.Thread]]] = {}
        self._layout_lock = threading.RLock()
        self._layout_ok: set[str] = set()
        self._views_made: set[str] = set()  # stores whose views ``query`` made in this process

    # -- wiring ------------------------------------------------------------------------------------
    def store(self, kind: str) -> ViewStore:
        with self._guard:
            if kind not in self._stores:
                self._stores[kind] = self._factories[kind]()
            return self._stores[kind]

    def runner(self, name: str) -> ProjectionRunner:
        proj = projection(name)
        self._ready(proj)
        with self._guard:
            r = self._runners.get(name)
        if r is None:
            r = self._new_runner(proj, Target(name))
            with self._guard:
                r = self._runners.setdefault(name, r)
        return r

    def copies(self, name: str) -> list[ProjectionRunner]:
        """The runners of the copies of ``name`` a rebuild is filling now, to be swapped in as
        its live views. A row a copy folded before an erasure holds the plaintext the erasure
        scrubs from the live views: the eraser scrubs these too (under each runner's lock)."""
        with self._guard:
            return list(self._copies.get(name, ()))

    def _forget_copy(self, name: str, copy: ProjectionRunner) -> None:
        with self._guard:
            held = self._copies.get(name, [])
            if copy in held:
                held.remove(copy)

    def _ready(self, proj: Projection) -> None:
        """Make sure the live views have the layout of this code's definition, once per process.

        The layout (``layout_of``: tables, columns, keys, types, parameters, fold version) is
        stored beside the digests under ``<name>#layout``. When it differs, or is missing from
        a data folder that already holds rows (written before layouts were recorded), the live
        tables and positions are dropped and the projection is replayed from the log now: a
        data folder from before keeps working, with views in the new layout."""
        with self._layout_lock:
            if proj.name in self._layout_ok:
                return
            self._layout_ok.add(proj.name)
            store = self.store(proj.store)
            want = layout_of(proj)
            have = store.states(f"{proj.name}#layout")
            live = Target(proj.name)
            stale = bool(have) and have[0].digest != want
            stale = stale or (not have and store.checkpoint(live).batch_seq > 0)
            if stale:
                log.warning(
                    "projection layout changed: dropping and replaying its views",
                    extra={"projection": proj.name, "layout": want},
                )
                store.drop(live, proj.tables)
            if stale or not have:
                store.save_state(
                    ViewState(
                        f"{proj.name}#layout",
                        "layout",
                        want,
                        0,
                        "[]",
                        None,
                        int(time.time() * 1000),
                    )
                )
            if stale:
                self.runner(proj.name).catch_up()

    def _new_runner(
        self, proj: Projection, target: Target, hook: Callable[[str], None] = no_hook
    ) -> ProjectionRunner:
        return ProjectionRunner(
            proj,
            self.log,
            self.store(proj.store),
            self.decoder,
            target=target,
            windowing=self.windowing,
            batch_records=self.batch_records,
            quarantine=self._quarantine,
            metrics=self.metrics,
            hook=hook,
            # the live views of a shared store are a single-writer part; a rebuild's copy is its
            # caller's own, and a private store (chDB files) has one writer by construction
            fence=None
            if self.leader is None or target.suffix or not self.shared(proj.name)
            else self.leader.fence_of(f"projection.{proj.name}"),
        )

    def close(self) -> None:
        self.stop()
        for s in self._stores.values():
            s.close()
        self._stores.clear()

    # -- running -----------------------------------------------------------------------------------
    def run(self, names: Sequence[str]) -> dict[str, int]:
        """Catch every named projection up to the log's end offsets now (one lineage run each)."""
        out = {}
        for n in names:
            with self._lineage(f"projection.{n}", projection(n)):
                out[n] = self.runner(n).catch_up()
        return out

    def _lineage(self, job: str, proj: Projection) -> AbstractContextManager[Any]:
        """An OpenLineage run (START/COMPLETE/FAIL on ``hub.lineage``) around an explicit run."""
        if self.publisher is None:
            return nullcontext()
        from core import lineage

        inputs = [lineage.topic_dataset(t) for t in proj.topics]
        return lineage.run(self.publisher, job, inputs, [lineage.projection_dataset(proj.name)])

    def shared(self, name: str) -> bool:
        """Whether ``name``'s views are in a store other hub processes write too (under leader
        election: leader-only and fenced), or in this process's own files (followed by every
        process, like a cache derived from the log)."""
        return bool(getattr(self.store(projection(name).store), "shared", True))

    def start(
        self, names: Sequence[str] | None = None, poll_s: float = 0.05, group: str = "all"
    ) -> None:
        """Follow the log in one background thread per projection (``hub serve``); ``group``
        names the set for ``stop`` (the leader's shared followers stop when it loses the lease,
        the private ones keep running)."""
        stop, threads = self._groups.setdefault(group, (threading.Event(), []))
        stop.clear()
        for name in names or [p.name for p in PROJECTIONS]:
            runner = self.runner(name)
            if self.leader is not None:
                runner.reset()  # a new leader: the last one moved the positions meanwhile
            t = threading.Thread(
                target=runner.follow,
                args=(stop, poll_s),
                name=f"projection-{name}",
                daemon=True,
            )
            t.start()
            threads.append(t)

    def stop(self, group: str | None = None) -> None:
        """Stop the followers of ``group`` (None: every group)."""
        for name in [group] if group is not None else list(self._groups):
            if name not in self._groups:
                continue
            stop, threads = self._groups[name]
            stop.set()
            for t in threads:
                t.join(timeout=10)
            threads.clear()

    def status(self) -> list[dict[str, Any]]:
        out = []
        following = self.leader is not None and not self.leader.is_leader()
        for p in PROJECTIONS:
            r = self.runner(p.name)
            if following and self.shared(p.name):
                r.reset()  # the leader moves the positions: read them, not this process's copy
            cp = r.checkpoint
            out.append(
                {
                    "projection": p.name,
                    "store": p.store,
                    "tables": [t.name for t in p.tables],
                    "batch_seq": cp.batch_seq,
                    "lag": r.lag(),
                    "positions": {
                        f"{t}/{q}": pos.next_offset for (t, q), pos in sorted(cp.positions.items())
                    },
                    "digests": {
                        s.table: {
                            "digest": s.digest,
                            "rows": s.rows,
                            "positions": json.loads(s.positions),
                            "ledger_size": s.ledger_size,
                        }
                        for s in self.store(p.store).states(p.name)
                    },
                }
            )
        return out

    # -- quarantine --------------------------------------------------------------------------------
    def _quarantine(self, name: str, rec: StoredRecord, code: str, reason: str) -> None:
        from core.events import OutgoingEvent

        original = rec.value or b""
        event_id = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL, f"projection:{name}/{rec.topic}/{rec.partition}/{rec.offset}"
            )
        )
        value = {
            "topic": rec.topic,
            "source": f"projection:{name}",
            "reason_code": code,
            "reason": f"Projection {name!r} could not use "
            f"{rec.topic}/{rec.partition}@{rec.offset}: {reason}",
            "event_id": event_id,
            "key": None if rec.key is None else rec.key.decode("utf-8", "replace"),
            "content_type": "application/vnd.hub.avro",
            "original": base64.b64encode(original).decode(),
            "original_size": len(original),
            "original_sha256": hashlib.sha256(original).hexdigest(),
            "source_position": json.dumps(
                {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
            ),
            "received_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        try:
            self.publisher.publish(
                "hub.quarantine",
                [OutgoingEvent(value=value, event_id=event_id)],
                producer=f"projection:{name}",
            )
        except Exception as exc:  # never stop the projection for its quarantine
            log.error("could not quarantine", extra={"projection": name, "error": repr(exc)})

    # -- digests, rebuild, time travel -------------------------------------------------------
    def digest(
        self, name: str, target: Target | None = None, save: bool = True
    ) -> dict[str, dict[str, Any]]:
        proj = projection(name)
        target = target or Target(name)
        store = self.store(proj.store)
        cp = store.checkpoint(target)
        positions = json.dumps(
            sorted([t, p, pos.next_offset] for (t, p), pos in cp.positions.items())
        )
        ledger_size = None
        if self.ledger is not None:
            try:
                ledger_size = int(self.ledger.store.tree_size())
            except Exception:  # the ledger is optional here
                ledger_size = None
        out = {}
        for t in proj.tables:
            d, n = digest(t, store.rows(target, t))
            out[t.name] = {"digest": d, "rows": n}
            if save:
                store.save_state(
                    ViewState(name, t.name, d, n, positions, ledger_size, int(time.time() * 1000))
                )
        return out

    def rebuild(self, name: str, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Replay into ``<table>__rebuild_<n>``, then swap it in (no downtime), then digest.

        1. catch the copy up to the live runner's positions, live keeps serving meanwhile;
        2. under the live runner's lock: catch live up to the end offsets, the copy to the same
           positions, cut from the copy what the projection's retention policy expires now
           (``cut_expired``, governance's retention), and swap (the store's ``swap`` steps);
        3. digest and store the digest.
        """
        proj = projection(name)
        with self._lineage(f"projection.{name}.rebuild", proj):
            return self._rebuild(proj, progress)

    def _rebuild(self, proj: Projection, progress: Callable[[int], None] | None) -> dict[str, Any]:
        name = proj.name
        self._refuse_unless_leader(name)
        live = self.runner(name)
        other = Target(name, f"rebuild_{int(time.time() * 1000)}")
        store = self.store(proj.store)
        store.drop(other, proj.tables)
        copy = self._new_runner(proj, other)
        copy.batch_records = max(copy.batch_records, REBUILD_BATCH_RECORDS)
        copy.open()
        # known to erasures before it folds anything (``copies``): a subject erased while it
        # replays is scrubbed from it too, not swapped back into the live views
        with self._guard:
            self._copies.setdefault(name, []).append(copy)
        try:
            started = time.perf_counter()
            n = copy.catch_up(Bound(self._positions_of(live)))  # 1
            with live.lock:  # 2
                live.catch_up()
                n += copy.catch_up(Bound(self._positions_of(live)))
                if self.cut_expired is not None:  # rows retention removed stay removed
                    self.cut_expired(proj, other, True)
                # fenced: a leader replaced since the check above cannot swap its copy in
                store.swap(Target(name), other, proj.tables, fence=self._swap_fence(live, name))
                live.reset()
                self._forget_copy(name, copy)  # its tables are the live ones now
        finally:
            self._forget_copy(name, copy)
        if progress:
            progress(n)
        return {
            "projection": name,
            "replayed": n,
            "seconds": time.perf_counter() - started,
            "digests": self.digest(name),
        }

    def verify(self, name: str) -> dict[str, Any]:
        """Compare ``name``'s live views with the log range their checkpoint claims.

        The checkpoint's positions (``_projection_offsets`` and the like) are plain rows of the
        view store: whoever can write it moves an offset forward and the runner skips the
        records in between for good, the view silently lacking them; rows can be edited the
        same way. A count or digest stored beside the positions would be edited with them, so
        the check is a replay: fold the log into a temporary copy up to exactly the claimed
        positions (a partition the checkpoint lacks up to 0) and compare each view's digest
        with the live one. Sound whatever was edited (positions, rows, stored digests), and
        costs one replay of the projection's topics (as ``rebuild``), so it is an audit step,
        not a per-read check. A claimed position past the log's end is named too.
        Retention: the copy is cut by the active policy as of now (as rebuild does), so run
        the retention job first if it is behind, or its cuts show up as differences."""
        proj = projection(name)
        store = self.store(proj.store)
        live = self.runner(name)
        with live.lock:  # the live runner (if it runs in this process) does not move meanwhile
            cp = store.checkpoint(Target(name))
            claimed = {tp: pos.next_offset for tp, pos in cp.positions.items()}
            live_digests = {t.name: digest(t, store.rows(Target(name), t)) for t in proj.tables}
            if store.checkpoint(Target(name)).positions != cp.positions:
                raise HubError(
                    f"Projection {name!r} moved while it was read (another process runs it); "
                    "retry, or stop its runner while verifying.",
                    code="projection_moving",
                )
        problems: list[str] = []
        ends = {(t, p): e for t in proj.topics for p, e in self.log.end_offsets(t).items()}
        for (topic, part), offset in sorted(claimed.items()):
            end = ends.get((topic, part))
            if end is None or offset > end:
                problems.append(
                    f"the checkpoint claims {topic}[{part}] folded up to offset {offset}, past "
                    f"the log's end ({end}): the positions were moved."
                )
        other = Target(name, f"verify_{uuid.uuid4().hex[:12]}")
        runner = self._new_runner(proj, other)
        try:
            runner.open()
            replayed = runner.catch_up(Bound({tp: claimed.get(tp, 0) for tp in ends}))
            if self.cut_expired is not None:  # rows retention removed stay removed
                self.cut_expired(proj, other, False)
            tables: dict[str, Any] = {}
            for t in proj.tables:
                want, n = digest(t, store.rows(other, t))
                got, m = live_digests[t.name]
                tables[t.name] = {"live": got, "live_rows": m, "log": want, "log_rows": n}
                if got != want:
                    problems.append(
                        f"view {t.name!r} ({m} rows) differs from the log replayed to its "
                        f"checkpoint ({n} rows): its positions were moved (records skipped) or "
                        f"its rows edited; run `hub projection rebuild {name}`."
                    )
        finally:
            store.drop(other, proj.tables)
        return {
            "projection": name,
            "ok": not problems,
            "positions": sorted([t, p, o] for (t, p), o in claimed.items()),
            "replayed": replayed,
            "views": tables,
            "problems": problems,
        }

    def _refuse_unless_leader(self, name: str) -> None:
        """Under leader election a shared store's views are written by the leader only: a
        rebuild elsewhere is refused before any work, naming who leads."""
        if self.leader is None or not self.shared(name):
            return
        if self.leader.fence(f"projection.{name}") is not None:
            return
        try:
            holder = self.leader.leadership.current()
        except HubError:
            holder = None
        who = (
            "no process holds the lease right now"
            if holder is None
            else f"the lease {self.leader.leadership.name!r} is held by {holder.holder!r} under "
            f"epoch {holder.epoch}"
        )
        raise NotLeader(
            f"Projection {name!r} lives in a store that every hub process shares, and only the "
            f"leader writes it; this process ({self.leader.leadership.holder!r}) is not the "
            f"leader ({who}). Run the rebuild on the leader (`hub status` and GET /health show "
            "each process's role)."
        )

    def _swap_fence(self, live: ProjectionRunner, name: str) -> WriterFence | None:
        if live.fence is None:
            return None
        token = live.fence()
        if token is None:
            raise NotLeader(
                f"This hub process lost the leadership while rebuilding projection {name!r}; "
                "the rebuilt copy was not swapped in. Run the rebuild on the new leader."
            )
        return token

    def _positions_of(self, runner: ProjectionRunner) -> dict[tuple[str, int], int]:
        return {tp: pos.next_offset for tp, pos in runner.checkpoint.positions.items()}

    @contextmanager
    def _replay(
        self,
        name: str,
        offset: int | None,
        time_ms: int | None,
        event_time_us: int | None,
    ) -> Iterator[tuple[Projection, Target, ViewStore]]:
        """A temporary copy of ``name``'s views as of one point (dropped on exit): every
        partition up to ``offset``, or records up to log time ``time_ms``, or events up to
        their own time ``event_time_us`` (``Projection.event_time``: ``executed_at``, ...)."""
        given = [x for x in (offset, time_ms, event_time_us) if x is not None]
        if len(given) != 1:
            raise InvalidInput(
                "Give exactly one of offset (N), time_ms (log time) or event_time (RFC 3339 or "
                f"epoch ms); got {len(given)}.",
                code="invalid_bound",
            )
        proj = projection(name)
        target = Target(name, f"at_{uuid.uuid4().hex[:12]}")
        store = self.store(proj.store)
        runner = self._new_runner(proj, target)
        try:
            runner.open()
            ends = {(t, p): e for t in proj.topics for p, e in self.log.end_offsets(t).items()}
            if offset is not None:
                bound = Bound({tp: offset for tp in ends})
            else:
                bound = Bound(ends, time_ms, event_time_us)
            runner.catch_up(bound)
            if self.cut_expired is not None:  # nor does time travel show them
                self.cut_expired(proj, target, False)
            yield proj, target, store
        finally:
            store.drop(target, proj.tables)

    def at(
        self,
        name: str,
        *,
        offset: int | None = None,
        time_ms: int | None = None,
        event_time_us: int | None = None,
        table: str | None = None,
        where: dict[str, Any] | None = None,
        reader: tuple[PolicyEngine, Principal] | None = None,
    ) -> dict[str, Any]:
        """The views as of a past point (see ``_replay``): rows and digests. With ``reader``
        (policy, principal), the rows that reader may see (``grants``: its tenant's unless
        ``tenant.all``, PII columns None unless ``pii.read``) and a digest only for a view it
        sees whole (None otherwise: a digest over rows it may not read tells it whether they
        changed); the decisions are made before any replay."""
        grants = None
        if reader is not None:
            proj = projection(name)
            grants = {g.name: g for g in self.grants(reader[0], reader[1], proj.store)}
        with self._replay(name, offset, time_ms, event_time_us) as (proj, target, store):
            if table is not None and table not in {t.name for t in proj.tables}:
                raise NotFound(
                    f"Projection {name} has no table {table!r}: use one of "
                    f"{', '.join(t.name for t in proj.tables)}.",
                    code="table_not_found",
                )
            tables = [proj.table(table)] if table else list(proj.tables)
            views = {t.name: store.rows(target, t, where) for t in tables}
            digests: dict[str, Any] = {t.name: digest(t, views[t.name])[0] for t in tables}
        if grants is not None:
            for t in tables:
                g = grants[t.name]
                if g.tenant is None and not g.masked:
                    continue
                shown = [r for r in views[t.name] if g.tenant in (None, r.get("tenant"))]
                views[t.name] = [
                    {k: None if k in g.masked else v for k, v in r.items()} for r in shown
                ]
                digests[t.name] = None
        return {
            "projection": name,
            "offset": offset,
            "time_ms": time_ms,
            "event_time_us": event_time_us,
            "views": views,
            "digests": digests,
        }

    def at_query(
        self,
        policy: PolicyEngine,
        principal: Principal,
        name: str,
        sql: str,
        *,
        offset: int | None = None,
        time_ms: int | None = None,
        event_time_us: int | None = None,
    ) -> pa.Table:
        """``sql`` (the guarded query of ``query``) over ``name``'s views as of a past point: the
        query names the projection's tables as usual and reads the replayed copy, filtered and
        masked for ``principal`` exactly like the live views. Other projections' tables are not
        visible (they are not replayed)."""
        with self._replay(name, offset, time_ms, event_time_us) as (proj, target, store):
            own = {t.name for t in proj.tables}
            grants = [
                replace(g, source=target.table(g.name))
                for g in self.grants(policy, principal, proj.store)
                if g.name in own
            ]
            return canonical(store.query(sql, grants))

    # -- provable rows -----------------------------------------------------------------------------
    def parse_key(self, table: Table, key: str) -> dict[str, Any]:
        parts = key.split("|")
        if len(parts) != len(table.key):
            raise InvalidInput(
                f"Table {table.name} is keyed by {', '.join(table.key)}: give the key as "
                f"{'|'.join(table.key)} (got {key!r}).",
                code="invalid_key",
            )
        out: dict[str, Any] = {}
        for name, text in zip(table.key, parts, strict=True):
            c = table.column(name)
            if c.type == "timestamp":
                digits = text.lstrip("-").isdigit()
                out[name] = _int64_key(name, text) if digits else _micros(text)
            elif c.type == "int":
                out[name] = _int64_key(name, text)
            elif c.type == "decimal":
                out[name] = Decimal(text)
            else:
                out[name] = text
        return out

    def sources(
        self,
        name: str,
        table_name: str | None,
        key: str,
        *,
        mask_pii: bool = False,
        tenant_scope: str | None = None,
    ) -> dict[str, Any]:
        """A row with the events behind it (decoded) and, with a ledger, their positions.

        ``mask_pii`` hides the row's PII columns and the events' PII fields (``***``).
        ``tenant_scope`` (a reader limited to that tenant, the ``event.read`` decision's row
        filter): another tenant's row answers the same ``NotFound`` as a missing one, and only
        that tenant's events are shown (``core.events.tenant_of``), as the query guard limits
        the views (``WHERE tenant = ...``)."""
        from core.events import tenant_of

        proj = projection(name)
        table = proj.table(table_name) if table_name else proj.tables[0]
        where = self.parse_key(table, key)
        rows = self.store(proj.store).rows(Target(name), table, where)
        if tenant_scope is not None:
            rows = [r for r in rows if r.get("tenant") == tenant_scope]
        if not rows:
            raise NotFound(f"{table.name} has no row with key {key!r}.", code="row_not_found")
        row = rows[0]
        if table.kind == "append":
            src = [
                [row["src_topic"], row["src_partition"], row["src_offset"], row["src_offset"], 1]
            ]
        else:
            src = row["src_offsets"]
        hidden = {c.name for c in table.columns if c.pii} if mask_pii else set()
        events: list[dict[str, Any]] = []
        complete = True
        for topic, part, first, last, count in src:
            found = 0
            for rec in self._scan(topic, part, first, last):
                if tenant_scope is not None and tenant_of(rec) != tenant_scope:
                    continue
                ev = self.decoder.decode(rec)
                if self._contributes(proj, table, where, ev):
                    found += 1
                    out = self.reader.decode(rec, mask_pii=mask_pii)
                    out["proof"] = self._proof(rec)
                    events.append(out)
            complete = complete and found == count
        return {
            "projection": name,
            "table": table.name,
            "row": {
                k: "***" if k in hidden and v is not None else v
                for k, v in row_json(table, row).items()
            },
            "src_offsets": src,
            "events": events,
            "complete": complete,
        }

    def _scan(self, topic: str, part: int, first: int, last: int) -> list[StoredRecord]:
        out: list[StoredRecord] = []
        pos = first
        while pos <= last:
            got = self.log.read(topic, part, pos, min(10_000, last - pos + 1))
            got = [r for r in got if r.offset <= last]
            if not got:
                break
            out += got
            pos = got[-1].offset + 1
        return out

    def _contributes(self, proj: Projection, table: Table, key: dict[str, Any], e: Event) -> bool:
        for rule in proj.entities:
            if rule.table == table.name:
                return e.event_type in rule.event_types and rule.key(e) == tuple(
                    key[k] for k in table.key
                )
        if proj.fold is None:
            return False
        ctx = FoldContext(Windowing(late_mode="update"), proj.params)
        produced = proj.fold([e], WindowState(), ctx).get(table.name, [])
        return any(all(r.get(k) == v for k, v in key.items()) for r in produced)

    def _proof(self, rec: StoredRecord) -> Any:
        finder = getattr(self.ledger, "index_of", None)
        if finder is None:
            return None
        try:
            index = finder(rec.topic, rec.partition, rec.offset)
            return None if index is None else self.ledger.entry(index)
        except Exception as exc:  # no checkpoint yet, or not synced
            return {"error": str(exc)}

    # -- queries -----------------------------------------------------------------------------------
    def grants(self, policy: PolicyEngine, principal: Principal, kind: str) -> list[ViewGrant]:
        # Both decisions recorded together: one wait for their store, not two.
        all_tenants, pii = (
            d.allow
            for d in policy.decide_many(
                [(principal, "tenant.all", "views", None), (principal, "pii.read", "views", None)]
            )
        )
        out = []
        for p in PROJECTIONS:
            if p.store != kind:
                continue
            for t in p.tables:
                cols = [c.name for c in t.columns]
                if t.kind != "append":
                    cols.append("src_offsets")
                sensitive = frozenset(c.name for c in t.columns if c.pii)
                masked = frozenset() if pii else sensitive
                tenant = None if all_tenants else principal.tenant
                out.append(ViewGrant(t.name, tuple(cols), tenant, masked, pii=sensitive))
        return out

    def query(
        self, policy: PolicyEngine, principal: Principal, sql: str, store: str = "analytics"
    ) -> Any:
        if store not in ("analytics", "transactional"):
            raise InvalidInput(f"store={store!r} is invalid: use analytics or transactional.")
        grants = self.grants(policy, principal, store)
        if metadata.statement(sql) is not None:  # SHOW TABLES / DESCRIBE: from the catalog
            return metadata.answer(sql, [p for p in PROJECTIONS if p.store == store], grants)
        views = self.store(store)
        made = store in self._views_made
        if not made:
            self._make_views(store, views)
        try:
            return canonical(views.query(sql, grants))
        except HubError as exc:
            if not made or exc.code == "query_too_large":  # the answer, not a missing view
                raise
            # A view gone since they were made (a rebuild or layout replay in another process
            # dropped it): make them again and run the query once more.
            self._make_views(store, views)
            return canonical(views.query(sql, grants))

    def _make_views(self, store: str, views: ViewStore) -> None:
        """Every projection's views of ``store`` in this code's layout (``ensure`` runs a
        CREATE per table: 50 to 100 ms of chDB per query when it ran before each one)."""
        for p in PROJECTIONS:
            if p.store == store:
                self._ready(p)
                views.ensure(Target(p.name), p.tables)
        self._views_made.add(store)


def at_json(found: dict[str, Any]) -> dict[str, Any]:
    """``ProjectionService.at``'s answer in the JSON representations of ``projections.types``
    (timestamps ISO-8601 UTC, decimals exact strings)."""
    proj = projection(found["projection"])
    views = {
        name: [row_json(proj.table(name), r) for r in rows] for name, rows in found["views"].items()
    }
    return {**found, "views": views}


FOLDS_VERSION = 2  # bump when a fold's output changes for the same events (2: per-currency keys)


def layout_of(p: Projection) -> str:
    """A fingerprint of what the stored views of ``p`` look like and mean (not their docs)."""
    spec = {
        "folds": FOLDS_VERSION,
        "params": {k: str(v) for k, v in sorted(p.params.items())},
        "tables": [
            [
                t.name,
                t.kind,
                [[c.name, c.type, c.agg, c.scale, c.nullable, c.expr] for c in t.columns],
            ]
            for t in p.tables
        ],
    }
    text = json.dumps(spec, sort_keys=True)
    return f"v{FOLDS_VERSION}-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def point_in_time_us(text: str) -> int:
    """An event-time bound given as RFC 3339 (``2026-11-24T12:00:00Z``) or epoch milliseconds,
    in µs; ``InvalidInput`` naming the value otherwise."""
    text = text.strip()
    bad = InvalidInput(
        f"event_time={text!r} is not a time: give RFC 3339 (2026-11-24T12:00:00Z) or epoch "
        "milliseconds, within years 1..9999 in UTC.",
        code="invalid_event_time",
    )
    if text.isdigit():
        us = int(text) * 1000
        if us >= 2**63:  # the bound is compared with stored 64-bit times
            raise bad
        return us
    try:
        dt = parse_rfc3339(text)
        # an offset can move a time near year 1 or 9999 out of datetime's range
        return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    except (ValueError, OverflowError) as exc:
        raise bad from exc


def _int64_key(name: str, text: str) -> int:
    """A 64-bit integer key part (views store Int64): ``int()`` raised ValueError on other text
    (a 500), and a wider number made the views' query fail (another 500)."""
    digits = text[1:] if text.startswith("-") else text
    plain = digits.isascii() and digits.isdigit() and len(digits) <= 19
    if not plain or not -(2**63) <= int(text) < 2**63:
        raise InvalidInput(
            f"Key part {name} must be a 64-bit integer, got {text[:40]!r}.", code="invalid_key"
        )
    return int(text)


def _micros(text: str) -> int:
    try:
        dt = parse_rfc3339(text)
        # an offset can move a time near year 1 or 9999 out of datetime's range
        return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"{text!r} is not an RFC 3339 time or integer microseconds.") from exc
