"""Projections on Apache Flink: compile, create the views, submit, supervise, report.

``FlinkProjections`` is what ``hub projection run --engine flink`` (or
``HUB_PROJECTION_ENGINE=flink``) and ``hub projection status`` use on the Kafka footprint:
- ``run(names)``: ONE *bounded* job for all of them (a statement set, from the earliest offset
  to the end offsets seen at start), waited for; returns the seconds taken and the views'
  digests (and, with result topics, loads the analytics tables into the hub's chDB);
- ``start(names)``: one unbounded job per projection with exactly-once checkpoints under
  ``checkpoint_root/<name>``; a job started again resumes from its newest retained checkpoint;
  ``supervise`` restarts a job that died (from that checkpoint), ``stop`` cancels them all;
- ``status(names)``: per projection that compiles, the Kafka consumer group's committed offsets
  (Flink commits them on each completed checkpoint; after a bounded run the hub commits the end
  offsets seen before it started, a lower bound of where it stopped), the lag behind the end
  offsets, and the view digests.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import HubError
from core.ports.eventlog import EventLog, TopicPartition
from core.ports.views import ViewStore
from core.projection import Projection, Windowing
from projections.flink.compile import (
    COMPILERS,
    FlinkPlacement,
    JobSpec,
    combine,
    compile_projection,
    group_id,
)
from projections.flink.launch import FlinkJob, FlinkLauncher, latest_checkpoint
from projections.flink.postgres import FlinkViews
from projections.flink.results import ResultLoader

log = logging.getLogger("hub.projections.flink")


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
    ) -> None:
        """``analytics`` gives the hub's analytics store: with ``placement.result_topics`` a
        bounded run loads the analytics tables' result topics into it (``ResultLoader``)."""
        self.projections = {p.name: p for p in projections}
        self.placement = placement
        self.launcher = launcher
        self.views = views
        self.log = event_log
        self.checkpoint_root = checkpoint_root
        self.windowing = windowing
        self.analytics = analytics
        self.jobs: dict[str, FlinkJob] = {}
        self.restarts: dict[str, int] = {}

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

    def compile(self, name: str, *, bounded: bool, group: str | None = None) -> JobSpec:
        p = self._projection(name)
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
        spec = compile_projection(p, at, self.windowing)
        self.views.ensure(spec.tables)
        return spec

    # -- bounded -----------------------------------------------------------------------------------
    def run(
        self, names: Sequence[str], timeout_s: float = 900.0, also: Sequence[JobSpec] = ()
    ) -> dict[str, dict[str, Any]]:
        """The projections ``names`` to the end offsets seen now, as ONE bounded Flink job (a
        statement set; ``also`` adds other compiled jobs, e.g. patterns, to it)."""
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
            loader = ResultLoader(self.log, self.analytics())
            loader.ensure_topics([t for spec in specs for t in spec.tables])
        job = combine("bounded", [*specs, *also])
        seconds = self.launcher.submit(job).wait(timeout_s)
        out: dict[str, dict[str, Any]] = {}
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
                loader.load(p, spec.tables)  # the result topics into chDB
                out[spec.name]["analytics"] = {t.name: loader.digest(p, t) for t in spec.tables}
        return out

    # -- unbounded ---------------------------------------------------------------------------------
    def start(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self.jobs and self.jobs[name].running():
                continue
            self.jobs[name] = self.launcher.submit(self.compile(name, bounded=False))

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
            self.jobs[name] = self.launcher.submit(self.compile(name, bounded=False))
            restarted.append(name)
        return restarted

    def stop(self) -> None:
        for job in self.jobs.values():
            job.stop()
        self.jobs.clear()

    # -- status ------------------------------------------------------------------------------------
    def status(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for name in names or sorted(n for n in self.projections if n in COMPILERS):
            p = self._projection(name)
            positions: dict[str, int] = {}
            lag = 0
            for topic in p.topics:
                committed = self.log.committed(group_id(p), topic)
                for part, end in sorted(self.log.end_offsets(topic).items()):
                    at = committed.get(part)
                    if at is not None:
                        positions[f"{topic}/{part}"] = at
                    behind = end - (at or 0)
                    if behind > 0 and at is not None and not self.log.read(topic, part, at, 1):
                        behind = 0  # only Kafka transaction markers past the position
                    lag += max(0, behind)
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
                    "digests": digests,
                    "at": int(time.time() * 1000),
                }
            )
        return out
