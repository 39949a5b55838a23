"""``hub ml``: features, training sets, the model registry, scoring, A/B reports and drift.

    hub ml train NAME [--view V]        cut a training set, fit, evaluate, register a version
        [--family sklearn-lr|spark-lr]  ...with scikit-learn (default) or Spark MLlib (local[2])
    hub ml retrain NAME [--share S]     train, compare with the champion, make it the challenger
        [--family F]
    hub ml models [NAME]                models and versions with stage, metrics and manifest
    hub ml promote NAME VERSION         propose VERSION as champion (two-person rule), or
        [--challenger --share 0.2]      make it the challenger at once for a share of accounts
    hub ml approve CHANGE_ID --key ...  a second person approves a champion promotion (or a
                                        retrain schedule when the bundle makes it two-person)
    hub ml schedule NAME [--every 7d]   propose when NAME is retrained (governed config
        [--on-drift] [--share S] [--off]  ml.retrain:NAME); without options: the one in force
    hub ml retire NAME VERSION          stop serving a version
    hub ml sync-aliases NAME            put the registry's (MLflow's) aliases back to the ledger's
    hub ml score NAME                   the scoring consumer: score new events until idle
        [--follow --health-port P]      ...or keep scoring as they arrive (the scoring worker)
    hub ml predict NAME --event JSON    score one event now (recorded on hub.predictions)
    hub ml ab NAME                      the A/B report (per variant, with the p-value)
    hub ml drift NAME [--window N] [--all-tenants]  PSI, KS vs the training reference (key tenant)
    hub ml trainingset verify NAME V    rebuild a version's training set from its manifest

Every command asks the policy decision point first (``model.read``, ``model.train``,
``model.promote``, ``model.approve``, ``model.predict``); scoring and drift checks need
``model.train``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from core.errors import Forbidden, InvalidInput
from hub.cli import (
    Ctx,
    authorize,
    authorize_hub_wide,
    decided,
    key_option,
    main,
    principal_for,
    run_safely,
)

FAMILY_HELP = (
    "Model family: sklearn-lr (scikit-learn), or spark-lr (Spark MLlib local[2] in the "
    "virtualenv of `infra/spark.sh install`)."
)


def _json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@main.group()
def ml() -> None:
    """Machine learning on the log: features, models, scoring, A/B tests, drift."""


@ml.command("train")
@click.argument("name")
@click.option("--view", default=None, help="The feature view (default: the one named NAME).")
@click.option("--family", default="sklearn-lr", show_default=True, help=FAMILY_HELP)
@click.option(
    "--vectors",
    type=click.Choice(["log", "flink"]),
    default="log",
    show_default=True,
    help="Compute the vectors from the log, or take those the Flink feature jobs computed "
    "(`hub projection run --engine flink`); the digest is the same.",
)
@key_option
@click.pass_obj
def ml_train(
    obj: Ctx, name: str, view: str | None, family: str, vectors: str, key: str | None
) -> None:
    """Cut a training set from the log, fit and evaluate a model, register it as a version."""

    def go() -> None:
        from hub.ml_setup import feature_vectors, ml_of

        with obj.hub() as h:
            # hub-wide, as retrain: the training set is every tenant's labelled events and the
            # version one of the model every tenant is scored with
            principal = authorize_hub_wide(h, "model.train", f"model:{name}", principal_for(h, key))
            stored = feature_vectors(h) if vectors == "flink" else None
            try:
                mv = ml_of(h).train(principal, name, view, family, stored)
            finally:
                if stored is not None:
                    stored.close()
            click.echo(
                f"registered {mv.model} v{mv.version} ({mv.family}): training set "
                f"{mv.manifest['rows']} rows, digest {mv.manifest['digest'][:16]}..., "
                f"checkpoint {mv.manifest['checkpoint']['size']}"
            )
            _json(mv.metrics)
            click.echo(
                f"promote it with `hub ml promote {name} {mv.version} --reason WHY` "
                "(a second person approves)",
                err=True,
            )

    run_safely(go)


@ml.command("retrain")
@click.argument("name")
@click.option("--share", type=float, default=0.1, show_default=True, help="Challenger's share.")
@click.option("--reason", default="retrain", help="Why (recorded in the promotion event).")
@click.option("--family", default="sklearn-lr", show_default=True, help=FAMILY_HELP)
@key_option
@click.pass_obj
def ml_retrain(
    obj: Ctx, name: str, share: float, reason: str, family: str, key: str | None
) -> None:
    """Train a new version on a fresh cut, compare it with the champion on the same holdout and
    make it the challenger for --share of the accounts (the champion stays until two people
    promote another)."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            principal = principal_for(h, key)
            authorize(h, "model.train", f"model:{name}", principal)
            authorize_hub_wide(h, "model.promote", f"model:{name}", principal)
            mv = ml_of(h).retrain(principal, name, share, reason, family)
            click.echo(f"{mv.model} v{mv.version}: {mv.stage.lower()} (share {mv.share:.0%})")
            _json(mv.metrics)

    run_safely(go)


@ml.command("models")
@click.argument("name", required=False)
@key_option
@click.pass_obj
def ml_models(obj: Ctx, name: str | None, key: str | None) -> None:
    """Without NAME: one line per version. With NAME: every version in full (JSON)."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            authorize(h, "model.read", f"model:{name or '*'}", principal_for(h, key))
            models = ml_of(h).models
            if name is not None:
                state = models.state(name)
                _json([v.as_dict() for _, v in sorted(state.versions.items())])
                for line in models.alias_mismatches(name):
                    click.echo(f"warning: {line}", err=True)
                return
            for model in models.names():
                for version, mv in sorted(models.state(model).versions.items()):
                    auc = mv.metrics.get("holdout", {}).get("auc")
                    click.echo(
                        f"{model}\tv{version}\t{mv.stage}\tshare={mv.share}\tauc={auc}\t"
                        f"rows={mv.manifest.get('rows')}\tby={mv.registered_by}"
                    )

    run_safely(go)


@ml.command("promote")
@click.argument("name")
@click.argument("version", type=click.IntRange(1, 2**31 - 1))
@click.option("--challenger", is_flag=True, help="Make it the challenger (no approval needed).")
@click.option("--share", type=float, default=0.1, show_default=True, help="Challenger's share.")
@click.option("--reason", required=True, help="Why (recorded in the event).")
@key_option
@click.pass_obj
def ml_promote(
    obj: Ctx, name: str, version: int, challenger: bool, share: float, reason: str, key: str | None
) -> None:
    """Propose VERSION as NAME's champion (applied once another person approves), or with
    --challenger make it the challenger for --share of the accounts at once."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            principal = authorize_hub_wide(
                h, "model.promote", f"model:{name}", principal_for(h, key)
            )
            service = ml_of(h)
            if challenger:
                mv = service.models.promote_challenger(principal, name, version, share, reason)
                click.echo(f"{name} v{mv.version} is the challenger for {mv.share:.0%} of keys")
                return
            change = service.changes.propose_champion(principal, name, version, reason)
            _json(change.summary())
            click.echo(
                f"two-person rule: another person must run `hub ml approve {change.change_id} "
                "--key KEY_ID:SECRET`",
                err=True,
            )

    run_safely(go)


@ml.command("approve")
@click.argument("change_id")
@click.option("--reason", default="", help="Why (recorded in the event).")
@key_option
@click.pass_obj
def ml_approve(obj: Ctx, change_id: str, reason: str, key: str | None) -> None:
    """Approve (and apply) a champion promotion someone else proposed."""

    def go() -> None:
        from hub.ml_setup import ml_of
        from ml.models import CHAMPION_PREFIX
        from ml.schedule import RETRAIN_PREFIX

        with obj.hub() as h:
            principal = principal_for(h, key)
            changes = ml_of(h).changes
            resource = changes.store.change(change_id).resource
            if not resource.startswith((CHAMPION_PREFIX, RETRAIN_PREFIX)):
                raise InvalidInput(
                    f"Change {change_id} changes {resource!r}, not a model's champion or retrain "
                    "schedule: approve it with `hub config approve`."
                )
            authorize_hub_wide(h, "model.approve", resource, principal)
            _json(changes.approve(principal, change_id, reason).summary())

    run_safely(go)


@ml.command("schedule")
@click.argument("name")
@click.option("--every", default=None, help="Retrain every period: 30m, 12h, 7d (>= 10m).")
@click.option("--on-drift", is_flag=True, help="Retrain once per drift event recorded.")
@click.option("--share", type=float, default=0.1, show_default=True, help="Challenger's share.")
@click.option("--off", is_flag=True, help="Stop scheduled retraining of NAME.")
@click.option("--reason", default="", help="Why (recorded in the change).")
@key_option
@click.pass_obj
def ml_schedule(
    obj: Ctx,
    name: str,
    every: str | None,
    on_drift: bool,
    share: float,
    off: bool,
    reason: str,
    key: str | None,
) -> None:
    """Propose when NAME is retrained (to a challenger; promotion stays two-person): the
    governed setting ml.retrain:NAME, run by `hub serve`'s scheduler. Without options, print
    the schedule in force."""

    def go() -> None:
        from hub.ml_setup import ml_of
        from ml.schedule import RETRAIN_PREFIX

        resource = RETRAIN_PREFIX + name
        with obj.hub() as h:
            principal = principal_for(h, key)
            changes = ml_of(h).changes
            if not (every or on_drift or off):
                authorize(h, "model.read", f"model:{name}", principal)
                _json(changes.value(resource))
                return
            if off and (every or on_drift):
                raise InvalidInput("--off stops the schedule: give it without --every/--on-drift.")
            authorize(h, "model.train", f"model:{name}", principal)
            authorize_hub_wide(h, "model.promote", f"model:{name}", principal)
            value: dict[str, Any] | None = None if off else {"on_drift": on_drift, "share": share}
            if every is not None and value is not None:
                value["every"] = every
            change = changes.propose(principal, resource, value, reason or "retrain schedule")
            _json(change.summary())
            if change.status != "applied":
                click.echo(
                    f"two-person rule: another person must run `hub ml approve "
                    f"{change.change_id} --key KEY_ID:SECRET`",
                    err=True,
                )

    run_safely(go)


@ml.command("sync-aliases")
@click.argument("name")
@key_option
@click.pass_obj
def ml_sync_aliases(obj: Ctx, name: str, key: str | None) -> None:
    """Put the model registry's aliases (MLflow's champion/challenger) back to the ledger's."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            authorize_hub_wide(h, "model.promote", f"model:{name}", principal_for(h, key))
            mended = ml_of(h).models.sync_aliases(name)
            for line in mended:
                click.echo(f"mended: {line}")
            click.echo(f"{name}: the registry's aliases match the ledger ({len(mended)} mended)")

    run_safely(go)


@ml.command("retire")
@click.argument("name")
@click.argument("version", type=click.IntRange(1, 2**31 - 1))
@click.option("--reason", required=True, help="Why (recorded in the event).")
@key_option
@click.pass_obj
def ml_retire(obj: Ctx, name: str, version: int, reason: str, key: str | None) -> None:
    """Retire a version: it serves no traffic and cannot be promoted again."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            principal = authorize_hub_wide(
                h, "model.promote", f"model:{name}", principal_for(h, key)
            )
            mv = ml_of(h).models.retire(principal, name, version, reason)
            click.echo(f"{name} v{mv.version} is {mv.stage.lower()}")

    run_safely(go)


@ml.command("score")
@click.argument("name")
@click.option(
    "--follow", "-f", is_flag=True, help="Keep scoring new events until SIGTERM or Ctrl-C."
)
@click.option(
    "--poll",
    "poll_s",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.01, 60.0),
    help="With --follow: how often an idle worker looks for appends made by other processes.",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="With --follow: answer GET /health and /ready on this port (probes).",
)
@click.option(
    "--health-host",
    default="127.0.0.1",
    show_default=True,
    help="With --health-port: the address to bind (0.0.0.0 in a container).",
)
@key_option
@click.pass_obj
def ml_score(
    obj: Ctx,
    name: str,
    follow: bool,
    poll_s: float,
    health_port: int | None,
    health_host: str,
    key: str | None,
) -> None:
    """Run NAME's scoring consumer until it has scored every event (exactly once); with
    --follow, keep scoring as events arrive (the scoring worker of deploy/)."""
    if health_port is not None and not follow:
        raise click.UsageError("--health-port needs --follow (only a worker is probed).")

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            authorize(h, "model.train", f"model:{name}", principal_for(h, key))
            if follow:
                _follow(h, name, poll_s, health_port, health_host)
                return
            consumer = ml_of(h).consumer(name)
            with click.progressbar(length=consumer.lag(), label=f"scoring {name}") as bar:
                while n := consumer.step():
                    bar.update(n)
            click.echo(f"{name}: lag {consumer.lag()} (group {consumer.group})")

    run_safely(go)


def _follow(h: Any, name: str, poll_s: float, port: int | None, host: str) -> None:
    import signal
    import threading

    from hub.bootstrap import build_leader
    from hub.ml_setup import ml_of
    from hub.workers import WorkerHealth, follow_scoring

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    health = WorkerHealth(f"ml.scoring.{name}", stale_s=max(60.0, 10 * poll_s))
    if port is not None:
        try:
            health.serve(host, port)
        except OSError as exc:
            raise InvalidInput(
                f"--health-port {port} on {host} cannot be bound ({exc.strerror}); choose a "
                "free port."
            ) from exc
    # several replicas (HUB_LEADER_ELECTION): one lease per model, only its holder scores
    leader = build_leader(h.settings, name=f"{h.settings.leader_name}.scoring.{name}")
    if leader is not None:
        leader.start()
    click.echo(f"scoring {name} as events arrive (SIGTERM or Ctrl-C stops)")
    try:
        total = follow_scoring(
            lambda: ml_of(h).consumer(name), h.log, stop, health, poll_s=poll_s, leader=leader
        )
    except KeyboardInterrupt:
        total = -1
    finally:
        health.close()
        if leader is not None:
            leader.stop()
            leader.leadership.close()
    click.echo(f"{name}: stopped" + (f" after {total} records" if total >= 0 else ""))


@ml.command("accept-offsets")
@click.argument("name")
@click.option("--reason", required=True, help="Why the group was moved (recorded on the ledger).")
@key_option
@click.pass_obj
def ml_accept_offsets(obj: Ctx, name: str, reason: str, key: str | None) -> None:
    """Take the scoring group's moved offsets (ml.scoring.NAME) as the scorer's positions: the
    scorer refuses a group moved forward, and undoes a rewind, until this records the move on
    the ledger (config.accept_offsets)."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            principal = authorize_hub_wide(
                h, "model.promote", f"model:{name}", principal_for(h, key)
            )
            moves = ml_of(h).accept_offsets(principal, name, reason)
            h.ledger.sync(force_checkpoint=True)
            _json({"group": f"ml.scoring.{name}", "moves": [m.as_dict() for m in moves]})

    run_safely(go)


@ml.command("predict")
@click.argument("name")
@click.option("--event", "event", required=True, help="The event as JSON (a PaymentInitiated).")
@key_option
@click.pass_obj
def ml_predict(obj: Ctx, name: str, event: str, key: str | None) -> None:
    """Score one event now; the prediction is recorded on hub.predictions."""

    def go() -> None:
        from hub.ml_setup import ml_of

        try:
            value = json.loads(event)
        except ValueError as exc:
            raise InvalidInput(f"--event is not JSON: {exc}.") from exc
        if not isinstance(value, dict):
            raise InvalidInput("--event must be a JSON object (the event's fields).")
        with obj.hub() as h:
            principal = authorize(h, "model.predict", f"model:{name}", principal_for(h, key))
            _json(ml_of(h).predict(principal, name, value).as_dict())

    run_safely(go)


def _tenant_scope(h: Any, principal: Any, action: str, name: str) -> str | None:
    """The tenant ``principal`` may read NAME's predictions of once ``action`` is allowed on
    the model (None: every tenant, a key the policy allows ``tenant.all`` on models): what
    ``GET /v1/models/{name}/ab`` cuts its report to (``hub.reports.reader_scope``)."""
    from hub.reports import reader_scope

    decision = decided(h, action, f"model:{name}", principal)
    return reader_scope(h, principal, decision.row_filter, {"channel": "cli"}, "models")


@ml.command("ab")
@click.argument("name")
@key_option
@click.pass_obj
def ml_ab(obj: Ctx, name: str, key: str | None) -> None:
    """The A/B report: per variant predictions, alert rate, latency, precision and recall, of
    the key's tenant's predictions and labels (every tenant's for a key allowed tenant.all)."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            principal = principal_for(h, key)
            # the key's tenant only unless the policy allows tenant.all, as GET .../ab
            scope = _tenant_scope(h, principal, "model.read", name)
            _json(ml_of(h).ab_report(name, scope))

    run_safely(go)


@ml.command("drift")
@click.argument("name")
@click.option("--window", type=click.IntRange(1, 1_000_000), default=500, show_default=True)
@click.option("--retrain", is_flag=True, help="On drift, retrain and add the challenger.")
@click.option(
    "--all-tenants",
    is_flag=True,
    help="Every tenant's predictions (a key allowed tenant.all on models, e.g. admin).",
)
@key_option
@click.pass_obj
def ml_drift(
    obj: Ctx, name: str, window: int, retrain: bool, all_tenants: bool, key: str | None
) -> None:
    """Compare the champion's last WINDOW predictions of the key's tenant (with --all-tenants:
    of every tenant) with its training reference; a drift is recorded as ModelDriftDetected on
    hub.models (exit 3 when one is found). With --retrain a drift also trains a new version and
    makes it the challenger."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            principal = principal_for(h, key)
            # the key's tenant, as the A/B report: never another tenant's inputs by default
            scope = _tenant_scope(h, principal, "model.train", name)
            if all_tenants and scope is not None:
                raise Forbidden(
                    f"--all-tenants reads every tenant's predictions: this key is limited to "
                    f"tenant {scope!r} (tenant.all on models is needed); drop --all-tenants."
                )
            service = ml_of(h)
            tenant = None if all_tenants else (principal.tenant if scope is None else scope)
            out = service.check_drift(name, window, tenant=tenant)
            if out["drifted"] and retrain:
                authorize_hub_wide(h, "model.promote", f"model:{name}", principal)
                reason = f"drift in {', '.join(out['drifted'])}"
                out["retrained"] = service.retrain(principal, name, reason=reason).as_dict()
            _json(out)
        if out["drifted"]:
            raise SystemExit(3)

    run_safely(go)


@ml.group("trainingset")
def ml_trainingset() -> None:
    """Training sets: rebuild one from its manifest."""


@ml_trainingset.command("verify")
@click.argument("name")
@click.argument("version", type=click.IntRange(1, 2**31 - 1))
@key_option
@click.pass_obj
def ml_trainingset_verify(obj: Ctx, name: str, version: int, key: str | None) -> None:
    """Rebuild the training set of NAME vVERSION at its manifest's offsets and compare digests
    (exit 1 when they differ)."""

    def go() -> None:
        from hub.ml_setup import ml_of

        with obj.hub() as h:
            authorize(h, "model.read", f"model:{name}", principal_for(h, key))
            service = ml_of(h)
            manifest = service.models.version(name, version).manifest
            built = service.training_sets.verify(manifest)
            click.echo(
                f"{name} v{version}: {built.manifest['rows']} rows, digest {built.digest} "
                "matches the manifest"
            )

    run_safely(go)
