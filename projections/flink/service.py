"""Projections on Apache Flink: compile, create the views, submit, supervise, report.

``FlinkProjections`` is what ``hub projection run --engine flink`` (or
``HUB_PROJECTION_ENGINE=flink``) and ``hub projection status`` use on the Kafka footprint:
- ``run(names)``: ONE *bounded* job for all of them (a statement set, from the earliest offset
  to the end offsets seen at start), waited for; returns the seconds taken and the views'
  digests (and, with result topics, loads the analytics tables into the hub's chDB);
- ``start(names)``: one unbounded job per projection with exactly-once checkpoints under
  ``checkpoint_root/<name>``; a job started again resumes from its newest retained checkpoint;
  ``supervise`` restarts a job that died (from that checkpoint), ``stop`` cancels them all;
- ``patterns`` (``projections.patterns``): their ``MATCH_RECOGNIZE`` job (one job for all,
  ``projections.flink.cep``) runs with the projections: in ``run``'s statement set, or as the
  unbounded job ``cep`` beside the projections' jobs in ``start`` (supervised like them, its
  checkpoints under ``checkpoint_root/cep``); ``fire_alerts`` hands the alert rows the job upserted
  into PostgreSQL to ``alerts`` (the hub raises them as ``hub.AlertFired``, ids derived from
  the match, so a row handed over again adds nothing); ``run`` calls it after the job, the CLI
  after every supervision pass;
- ``companions`` (``Companion``): jobs the application layer adds beside the projections, e.g.
  the ML feature views (``projections`` may not import ``ml``: ``hub.flink_feature_views`` gives
  them); they join ``run``'s statement set (``prepare`` before, ``load`` after the job), run as
  unbounded jobs of their own in ``start`` (supervised like the projections, ``load`` after
  every pass), and show in ``status`` and ``flink_lags`` with their consumer group's committed
  offsets and lag and their loader's position;
- ``status(names)``: per projection that compiles, the Kafka consumer group's committed offsets
  (Flink commits them on each completed checkpoint; after a bounded run the hub commits the end
  offsets seen before it started, a lower bound of where it stopped), the lag behind the end
  offsets, and the view digests.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from core.errors import HubError, TopicNotFound
from core.ports.eventlog import EventLog, TopicPartition
from core.ports.views import ViewStore
from core.projection import Projection, Windowing
from projections.flink.cep import alert_ddl, compile_pattern
from projections.flink.compile import (
    COMPILERS,
    FlinkPlacement,
    JobSpec,
    combine,
    compile_projection,
    group_id,
    result_topic,
)
from projections.flink.launch import FlinkJob, FlinkLauncher, latest_checkpoint
from projections.flink.postgres import FlinkViews
from projections.flink.results import ResultLoader
from projections.patterns import Pattern

log = logging.getLogger("hub.projections.flink")
CEP = "cep"  # the name of the patterns' job
Alerts = Callable[[Pattern, list[dict[str, Any]]], list[dict[str, Any]]]


class Companion(Protocol):
    """A Flink job the application layer gives the engine to run with the projections (an ML
    feature view). ``name`` names its job, checkpoint folder and status entry (distinct from
    every projection's); ``group`` is its consumer group (Flink commits its source offsets there
    on each checkpoint) and ``topics`` its source topics (its lag)."""

    name: str
    group: str
    topics: Sequence[str]

    def compile(self, at: FlinkPlacement, group: str) -> JobSpec:
        """The job at ``at`` reading with consumer group ``group``."""
        ...

    def prepare(self) -> None:
        """Create what the job writes (its result topic) before it is submitted."""
        ...

    def load(self) -> dict[str, Any]:
        """Fold what the job wrote since the last call into the hub's store; a summary."""
        ...

    def loader(self) -> dict[str, Any]:
        """The loader's position in the job's output and the records past it (``positions``,
        ``lag``), read without Flink."""
        ...


class FlinkProjections:
    def __init__(
        self,
        projections: Sequence[Projection],
        placement: FlinkPlacement,
        launcher: FlinkLauncher,
        views: FlinkViews,
        event_log: EventLog,
        checkpoint_root: Path,
        windowing: Windowing | None = None,
        analytics: Callable[[], ViewStore] | None = None,
        patterns: Sequence[Pattern] = (),
        alerts: Alerts | None = None,
        companions: Sequence[Companion] = (),
        loader_key: bytes | None = None,
        row_key: bytes | None = None,
    ) -> None:
        """``analytics`` gives the hub's analytics store: with ``placement.result_topics`` a
        bounded run loads the analytics tables' result topics into it (``ResultLoader``).
        ``patterns`` run with the projections; ``alerts(pattern, rows)`` raises their matches
        (the alert values it appended)."""
        self.projections = {p.name: p for p in projections}
        self.placement = placement
        self.launcher = launcher
        self.views = views
        self.log = event_log
        self.checkpoint_root = checkpoint_root
        self.windowing = windowing
        self.analytics = analytics
        self.loader_key = loader_key  # the MAC key of the result loader's memory files
        # the key of the result rows' MACs (``projections.flink.rowmac``): the loader refuses
        # a row without a valid one; the launcher hands the same key to the jobs
        self.row_key = row_key
        self.patterns = tuple(patterns)
        self.alerts = alerts
        self.companions = {c.name: c for c in companions}
        clash = sorted(set(self.companions) & (set(self.projections) | {CEP}))
        if clash:
            raise HubError(
                f"Flink companion job(s) {', '.join(clash)} share a name with a projection or "
                "the patterns' job: give them distinct names.",
                code="invalid_config",
            )
        self.jobs: dict[str, FlinkJob] = {}
        self.restarts: dict[str, int] = {}
        self._specs: dict[str, Callable[[], JobSpec]] = {}  # how to resubmit each started job

    def close(self) -> None:
        self.stop()
        self.views.close()

    def _projection(self, name: str) -> Projection:
        if name not in self.projections:
            raise HubError(
                f"No projection called {name!r}; known: {', '.join(sorted(self.projections))}.",
                code="projection_not_found",
            )
        return self.projections[name]

    def _at(self, name: str, *, bounded: bool, group: str | None) -> FlinkPlacement:
        """The placement of job ``name``; unbounded: checkpoints under ``checkpoint_root/name``,
        resuming from the newest retained one."""
        at = dataclasses.replace(self.placement, bounded=bounded, group=group)
        if not bounded:
            folder = self.checkpoint_root / name
            folder.mkdir(parents=True, exist_ok=True)
            restore = latest_checkpoint(folder)
            at = dataclasses.replace(
                at,
                checkpoint_dir=folder.resolve().as_uri(),
                restore_from=restore.resolve().as_uri() if restore is not None else None,
            )
        return at

    def compile(self, name: str, *, bounded: bool, group: str | None = None) -> JobSpec:
        p = self._projection(name)
        spec = compile_projection(p, self._at(name, bounded=bounded, group=group), self.windowing)
        self.views.ensure(spec.tables)
        return spec

    def compile_patterns(self, *, bounded: bool, group: str | None = None) -> JobSpec | None:
        """The patterns' ``MATCH_RECOGNIZE`` jobs as one (their alert tables created), or None
        without patterns."""
        if not self.patterns:
            return None
        at = self._at(CEP, bounded=bounded, group=group)
        for p in self.patterns:
            self.views._run("creating the alert table", alert_ddl(self.views.schema, p))
        return combine(CEP, [compile_pattern(p, at) for p in self.patterns])

    def _cep_unbounded(self) -> JobSpec:
        spec = self.compile_patterns(bounded=False)
        assert spec is not None  # only submitted with patterns
        return spec

    def fire_alerts(self) -> list[dict[str, Any]]:
        """The alert rows of every pattern's job handed to ``alerts``; the alerts it added."""
        added: list[dict[str, Any]] = []
        if self.alerts is None:
            return added
        for p in self.patterns:
            rows = self.views.alert_rows(p)
            if rows:
                added += self.alerts(p, rows)
        return added

    # -- bounded -----------------------------------------------------------------------------------
    def run(
        self, names: Sequence[str], timeout_s: float = 900.0, also: Sequence[JobSpec] = ()
    ) -> dict[str, dict[str, Any]]:
        """The projections ``names`` to the end offsets seen now, as ONE bounded Flink job (a
        statement set; ``also`` adds other compiled jobs, e.g. patterns, to it). Companions
        named in ``names`` join it too; their output is loaded after it."""
        companions = [self.companions[n] for n in names if n in self.companions]
        names = [n for n in names if n not in self.companions]
        # one consumer group for the whole job: its sources read each topic once (a bounded
        # job commits nothing; the groups of the projections get their positions below)
        specs = [
            self.compile(n, bounded=True, group="projection.flink.bounded") for n in names
        ]  # every refusal before any job
        # The job stops at the end offsets its sources see when it starts: at or past these.
        ends = {
            name: {
                TopicPartition(topic, part): end
                for topic in self._projection(name).topics
                for part, end in self.log.end_offsets(topic).items()
            }
            for name in names
        }
        loader = None
        if self.placement.result_topics and self.analytics is not None:
            # its memory beside the checkpoints: a restarted hub reads only new result records
            memory = self.checkpoint_root.parent / "loader"
            loader = ResultLoader(
                self.log,
                self.analytics(),
                memory=memory,
                memory_key=self.loader_key,
                row_key=self.row_key,
            )
            loader.ensure_topics([t for spec in specs for t in spec.tables])
        cep = self.compile_patterns(bounded=True, group="projection.flink.bounded")
        companion_ends = {
            c.name: {
                TopicPartition(topic, part): end
                for topic in c.topics
                for part, end in self._ends(topic).items()
            }
            for c in companions
        }
        extra = []
        for c in companions:
            c.prepare()
            at = self._at(c.name, bounded=True, group="projection.flink.bounded")
            extra.append(c.compile(at, "projection.flink.bounded"))
        job = combine("bounded", [*specs, *also, *extra, *([cep] if cep is not None else [])])
        seconds = self.launcher.submit(job).wait(timeout_s)
        out: dict[str, dict[str, Any]] = {}
        for c in companions:
            # as for the projections: the end offsets seen before the job, a lower bound of
            # where it stopped, are its group's positions (what its loaded output covers)
            self.log.commit_offsets(c.group, companion_ends[c.name])
            out[c.name] = {"seconds": round(seconds, 1), **c.load()}
        for spec in specs:
            # A bounded job takes no checkpoint, so it commits no offsets: record a lower bound
            # of where it stopped as the group's positions (status and lag read them).
            self.log.commit_offsets(group_id(self._projection(spec.name)), ends[spec.name])
            out[spec.name] = {
                "seconds": round(seconds, 1),
                "digests": {t.name: self.views.digest(t) for t in spec.tables},
            }
            p = self._projection(spec.name)
            if loader is not None and p.store == "analytics":
                before = (loader.refused, loader.stale, loader.ignored_tombstones)
                loader.load(p, spec.tables)  # the result topics into chDB
                out[spec.name]["analytics"] = {t.name: loader.digest(p, t) for t in spec.tables}
                # rows that failed authentication (each logged): none from the hub's own job;
                # genuine rows older than the loaded ones (a replay, or a re-run catching up);
                # unsigned tombstones (the job emits none): the first of each kind logged
                out[spec.name]["refused_rows"] = loader.refused - before[0]
                out[spec.name]["stale_rows"] = loader.stale - before[1]
                out[spec.name]["ignored_tombstones"] = loader.ignored_tombstones - before[2]
        if cep is not None:
            matches = {p.name: len(self.views.alert_rows(p)) for p in self.patterns}
            out[CEP] = {"matches": matches, "alerts_raised": len(self.fire_alerts())}
        return out

    # -- unbounded ---------------------------------------------------------------------------------
    def start(self, names: Sequence[str]) -> None:
        """One unbounded job per projection and per companion named, and the patterns' job
        ``cep`` (if any)."""
        companions = [self.companions[n] for n in names if n in self.companions]
        names = [n for n in names if n not in self.companions]
        for name in names:
            self._projection(name)  # every refusal before any job
        for name in names:
            self._specs[name] = functools.partial(self.compile, name, bounded=False)
        if self.patterns:
            self._specs[CEP] = self._cep_unbounded
        for c in companions:
            c.prepare()
            self._specs[c.name] = functools.partial(self._companion_unbounded, c)
        for name, compiled in self._specs.items():
            if name in self.jobs and self.jobs[name].running():
                continue
            self.jobs[name] = self.launcher.submit(compiled())

    def _companion_unbounded(self, c: Companion) -> JobSpec:
        return c.compile(self._at(c.name, bounded=False, group=c.group), c.group)

    def _ends(self, topic: str) -> dict[int, int]:
        try:
            return self.log.end_offsets(topic)
        except TopicNotFound:
            return {}

    def load_companions(self) -> dict[str, dict[str, Any]]:
        """The output of each companion started since the last call into the hub (the CLI
        calls it after every supervision pass)."""
        return {name: c.load() for name, c in self.companions.items() if name in self._specs}

    def supervise(self) -> list[str]:
        """Restart (from the newest checkpoint) every job whose process ended; their names."""
        restarted = []
        for name, job in list(self.jobs.items()):
            if job.running():
                continue
            log.error(
                "flink job ended; restarting from its newest checkpoint",
                extra={"projection": name, "exit_code": job.process.returncode},
            )
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.jobs[name] = self.launcher.submit(self._specs[name]())
            restarted.append(name)
        return restarted

    def stop(self) -> None:
        for job in self.jobs.values():
            job.stop()
        self.jobs.clear()

    # -- status ------------------------------------------------------------------------------------
    def status(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        store = self.analytics() if self.placement.result_topics and self.analytics else None
        if names is None:
            chosen = sorted(n for n in self.projections if n in COMPILERS)
            others = list(self.companions.values())
        else:
            chosen = [n for n in names if n not in self.companions]
            others = [self.companions[n] for n in names if n in self.companions]
        lags = {
            x["projection"]: x
            for x in flink_lags(self.log, [self._projection(n) for n in chosen], store)
        }
        out = []
        for name in chosen:
            p = self._projection(name)
            positions, lag = lags[name]["positions"], lags[name]["lag"]
            job = self.jobs.get(name)
            try:
                spec_tables = compile_projection(p, self.placement, self.windowing).tables
                digests = {t.name: self.views.digest(t) for t in spec_tables}
            except HubError as exc:
                digests = {"error": {"message": exc.message}}
            out.append(
                {
                    "projection": name,
                    "engine": "flink",
                    "group": group_id(p),
                    "job": None
                    if job is None
                    else {"running": job.running(), "folder": str(job.folder)},
                    "restarts": self.restarts.get(name, 0),
                    "positions": positions,
                    "lag": lag,
                    "loader": lags[name]["loader"],
                    "digests": digests,
                    "at": int(time.time() * 1000),
                }
            )
        for x in companion_lags(self.log, others):
            job = self.jobs.get(x["projection"])
            x |= {
                "engine": "flink",
                "kind": "companion",
                "group": self.companions[x["projection"]].group,
                "job": None
                if job is None
                else {"running": job.running(), "folder": str(job.folder)},
                "restarts": self.restarts.get(x["projection"], 0),
                "at": int(time.time() * 1000),
            }
            out.append(x)
        return out


def _behind(log: EventLog, topic: str, part: int, end: int, at: int | None) -> int:
    """Records of ``topic/part`` at or past ``at`` (None: never read) below ``end``."""
    behind = end - (at or 0)
    if behind > 0 and at is not None and not log.read(topic, part, at, 1):
        return 0  # only Kafka transaction markers past the position
    return max(0, behind)


def flink_lags(
    log: EventLog, projections: Sequence[Projection], analytics: ViewStore | None = None
) -> list[dict[str, Any]]:
    """Per projection on Flink, without Flink or PostgreSQL (cheap: ``hub projection status``
    and each ``/metrics`` scrape): ``positions``, the consumer group's committed offsets (Flink
    commits them on each completed checkpoint) per ``topic/partition``; ``lag``, the offsets past
    them (0 where only Kafka transaction markers are left); and for an analytics projection with
    a store, ``loader``: the result loader's committed positions in the ``flink.<table>`` topics
    and the offsets past them."""
    out = []
    existing = {t.name for t in log.topics()}
    for p in projections:
        positions, lag = _group_lag(log, group_id(p), p.topics, existing)
        loader = None
        if analytics is not None and p.store == "analytics":
            loaded = ResultLoader(log, analytics).positions(p)
            loader_lag = 0
            for t in p.tables:
                topic = result_topic(t)
                if t.kind == "append" or topic not in existing:
                    continue
                for part, end in sorted(log.end_offsets(topic).items()):
                    at = loaded.get(f"{topic}/{part}")
                    loader_lag += _behind(log, topic, part, end, at)
            loader = {"positions": loaded, "lag": loader_lag}
        out.append({"projection": p.name, "positions": positions, "lag": lag, "loader": loader})
    return out


def _group_lag(
    log: EventLog, group: str, topics: Sequence[str], existing: set[str]
) -> tuple[dict[str, int], int]:
    """``group``'s committed offsets in ``topics`` per ``topic/partition``, and the records past
    them."""
    positions: dict[str, int] = {}
    lag = 0
    for topic in topics:
        if topic not in existing:
            continue
        committed = log.committed(group, topic)
        for part, end in sorted(log.end_offsets(topic).items()):
            at = committed.get(part)
            if at is not None:
                positions[f"{topic}/{part}"] = at
            lag += _behind(log, topic, part, end, at)
    return positions, lag


def companion_lags(log: EventLog, companions: Sequence[Companion]) -> list[dict[str, Any]]:
    """``flink_lags`` of the companion jobs: their group's committed offsets and lag, and their
    loader's (``Companion.loader``)."""
    existing = {t.name for t in log.topics()}
    out = []
    for c in companions:
        positions, lag = _group_lag(log, c.group, c.topics, existing)
        out.append({"projection": c.name, "positions": positions, "lag": lag, "loader": c.loader()})
    return out
