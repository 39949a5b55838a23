"""Alerts: rules (``domain.alerts``) evaluated continuously; firing and resolving are events on
``hub.alerts`` (so on the ledger), shown in the console and POSTed to a webhook.

Contract:
1. ``evaluate`` runs each rule's query through the guarded query path as ``principal``
   (decisions recorded); a rule fires when the value exceeds its threshold, resolves when not.
2. Only a change of state is an event: one ``hub.AlertFired`` per firing (with a new
   ``alert_id``), one ``hub.AlertResolved`` naming it. The state is folded from the topic at
   start, so a restart neither fires again nor forgets a firing.
3. The event is appended (and acknowledged) BEFORE delivery: a crash between them loses a
   delivery, never the record. Each event is delivered once per webhook, retried with
   exponential backoff on a connection error, a 429 or a 5xx; receivers deduplicate by the
   ``X-Hub-Alert-Event`` header (the event id) if a retry follows a lost answer.
4. The body is signed: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
5. E-mail: each event is sent once per mailbox through its SMTP server (``smtplib``), retried
   with backoff on a connection error or a 4xx (transient) answer, not on a 5xx (permanent);
   the ``Message-ID`` is derived from the event id, so a receiver can deduplicate a retry.

Rules are governed config (``alerts.rules``, ``governance.alertrules``): changed only through
the config-change flow, two-person where the policy bundle says so, re-read on every pass.
What a rule measures (``domain.alerts``: SQL over the views, projection lag, quarantine rate,
drift events, the ledger's verification) is ``AlertEngine.measure``. The quarantine rate is
taken between the engine's own samples of the log's counts (``ReceivedCounts``: each sample
reads only what was appended since the previous one), so its first pass after a start sees
no rate; drift events are read from ``hub.models`` as they are appended; the
ledger is verified incrementally from the last verified checkpoint (the state ``hub ledger
verify`` keeps), and a passing run advances that state. A failing run does not: it is repeated
every ``window_s`` until it passes (then the alert resolves) or someone investigates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import httpx

from core.events import OutgoingEvent
from core.periodic import Periodic
from core.ports.eventlog import EventLog
from core.ports.policy import Principal
from domain.alerts import AlertRule
from domain.envelope import uuid7
from hub.logs import redact
from ingest.stats import QUARANTINE, is_data_topic

if TYPE_CHECKING:
    from hub.bootstrap import Hub

log = logging.getLogger("hub.console.alerts")

ALERTS_TOPIC = "hub.alerts"
FIRED = "hub.AlertFired"
RESOLVED = "hub.AlertResolved"
ALERTING_PRINCIPAL = Principal("hub.alerts", frozenset({"compliance_officer"}))


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: bytes
    attempts: int = 5
    backoff_s: float = 0.5  # doubles after each failed attempt

    @property
    def shown(self) -> str:
        """The receiver as a log line names it: its origin only. Slack, Teams, Discord and
        many others carry their credential in the URL's path or query (whoever holds the URL
        posts into the channel), and the user information may hold a password."""
        try:
            url = httpx.URL(self.url)
            port = f":{url.port}" if url.port else ""
            # the user stays (which account), never its password
            user = url.username + (":[redacted]" if url.password else "")
            return redact(f"{url.scheme}://{user + '@' if user else ''}{url.host}{port}")
        except (httpx.InvalidURL, TypeError, ValueError):
            return "(an unparsable webhook URL)"

    def scrub(self, text: str) -> str:
        """``text`` (an exception's message) with the URL, or its path and query, taken out."""
        tail = self.url.split("://", 1)[-1].partition("/")[2]
        for found in (self.url, str(_parsed(self.url)), "/" + tail if tail else ""):
            if found:
                text = text.replace(found, self.shown + "/[redacted]")
        return text


def _parsed(url: str) -> str | httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return url


def deliver(
    hook: Webhook,
    event: dict[str, Any],
    post: Callable[..., httpx.Response] = httpx.post,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """POST ``event`` to ``hook`` (step 3 and 4 of the module docstring); True when accepted."""
    body = json.dumps(event, sort_keys=True).encode()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": sign(hook.secret, body),
        "x-hub-alert-event": str(event["event_id"]),
    }
    delay = hook.backoff_s
    for attempt in range(1, hook.attempts + 1):
        try:
            r = post(hook.url, content=body, headers=headers, timeout=10)
            if r.status_code < 300:
                return True
            if r.status_code != 429 and r.status_code < 500:
                log.error("alert webhook %s refused the event: %s", hook.shown, r.status_code)
                return False
            reason = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            reason = hook.scrub(repr(exc))
        log.warning("alert webhook %s attempt %d failed: %s", hook.shown, attempt, reason)
        if attempt < hook.attempts:
            sleep(delay)
            delay *= 2
    return False


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    attempts: int = 5
    backoff_s: float = 0.5  # doubles after each failed attempt


def email_for(box: Mailbox, event: dict[str, Any]) -> EmailMessage:
    """The e-mail of one alert event: a subject naming state, rule and severity; the event as
    JSON in the body; ``Message-ID`` and ``X-Hub-Alert-Event`` from the event id."""
    state = "FIRED" if event["event_type"] == FIRED else "RESOLVED"
    msg = EmailMessage()
    msg["From"] = box.sender
    msg["To"] = ", ".join(box.recipients)
    severity = f" ({event['severity']})" if event.get("severity") else ""
    msg["Subject"] = f"[hub alert] {state} {event['rule']}{severity}"
    msg["Message-ID"] = f"<{event['event_id']}@hub.alerts>"
    msg["X-Hub-Alert-Event"] = str(event["event_id"])
    summary = event.get("summary", "")
    msg.set_content(
        f"{state}: {event['rule']}{severity}\n{summary}\nvalue {event.get('value')}"
        f"\n\n{json.dumps(event, indent=2, sort_keys=True)}\n"
    )
    return msg


def send_mail(
    box: Mailbox,
    event: dict[str, Any],
    smtp: Callable[..., smtplib.SMTP] = smtplib.SMTP,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Send ``event`` to ``box`` (step 5 of the module docstring); True when the server took it."""
    msg = email_for(box, event)
    delay = box.backoff_s
    for attempt in range(1, box.attempts + 1):
        try:
            with smtp(box.host, box.port, timeout=10) as server:
                server.send_message(msg, from_addr=box.sender, to_addrs=list(box.recipients))
            return True
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                log.error("alert mail to %s refused: %s", box.host, exc)
                return False
            reason = repr(exc)
        except smtplib.SMTPRecipientsRefused as exc:
            log.error("alert mail to %s refused every recipient: %s", box.host, exc)
            return False
        except (OSError, smtplib.SMTPException) as exc:
            reason = repr(exc)
        log.warning("alert mail to %s attempt %d failed: %s", box.host, attempt, reason)
        if attempt < box.attempts:
            sleep(delay)
            delay *= 2
    return False


class ReceivedCounts:
    """Records appended to the data topics (accepted) and to ``hub.quarantine`` (rejected, those
    with a value, as ``ingest.stats`` counts them) since the first ``counts`` call.

    The quarantine rate needs only the differences between two samples, so the history before
    the first call is never read (``QualityStats.snapshot`` folds every record ever accepted,
    record by record, on its first call: the engine's first pass in ``hub serve`` spent most of
    its time there). Accepted records are counted from the stored batches
    (``EventLog.read_encoded``, nothing decoded) where the log offers them, else from
    ``read_columns``; each call reads only what was appended since the previous one."""

    def __init__(self, log: EventLog, chunk: int = 50_000) -> None:
        self.log = log
        self.chunk = chunk
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset
        self._started = False
        self.accepted = 0
        self.rejected = 0

    def counts(self) -> tuple[int, int]:
        """(accepted, rejected) counted since the first call."""
        for t in self.log.topics():
            if is_data_topic(t.name):
                self.accepted += self._count(t.name, values=False)
            elif t.name == QUARANTINE:
                self.rejected += self._count(t.name, values=True)
        self._started = True
        return self.accepted, self.rejected

    def _count(self, topic: str, values: bool) -> int:
        n = 0
        for part, end in self.log.end_offsets(topic).items():
            # a partition seen at the first call starts at its end; one created later, at 0
            pos = self._next.get((topic, part), 0 if self._started else end)
            while pos < end:
                size = min(self.chunk, end - pos)
                enc = None if values else self.log.read_encoded(topic, part, pos, size)
                if enc is not None:
                    if not enc.batches:
                        break
                    enc = enc.below(end)
                    if not enc.batches:
                        break
                    n += len(enc)
                    pos = enc.next_offset()
                    continue
                cols = self.log.read_columns(topic, part, pos, size).below(end)
                if not len(cols):
                    break
                n += len(cols) if not values else sum(v is not None for v in cols.values)
                pos = cols.offsets[-1] + 1
            self._next[(topic, part)] = pos
        return n


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


class AlertEngine:
    """Evaluates ``rules`` for one hub (see the module docstring)."""

    def __init__(
        self,
        hub: Hub,
        rules: Sequence[AlertRule],
        webhooks: Sequence[Webhook] = (),
        principal: Principal = ALERTING_PRINCIPAL,
        mailboxes: Sequence[Mailbox] = (),
        rules_source: Callable[[], Sequence[AlertRule]] | None = None,
        clock: Callable[[], float] = time.time,
        fence: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.hub = hub
        self.fence = fence  # each append runs inside it (a leader's epoch: ``hub.ha.claim``)
        self.rules = tuple(rules)
        self.rules_source = rules_source  # re-read on every pass (governed rules change)
        self.webhooks = tuple(webhooks)
        self.mailboxes = tuple(mailboxes)
        self.principal = principal
        self._lock = threading.Lock()
        self._loop = Periodic("hub-alerts", self.evaluate, "alert evaluation failed", log)
        self.clock = clock  # wall seconds: windows are compared with records' log times
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, accepted, rejected)
        self._received = ReceivedCounts(hub.log)
        self._drift_at: deque[float] = deque()  # log times (s) of drift events seen
        self._drift_read: dict[int, int] = {}  # hub.models partition -> next offset
        self._verified: dict[str, tuple[float, Decimal]] = {}  # rule -> (ran at, problems)
        self.last_problem: dict[str, str] = {}  # rule -> the verification's first problem
        self._firing = {e["rule"]: e["alert_id"] for e in self._fold()}

    def _fold(self) -> list[dict[str, Any]]:
        """The firing alerts, folded from the topic (step 2)."""
        firing: dict[str, dict[str, Any]] = {}
        for e in self.events():
            if e["event_type"] == FIRED:
                firing[e["rule"]] = e
            elif firing.get(e["rule"], {}).get("alert_id") == e["alert_id"]:
                del firing[e["rule"]]
        return list(firing.values())

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Alert events in log order (the last ``limit``), as JSON objects."""
        log_ = self.hub.log
        if ALERTS_TOPIC not in {t.name for t in log_.topics()}:
            return []
        out: list[dict[str, Any]] = []
        for part, end in log_.end_offsets(ALERTS_TOPIC).items():
            offset = 0
            while offset < end:
                batch = self.hub.reader.read(ALERTS_TOPIC, part, offset, 1000)
                if not batch:
                    break
                for r in batch:
                    out.append(
                        {
                            **json.loads(json.dumps(r["value"], default=str)),
                            "event_type": r["headers"].get("ce_type", ""),
                            "event_id": r["headers"].get("ce_id", ""),
                            "timestamp_ms": r["timestamp_ms"],
                        }
                    )
                offset = batch[-1]["offset"] + 1
        out.sort(key=lambda e: (e["timestamp_ms"], e["event_id"]))
        return out if limit is None else out[-limit:]

    def measure(self, rule: AlertRule) -> Decimal:
        """The rule's value now (``domain.alerts`` says what each kind measures)."""
        if rule.kind == "metric" and rule.metric == "projection_lag":
            from hub.observability import projection_lags

            return Decimal(max(projection_lags(self.hub).values(), default=0))
        if rule.kind == "metric" and rule.metric == "quarantine_rate":
            return self._quarantine_rate(rule.window_s)
        if rule.kind == "drift":
            return self._drift_events(rule.window_s)
        if rule.kind == "ledger_verify":
            return self._verify_ledger(rule)
        table = self.hub.projections.query(self.hub.policy, self.principal, rule.sql, rule.store)
        rows = table.to_pylist()
        if not rows or not rows[0]:
            return Decimal(0)
        return _number(next(iter(rows[0].values())))

    def _quarantine_rate(self, window_s: int) -> Decimal:
        """Percent of the records received since the newest sample at least ``window_s`` old
        (or the oldest one) that went to quarantine."""
        now = self.clock()
        self._samples.append((now, *self._received.counts()))
        while len(self._samples) > 1 and self._samples[1][0] <= now - window_s:
            self._samples.popleft()
        _, accepted0, rejected0 = self._samples[0]
        _, accepted, rejected = self._samples[-1]
        received = (accepted - accepted0) + (rejected - rejected0)
        if received <= 0:
            return Decimal(0)
        return (Decimal(100) * (rejected - rejected0) / received).quantize(Decimal("0.01"))

    def _drift_events(self, window_s: int) -> Decimal:
        from ml.models import DRIFT, MODELS_TOPIC

        log_ = self.hub.log
        if MODELS_TOPIC in {t.name for t in log_.topics()}:
            for part, end in log_.end_offsets(MODELS_TOPIC).items():
                offset = self._drift_read.get(part, 0)
                while offset < end:
                    batch = self.hub.reader.read(MODELS_TOPIC, part, offset, 1000)
                    if not batch:
                        break
                    self._drift_at.extend(
                        r["timestamp_ms"] / 1000
                        for r in batch
                        if r["headers"].get("ce_type") == DRIFT
                    )
                    offset = batch[-1]["offset"] + 1
                self._drift_read[part] = offset
        since = self.clock() - window_s
        return Decimal(sum(1 for t in self._drift_at if t >= since))

    def _verify_ledger(self, rule: AlertRule) -> Decimal:
        """The number of problems an incremental verify finds; at most one run per
        ``window_s`` (the last result in between)."""
        from ledger.verify import load_verified, record_verification, save_verified, verify_ledger

        now = self.clock()
        last = self._verified.get(rule.name)
        if last is not None and now - last[0] < rule.window_s:
            return last[1]
        ledger, path = self.hub.ledger, self.hub.settings.ledger_verified_path
        since, _ = load_verified(ledger, path)
        covered = ledger.store.latest_checkpoint()
        report = verify_ledger(ledger, since=since)
        problems = Decimal(len(report.problems))
        if report.ok:
            full_at = int(now * 1000) if since is None else since.full_at_ms
            save_verified(ledger, path, report, covered, full_at, since)
            self.last_problem.pop(rule.name, None)
        else:
            first = report.first
            self.last_problem[rule.name] = "" if first is None else first.describe()
            self.hub.metrics.ledger_verifications.labels("failed").inc()
        if report.ok != (last is None or last[1] == 0) or not report.ok:
            # a failing run, and the first passing one after it, are CC7 evidence
            record_verification(ledger, self.principal, report.as_dict())
        self._verified[rule.name] = (now, problems)
        return problems

    def evaluate(self) -> list[dict[str, Any]]:
        """One pass over the rules; the events it appended (fired or resolved), delivered."""
        changes: list[dict[str, Any]] = []
        with self._lock:
            if self.rules_source is not None:
                self.rules = tuple(self.rules_source())
            for rule in self.rules:
                try:
                    value = self.measure(rule)
                except Exception:  # one broken rule must not stop the others
                    log.exception("alert rule %s could not be evaluated", rule.name)
                    continue
                firing = value > rule.threshold
                now = datetime.now(UTC).isoformat()
                if firing and rule.name not in self._firing:
                    alert_id = str(uuid7())
                    value_ = {
                        "alert_id": alert_id,
                        "rule": rule.name,
                        "severity": rule.severity,
                        "summary": rule.summary,
                        "value": str(value),
                        "threshold": str(rule.threshold),
                        "fired_at": now,
                    }
                    if rule.name in self.last_problem:
                        value_["summary"] += f" First problem: {self.last_problem[rule.name]}"
                    changes.append(self._append(FIRED, value_))
                    self._firing[rule.name] = alert_id
                elif not firing and rule.name in self._firing:
                    value_ = {
                        "alert_id": self._firing.pop(rule.name),
                        "rule": rule.name,
                        "value": str(value),
                        "resolved_at": now,
                    }
                    changes.append(self._append(RESOLVED, value_))
        for event in changes:  # 3. after the append
            for hook in self.webhooks:
                deliver(hook, event)
            for box in self.mailboxes:
                send_mail(box, event)
        return changes

    def _append(self, event_type: str, value: dict[str, Any]) -> dict[str, Any]:
        event_id = str(uuid7())
        with self.fence():  # refused (Fenced, NotLeader) when another process leads now
            self.hub.publisher.publish(
                ALERTS_TOPIC,
                [
                    OutgoingEvent(
                        value=value, event_type=event_type, key=value["rule"], event_id=event_id
                    )
                ],
                producer=self.principal.id,
                tenant=self.principal.tenant,
            )
        return {**value, "event_type": event_type, "event_id": event_id}

    def start(self, interval_s: float) -> None:
        self._loop.start(interval_s)

    def stop(self) -> None:
        self._loop.stop(timeout_s=30)


def engine_for(
    hub: Hub, fence: Callable[[], AbstractContextManager[object]] = nullcontext
) -> AlertEngine:
    """The rules in force (governed ``alerts.rules``, else the shipped ones), the webhook and
    the mailbox the settings name (if any); each append inside ``fence()``."""
    settings = hub.settings
    hooks = []
    if settings.alert_webhook_url:
        if settings.alert_webhook_secret_file is None:
            from core.errors import ConfigError

            raise ConfigError(
                "HUB_ALERT_WEBHOOK_URL is set without HUB_ALERT_WEBHOOK_SECRET_FILE: alerts are "
                "signed, so name the file holding the HMAC key."
            )
        secret = settings.alert_webhook_secret_file.read_bytes().strip()
        hooks.append(Webhook(settings.alert_webhook_url, secret))
    boxes = []
    if settings.alert_smtp_host:
        to = tuple(a.strip() for a in (settings.alert_email_to or "").split(",") if a.strip())
        if not to:
            from core.errors import ConfigError

            raise ConfigError(
                "HUB_ALERT_SMTP_HOST is set without HUB_ALERT_EMAIL_TO: name the addresses "
                "(comma-separated) that receive alert e-mail."
            )
        host, port = settings.alert_smtp_host, settings.alert_smtp_port
        boxes.append(Mailbox(host, port, settings.alert_email_from, to))
    from governance.alertrules import rules_in_force

    store = hub.config_changes.store

    def source() -> Sequence[AlertRule]:
        return rules_in_force(store)

    return AlertEngine(hub, source(), hooks, mailboxes=boxes, rules_source=source, fence=fence)
