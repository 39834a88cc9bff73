"""Escalations: ask a person for attention, once, and louder while nobody answers.

Life of an escalation (a bead of kind ``escalation``):

1. **Raised**: the bead is written first, with one pending delivery per action
   of its severity's route.  An open escalation with the same source and
   subject is not duplicated: its count and last-seen time go up instead.
   With a fingerprint (Gas Town's ``gt escalate --fingerprint KEY``), the
   fingerprint alone says what is the same: while an escalation carrying it
   is unclosed (open or acknowledged), another is suppressed (counted, never
   delivered); once it is closed, the next one is new.
2. **Delivered**: each pending delivery is leased (so two processes never
   send it twice), attempted, and its outcome recorded on the bead.  A failed
   one is retried by later patrols with exponential backoff, never dropped.
3. **Stale**: open, unacknowledged escalations older than ``stale_threshold``
   since their last (re)escalation go up one severity, at most
   ``max_reescalations`` times, and are delivered on their new route.
4. **Acknowledged** ones never re-escalate; **closed** ones carry a reason.
"""

from __future__ import annotations

import threading
import time
from functools import partial

from gtcore.core.beads import FAILED, SEVERITIES, UNCLOSED, Bead, EscalationStatus, Result, parse_ref, readable
from gtcore.core.clock import iso
from gtcore.core.errors import GtError, Problem, SettingsError, brief
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.core.safe_text import one_line
from gtcore.escalation.settings import EscalationSettings, load_escalation_settings
from gtcore.storage.contract import ROUTE_LATER, Delivery, EscalationChange, Ledger
from gtcore.town.layout import Town

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Mapping
    from concurrent.futures import ThreadPoolExecutor
    from typing import Any

    from gtcore.escalation.delivery import DeliveryContext
    from gtcore.plugins.discovery import PluginSet

LEASE_SECONDS = 120.0
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0
MAX_PARALLEL_DELIVERIES = 4
DELIVERY_GRACE = 1.0  # past the deadline, for the outcome to be written
OWED_GRACE = 60.0  # seconds a failed run's own process has to raise its escalation before a patrol does


class Escalation(Record):
    """An escalation as read from its bead."""

    bead: Bead

    @property
    def id(self) -> int:
        return self.bead.id

    @property
    def ref(self) -> str:
        return self.bead.ref

    @property
    def subject(self) -> str:
        return self.bead.title

    @property
    def status(self) -> str:
        return self.bead.status

    @property
    def severity(self) -> str:
        return self.bead.data["severity"]

    @property
    def original_severity(self) -> str:
        return self.bead.data.get("original_severity", self.severity)

    @property
    def source(self) -> str:
        return self.bead.data.get("source", "")

    @property
    def fingerprint(self) -> str | None:
        """Gas Town's duplicate-suppression label (``escalation-fp:...``), when it was raised with a fingerprint."""
        return next((label for label in self.bead.labels if label.startswith(FINGERPRINT_PREFIX)), None)

    @property
    def occurrences(self) -> int:
        return self.bead.data.get("count", 1)

    @property
    def reescalations(self) -> int:
        return self.bead.data.get("reescalations", 0)

    @property
    def recovered_at(self) -> float | None:
        return self.bead.data.get("recovered_at")

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        return self.bead.data.get("deliveries", [])

    @property
    def failing_channels(self) -> list[str]:
        """Channels whose last attempt failed and that wait for a retry."""
        return [item["channel"] for item in self.failing_deliveries()]

    def failing_deliveries(self) -> list[dict[str, Any]]:
        """Pending deliveries that failed at least once, each with its last error."""
        errors = {item["channel"]: item.get("error") for item in self.deliveries if not item.get("ok")}
        return [{**item, "error": errors.get(item["channel"])} for item in self.bead.data.get("pending", []) if item.get("attempts", 0) > 0]

    def is_stale(self, settings: EscalationSettings, now: float) -> bool:
        """Open, unacknowledged, and quiet for a whole threshold since its last (re)escalation."""
        last = self.bead.data.get("last_escalated_at", self.bead.created_at)
        return self.status == "open" and now - last >= settings.stale_threshold.seconds

    def notes(self, settings: EscalationSettings, now: float) -> list[str]:
        """What a listing should point out beside the subject."""
        notes = ["stale"] if self.is_stale(settings, now) else []
        if self.failing_channels:
            notes.append("delivery failed: " + ", ".join(self.failing_channels))
        if self.recovered_at:
            notes.append("recovered")
        return notes

    def to_json(self, settings: EscalationSettings, now: float) -> dict[str, Any]:
        return {
            "id": self.ref,
            "subject": self.subject,
            "body": self.bead.body,
            "severity": self.severity,
            "original_severity": self.original_severity,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "fingerprint_key": self.bead.data.get("fingerprint_key"),
            "related": self.bead.data.get("related"),
            "status": self.status,
            "count": self.occurrences,
            "created_at": iso(self.bead.created_at),
            "last_seen_at": iso(self.bead.data.get("last_seen_at")),
            "reescalations": self.reescalations,
            "stale": self.is_stale(settings, now),
            "deliveries": [{**item, "at": iso(item["at"])} for item in self.deliveries],
            "pending": [item["channel"] for item in self.bead.data.get("pending", [])],
            "acked_at": iso(self.bead.data.get("acked_at")),
            "closed_at": iso(self.bead.closed_at),
            "close_reason": self.bead.data.get("close_reason"),
            "recovered_at": iso(self.recovered_at),
            "history": [{**item, "at": iso(item["at"])} for item in self.bead.data.get("history", [])],
        }


FINGERPRINT_PREFIX = "escalation-fp:"
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
"""What Go's ``strings.TrimSpace`` trims (``unicode.IsSpace``): not all that Python's ``str.strip`` does."""


def fingerprint_key(key: str | None) -> str | None:
    """The key as Gas Town reads it: trimmed as Go's ``strings.TrimSpace`` trims (:data:`GO_SPACE`); a blank key is none."""
    return (key or "").strip(GO_SPACE) or None


def fingerprint_label(key: str | None) -> str | None:
    """Gas Town's label for a fingerprint: ``escalation-fp:`` and the first 6 bytes of the SHA-256 of the trimmed key, in hex.

    The same key gives the same label in Gas Town and in gtui, so an
    escalation either raised is suppressed by the other's; a blank key is
    none.  The key's bytes are hashed as given, even those that are not UTF-8.
    """
    trimmed = fingerprint_key(key)
    return None if trimmed is None else _label_of(trimmed)


def _label_of(trimmed: str) -> str:
    from gtcore.core.digests import sha256_hex

    return FINGERPRINT_PREFIX + sha256_hex(trimmed.encode("utf-8", "surrogateescape"))[:12]


def _history(data: dict[str, Any], now: float, event: str, detail: str = "") -> None:
    data.setdefault("history", []).append({"at": now, "event": event, "detail": detail})


def _queue(data: dict[str, Any], actions: tuple[str, ...], severity: str, now: float,
           skipped: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The deliveries to queue for every non-bead action (bead is the record itself), as (channel, severity).

    An action the settings cannot deliver (a missing contact, an unknown
    action) is recorded at once in ``data`` as skipped, with why, and never
    retried.  A channel and severity already waiting is not queued twice
    (the storage keeps one row per pair): the waiting one carries the
    message, since it reads the escalation when it is sent.
    """
    queue = []
    for action in actions:
        if action in skipped:
            data.setdefault("deliveries", []).append(
                {"channel": action, "ok": False, "skipped": True, "error": skipped[action], "at": now})
        elif action != "bead":
            queue.append((action, severity))
    return tuple(queue)


class _Raising(Record):
    """One raise, as checked: what its bead says if it is new, or what it adds to the one it joins."""

    subject: str
    severity: str
    body: str
    source: str
    now: float
    related: str | None
    key: str | None  # the fingerprint, trimmed (None: raised without one)
    route: tuple[str, ...]
    skipped: Mapping[str, str]
    settings_error: str | None

    @property
    def label(self) -> str | None:
        return None if self.key is None else _label_of(self.key)

    def labels(self) -> list[str]:
        return ["gt:escalation", f"severity:{self.severity}", f"source:{self.source}", *([self.label] if self.label else [])]


def _fresh(raising: _Raising) -> EscalationChange:
    """A new escalation: delivered on its route."""
    now = raising.now
    data: dict[str, Any] = {
        "severity": raising.severity, "original_severity": raising.severity, "source": raising.source, "count": 1,
        "last_seen_at": now, "last_escalated_at": now, "reescalations": 0,
        "deliveries": [{"channel": "bead", "ok": True, "error": None, "at": now}],
        **({"related": raising.related} if raising.related else {}),
        **({"fingerprint_key": readable(raising.key)} if raising.key is not None else {}),
    }
    _history(data, now, "raised", raising.settings_error or f"route {', '.join(raising.route)}")
    return EscalationChange(data, body=raising.body, queue=_queue(data, raising.route, raising.severity, now, raising.skipped))


def _again(raising: _Raising, existing: Bead) -> EscalationChange:
    """gtui's own rule, without a fingerprint: the same source and subject again is counted; after a recovery, delivered again."""
    now, data = raising.now, dict(existing.data)
    data["count"] = data.get("count", 1) + 1
    data["last_seen_at"] = now
    if raising.related:
        data["related"] = raising.related
    if data.get("recovered_at") is None:
        _history(data, now, "seen again", f"count {data['count']}")
        return EscalationChange(data)
    data["recovered_at"] = None
    _history(data, now, "failing again", "a new streak after recovery: delivered again")
    queue = _queue(data, raising.route, data["severity"], now, raising.skipped)
    # It is delivered again: say what fails now, not what failed before the recovery.
    return EscalationChange(data, body=raising.body or None, queue=queue)


def _suppressed(raising: _Raising, existing: Bead) -> EscalationChange:
    """Gas Town's rule: while one with this fingerprint is unclosed, another is suppressed (counted, never delivered)."""
    data = dict(existing.data)
    data.update(count=data.get("count", 1) + 1, last_seen_at=raising.now, recovered_at=None,
                **({"related": raising.related} if raising.related else {}))
    _history(data, raising.now, "duplicate suppressed", f"{raising.label}: {raising.subject}")
    return EscalationChange(data)


class Escalations:
    """The escalation service of one town."""

    def __init__(self, town: Town, ledger: Ledger, *, delivery_timeout: float = 10.0) -> None:
        self.town = town
        self.ledger = ledger
        self.delivery_timeout = delivery_timeout
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def settings(self) -> EscalationSettings:
        """Read fresh each time: an edited file applies without a restart."""
        return load_escalation_settings(self.town.settings_dir)

    # -- raising ----------------------------------------------------------------------

    def raise_(self, subject: str, severity: str, *, body: str = "", source: str = "cli", now: float,
               wait: bool = True, related: str | None = None, fingerprint: str | None = None) -> tuple[Escalation, bool]:
        """Raise (or count again) an escalation and start its deliveries now (``wait``: for at most one deadline).

        Returns the escalation and whether it is new (not new with a
        ``fingerprint``: suppressed).  When the settings are broken the bead
        is still written, its route resolved when they are fixed.
        """
        raising = self._raising(subject, severity, body, source, now, related, fingerprint_key(fingerprint))
        again = _suppressed if raising.label else _again
        bead, created = self.ledger.raise_escalation(raising.subject, source, fresh=partial(_fresh, raising),
                                                     again=partial(again, raising), labels=raising.labels(), now=now,
                                                     fingerprint=raising.label)
        self.deliver_due(now, only=bead.id, wait=wait)
        return self.get(bead.ref), created

    def _raising(self, subject: str, severity: str, body: str, source: str, now: float, related: str | None,
                 key: str | None) -> _Raising:
        """One raise checked and with its route read (a broken settings file holds the route until it is fixed)."""
        severity = severity.lower()  # Gas Town's plugins write -s MEDIUM
        if severity not in SEVERITIES:
            raise GtError(f"severity {brief(severity)} is not one of {', '.join(SEVERITIES)}")
        subject = one_line(subject)
        if not subject:
            raise GtError("an escalation needs a subject")
        try:
            settings = self.settings()
            route, skipped, settings_error = settings.routes[severity], settings.skipped, None
        except SettingsError as exc:
            route, skipped, settings_error = (ROUTE_LATER,), {}, str(exc)
        return _Raising(subject, severity, body, source, now, related, key, route, skipped, settings_error)

    # -- delivery ---------------------------------------------------------------------

    def deliver_due(self, now: float, *, only: int | None = None, wait: bool = True) -> int:
        """Start every pending delivery that is due, side by side, on a bounded pool.

        Each runs under one deadline, so with ``wait`` this returns within
        about one deadline whatever the channels do; without it, the caller
        (a patrol) goes on and the outcomes are recorded as they come.
        Returns how many deliveries were started.
        """
        try:
            settings = self.settings()
        except SettingsError:
            return 0
        def route(escalation: Bead, severity: str) -> EscalationChange:
            data = dict(escalation.data)
            return EscalationChange(data, queue=_queue(data, settings.routes[severity], severity, now, settings.skipped))

        claimed = self.ledger.lease_deliveries(now, LEASE_SECONDS, route=route, only=only)
        if not claimed:
            return 0
        from gtcore.escalation.delivery import DeliveryContext  # only when something is to be sent
        context = DeliveryContext(self.ledger, self.town.root / "logs" / "escalations.log", settings.contacts, self.delivery_timeout)
        from concurrent.futures import wait as wait_all

        futures = [self._deliveries().submit(self._deliver_one, delivery, context, now) for delivery in claimed]
        if wait:
            wait_all(futures, timeout=self.delivery_timeout + DELIVERY_GRACE)
        return len(futures)

    def _deliveries(self) -> ThreadPoolExecutor:
        from concurrent.futures import ThreadPoolExecutor

        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL_DELIVERIES, thread_name_prefix="delivery")
            return self._pool

    def settle(self, timeout: float | None = None) -> None:
        """Wait (at most one deadline and a little) for deliveries still on their way, e.g. before a command exits."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            done = threading.Event()

            def shut_down() -> None:
                pool.shutdown(wait=True)
                done.set()

            threading.Thread(target=shut_down, daemon=True).start()
            done.wait(self.delivery_timeout + DELIVERY_GRACE if timeout is None else timeout)

    def _deliver_one(self, delivery: Delivery, context: DeliveryContext, now: float) -> None:
        """Send one leased delivery and record its outcome; any failure costs this delivery (retried), nothing else."""
        from gtcore.escalation.delivery import DeliveryError, Message, channel_for

        error, asked = None, None
        try:
            bead = self.ledger.get(delivery.escalation_id, "escalation")
            message = Message(bead.ref, delivery.severity, bead.title, bead.body, str(bead.data.get("source")), now, bead.created_at)
            channel = channel_for(delivery.channel)
            if channel is not None:
                channel(message, context)
        except DeliveryError as exc:
            error, asked = str(exc), exc.retry_after
        except GtError as exc:
            error = f"{delivery.channel}: {exc}"
        except Exception as exc:  # a channel's own bug must cost one delivery (retried), never the patrol
            error = f"{delivery.channel} failed unexpectedly (a bug in gtui): {type(exc).__name__}: {brief(exc)}"
        backoff = min(FIRST_RETRY_SECONDS * 2 ** delivery.attempts, MAX_RETRY_SECONDS)
        retry_at = None if error is None else now + (asked if asked is not None else backoff)  # the other end's word first
        self.ledger.record_delivery(delivery, error, now=now, retry_at=retry_at)

    # -- lifecycle --------------------------------------------------------------------

    def get(self, ref: str) -> Escalation:
        return Escalation(self.ledger.get(parse_ref(ref, "escalation"), "escalation"))

    def list(self, *, include_closed: bool = False, severity: str | None = None, stale_only: bool = False,
             now: float, settings: EscalationSettings | None = None) -> list[Escalation]:
        statuses = None if include_closed else UNCLOSED
        found = [Escalation(bead) for bead in self.ledger.beads("escalation", status=statuses)]
        if severity is not None:
            found = [item for item in found if item.severity == severity]
        if stale_only:
            found = [item for item in found if item.is_stale(settings or self.settings(), now)]
        return found

    def delivery_problems(self, now: float) -> builtins.list[Problem]:
        """A problem per delivery whose last attempt failed: a person is not reached, and the Deacon should know."""
        path = str(self.town.settings_dir / "escalation.json")
        return [Problem(path, f"contacts for {item['channel']}",
                        f"{escalation.ref}: delivery failed {item.get('attempts', 0)} time(s), retried later: {item.get('error') or '?'}")
                for escalation in self.list(now=now) for item in escalation.failing_deliveries()]

    def _change(self, ref: str, now: float, change: Callable[[Bead, dict[str, Any]], EscalationChange]) -> Escalation:
        """Apply ``change`` (given the escalation and a copy of its data to edit) in one transaction."""
        escalation_id = parse_ref(ref, "escalation")
        return Escalation(self.ledger.change_escalation(escalation_id, lambda current: change(current, dict(current.data)), now=now))

    def ack(self, ref: str, *, now: float, by: str = "operator") -> Escalation:
        def change(bead: Bead, data: dict[str, Any]) -> EscalationChange:
            if bead.status == EscalationStatus.CLOSED:
                raise GtError(f"escalation {bead.ref} is closed; nothing to acknowledge")
            if bead.status != EscalationStatus.ACKED:
                data["acked_at"] = now
                _history(data, now, "acknowledged", f"by {by}")
            return EscalationChange(data, status=EscalationStatus.ACKED)

        return self._change(ref, now, change)

    def close(self, ref: str, *, reason: str, now: float) -> Escalation:
        if not reason.strip():
            raise GtError("closing an escalation needs a reason (--reason)")

        def change(bead: Bead, data: dict[str, Any]) -> EscalationChange:
            if bead.status == EscalationStatus.CLOSED:
                raise GtError(f"escalation {bead.ref} is already closed")
            data["close_reason"] = one_line(reason)
            for item in data.get("pending", []):
                data.setdefault("deliveries", []).append(
                    {"channel": item["channel"], "ok": False, "error": "not sent: closed before delivery", "at": now})
            _history(data, now, "closed", one_line(reason))
            return EscalationChange(data, status=EscalationStatus.CLOSED, drop_pending=True)

        return self._change(ref, now, change)

    def note(self, ref: str, *, event: str, detail: str, now: float, recovered: bool = False,
             failing_run: str | None = None) -> Escalation:
        def change(bead: Bead, data: dict[str, Any]) -> EscalationChange:
            _history(data, now, event, detail)
            if recovered:
                data["recovered_at"] = now
            if failing_run:
                data["failing_run"] = failing_run
            return EscalationChange(data)

        return self._change(ref, now, change)

    def reescalate_stale(self, now: float, *, dry_run: bool = False, wait: bool = True) -> builtins.list[tuple[Escalation, str, str]]:
        """Move stale escalations up one severity; returns (escalation, old, new) per move."""
        settings = self.settings()
        moves = []
        for escalation in self.list(now=now, settings=settings):
            if not escalation.is_stale(settings, now):
                continue
            if escalation.reescalations >= settings.max_reescalations or escalation.severity == SEVERITIES[-1]:
                continue
            old = escalation.severity
            new = SEVERITIES[SEVERITIES.index(old) + 1]
            if not dry_run:
                self._bump(escalation, old, new, settings, now)
            moves.append((escalation, old, new))
        if moves and not dry_run:
            self.deliver_due(now, wait=wait)
        return moves

    def _bump(self, escalation: Escalation, old: str, new: str, settings: EscalationSettings, now: float) -> None:
        def change(bead: Bead) -> EscalationChange | None:
            if bead.status != EscalationStatus.OPEN or bead.data.get("severity") != old:
                return None  # acknowledged, closed or already moved by another process meanwhile
            data = dict(bead.data)
            data.update(severity=new, reescalations=data.get("reescalations", 0) + 1, last_escalated_at=now)
            _history(data, now, "re-escalated", f"{old} -> {new}: unacknowledged for {settings.stale_threshold}")
            queue = _queue(data, settings.routes[new], new, now, settings.skipped)
            return EscalationChange(data, labels={"severity": new}, queue=queue)

        self.ledger.change_escalation(escalation.id, change, now=now)

    # -- plugins ----------------------------------------------------------------------

    def after_run(self, name: str, severity: str, notify: bool, run: Bead) -> Callable[[], Escalation | None] | None:
        """What a finished run of plugin ``name`` calls for: None when nothing (decided without the ledger), else the step.

        A failure of a plugin that notifies on failure is escalated (once per
        streak); a success that may end a failure streak notes the recovery.
        The step is taken off the dogs' loop (see :class:`gtcore.dogs.pool.DogPool`).
        """
        if run.result in FAILED and notify:
            return partial(self.plugin_run_failed, name, severity, run)
        if run.result == Result.SUCCESS and _may_end_a_streak(run):
            return partial(self.plugin_run_succeeded, name, run)
        return None

    def plugin_run_failed(self, name: str, severity: str, run: Bead, now: float | None = None) -> Escalation:
        """Escalate a failing plugin once per failure streak.

        A plugin that escalated by itself during the failing run (``gt escalate``
        inside the run) has said what is wrong in its own words: the failure is
        noted on that escalation, and gtui raises none of its own — one
        escalation per failure streak, never two.
        """
        from gtcore.dogs.output import log_tail

        stamp = time.time() if now is None else now
        source, subject = f"plugin:{name}", f"plugin {name} is failing"
        reason = run.data.get("reason") or run.result
        own = [item for item in self._open_from(source) if item.bead.data.get("related") == run.ref]
        if own:
            escalation = self.note(own[0].ref, event="run failed", detail=f"{run.ref} ended {run.result}: {reason}", now=stamp,
                                   failing_run=run.ref)
        else:
            body = f"Run {run.ref} ended {run.result}: {reason}.\n\nLast lines of its log:\n{log_tail(run.data.get('log'))}".rstrip()
            escalation, _ = self.raise_(subject, severity, body=body, source=source, now=stamp, wait=False, related=run.ref)
        self.ledger.settle_follow_up(run.id, escalation.ref)
        return escalation

    def pay_owed(self, plugins: PluginSet, now: float) -> builtins.list[Problem]:
        """Raise the escalations failed runs still owe: their raising failed (a refused write) or their process died first.

        A run is owed from the commit that closes it (:class:`Close` ``owed``)
        until its escalation is raised, so no failure goes unescalated, whatever
        happened after its close.  Runs closed less than :data:`OWED_GRACE` ago
        are left to the process that ran them.  One that cannot be paid stays
        owed for the next patrol and is a problem of this one.
        """
        problems = []
        for run in self.ledger.owed_follow_ups():
            if run.closed_at is not None and now - run.closed_at < OWED_GRACE:
                continue
            plugin = plugins.get(run.plugin or "")
            try:
                if plugin is None or not plugin.execution.notify_on_failure:
                    self.ledger.settle_follow_up(run.id)  # the plugin is gone or no longer asks: nothing is owed any more
                else:
                    self.plugin_run_failed(plugin.name, plugin.execution.severity, run, now=now)
            except Exception as exc:  # this run's escalation only: the others are still paid
                problems.append(Problem(str(self.town.root), None, f"{run.ref} failed and its escalation could not be raised"
                                        f" (retried by the next patrol): {type(exc).__name__}: {brief(exc)}"))
        return problems

    def plugin_run_succeeded(self, name: str, run: Bead, now: float | None = None) -> Escalation | None:
        """Note the recovery on the open escalation about the plugin's failures, if there is one."""
        source, subject = f"plugin:{name}", f"plugin {name} is failing"
        if not self.ledger.any_bead("escalation", status=UNCLOSED, label=f"source:{source}"):
            return None
        for escalation in self._open_from(source):
            about_failure = escalation.subject == subject or escalation.bead.data.get("failing_run")
            if about_failure and escalation.recovered_at is None:
                return self.note(escalation.ref, event="recovered", detail=f"{run.ref} succeeded", now=time.time() if now is None else now,
                                 recovered=True)
        return None

    def _open_from(self, source: str) -> builtins.list[Escalation]:
        return [Escalation(bead) for bead in self.ledger.beads("escalation", status=UNCLOSED, label=f"source:{source}")]


def _may_end_a_streak(run: Bead) -> bool:
    """Whether a successful run may follow failures (so a failure escalation may wait for its recovery note).

    A success after a success, or a plugin's first run, cannot: the ledger is
    not asked (most runs of a busy town).  A run recorded without
    ``previous_result`` (an older gtui) is asked about.
    """
    if "previous_result" not in run.data:
        return True
    return run.data["previous_result"] not in (None, Result.SUCCESS)
