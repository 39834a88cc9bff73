"""What both backends decide the same way, beside their statements: one place, so SQLite and PostgreSQL never drift.

A backend reads rows and writes them in its own dialect; what a bead may be,
what a claim refuses, how a close settles a run's result, what a delivery's
outcome adds to its escalation are decided here, on plain values.
"""

from __future__ import annotations

import json
import time

from gtcore.core.beads import FAILED, UNFINISHED, Bead, Drift, Report, Result, format_ref, settle
from gtcore.core.errors import GateMoved, GtError, NotFound, Refused, RunTaken
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.storage.contract import ANY_LAST_RUN, KINDS, OWED, PAUSED, RESUMED, Claim, Close, Delivery, Pause, Receipt, Take

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MAX_DRIFTS = 50  # different unanswered calls a run keeps (the same call again only counts up): a run's record stays small
LABEL_CAP = 255  # characters of a label: PostgreSQL's index refuses a long one, and both backends must keep the same labels
GREEN = (Result.SUCCESS, Result.CHECK_ONLY)  # results that say "all is well"

LATEST_PAUSES = f"SELECT max(id) FROM beads WHERE kind = 'event' AND title IN ('{PAUSED}', '{RESUMED}') GROUP BY plugin"
"""The ids of each plugin's latest pause or resume (plain SQL both dialects read alike)."""

STATS_COLUMNS = "plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary, failure_streak"
"""The columns of ``plugin_stats`` in :class:`~gtcore.model.PluginStats`'s order (both dialects)."""

FAILING = "('failure', 'timeout', 'abandoned')"
"""The results that lengthen a plugin's failure streak, unless a person stopped the run (see :func:`not_stopped`)."""

ENDED_WELL = "('success', 'warning', 'check-only')"
"""The results that end a failure streak: the plugin ran.  ``skipped``, and a run a person stopped, say nothing either way."""


def not_stopped(reason: str) -> str:
    """SQL: the run was not stopped by a person (``gtui kennel stop``, ctrl+k): its reason, the dialect's ``reason``
    expression, does not start ``stopped:``.  A deliberate stop neither lengthens nor ends a failure streak."""
    return f"coalesce({reason}, '') NOT LIKE 'stopped:%'"


def streak_backfill(reason: str) -> str:
    """SQL: each plugin's failure streak from the runs already on a ledger, in the order they were recorded: its runs
    that ended badly since the last that ended well (``reason``: the dialect's expression for ``b``'s reason)."""
    return ("UPDATE plugin_stats SET failure_streak = (SELECT count(*) FROM beads AS b WHERE b.kind = 'wisp'"
            f" AND b.plugin = plugin_stats.plugin AND b.status = 'closed' AND b.result IN {FAILING} AND {not_stopped(reason)}"
            " AND b.id > COALESCE((SELECT max(s.id) FROM beads AS s WHERE s.kind = 'wisp' AND s.plugin = plugin_stats.plugin"
            f" AND s.result IN {ENDED_WELL}), 0))")

PAUSES = f"SELECT plugin, title, body, created_at, data FROM beads WHERE id IN ({LATEST_PAUSES})"
"""Each plugin's latest pause or resume, with what :func:`pause_of` reads (both dialects)."""


def pause_of(title: str, body: str, at: float, data: str | dict[str, Any] | None) -> Pause | None:
    """A plugin's pause from its latest pause or resume record (``data``: SQLite's JSON text or PostgreSQL's jsonb), or None
    when that record is a resume."""
    if title != PAUSED:
        return None
    fields = json.loads(data) if isinstance(data, str) else (data or {})
    by = fields.get("by") if isinstance(fields, dict) else None
    return Pause(body or "", by if isinstance(by, str) else "", float(at))


LATEST_EVENTS = ("SELECT title, created_at, id FROM beads WHERE id IN"
                 " (SELECT max(id) FROM beads WHERE kind = 'event' AND plugin IS NULL GROUP BY title)")
"""Each town event's latest emission: its name, when, and its place in the ledger's order (the id), in both dialects."""


def check_bead(kind: str, plugin: str | None, result: str | None) -> None:
    """Refuse a bead the ledger must never hold (a programming error, said before anything is written)."""
    if kind not in KINDS:
        raise ValueError(f"unknown bead kind {kind}")
    if kind == "wisp" and (not plugin or not result):
        raise ValueError("a wisp records a plugin run: it needs a plugin and a result")


def stored(data: dict[str, Any]) -> dict[str, Any]:
    """A bead's data as kept: an escalation's pending deliveries are rows of their own table, never part of it."""
    return {key: value for key, value in data.items() if key != "pending"} if "pending" in data else data


def claim_labels(claim: Claim) -> tuple[list[str], list[str]]:
    """A claimed run's own labels (written by the backend's wisp trigger) and the plugin's extra ones."""
    own = ["type:plugin-run", f"plugin:{claim.plugin}", f"rig:{claim.rig}", "result:queued"]
    return own, [label for label in dict.fromkeys(claim.labels) if label not in own]


def refuse_moved(claim: Claim, latest: int | None) -> None:
    """:class:`GateMoved` when the plugin's last run is no longer the one the gate decision was based on."""
    if claim.expect_last_run != ANY_LAST_RUN and latest != claim.expect_last_run:
        last = format_ref("wisp", latest) if latest is not None else "none left"  # its runs pruned since the decision
        raise GateMoved(f"plugin {claim.plugin} was run meanwhile ({last})")


def check_final(request: Close) -> float:
    """Refuse a close to a result that is not final; when the close happens (``now``, else the clock)."""
    if request.result not in Result.__members__.values() or request.result in UNFINISHED:
        raise ValueError(f"not a final result: {request.result}")
    return time.time() if request.now is None else request.now


def taken(queued: Bead, take: Take, at: float, lease_until: float) -> Bead:
    """A queued run as a take leaves it: running since ``at``, with the kennel's data and its lease (until ``lease_until``
    on the ledger's clock); refused when it is not queued."""
    if queued.status != Result.QUEUED:
        raise RunTaken(f"{queued.ref} is {queued.status} ({queued.result}), no longer queued: another kennel took it, or it was stopped")
    labels = tuple(sorted({*queued.labels, "result:running"} - {"result:queued"}))
    data = {**queued.data, **take.data, "started_at": at, "lease_until": lease_until}
    return queued._replace(status="running", result="running", updated_at=at, data=data, labels=labels)


def stop_note(reason: str, at: float) -> dict[str, Any]:
    """What a stop request leaves on a running run for its kennel."""
    return {"reason": reason, "at": at}


STOPPED_QUEUED = "stopped before a kennel took it"


class Closed(Record):
    """A running wisp as its close leaves it: the result settled, the body, the merged data, its labels."""

    result: str
    body: str
    data: dict[str, Any]
    labels: tuple[str, ...]
    owed: bool  # the OWED label goes on with the close

    def bead(self, running: Bead, at: float) -> Bead:
        return running._replace(status="closed", result=self.result, body=self.body, closed_at=at, updated_at=at, data=self.data,
                                labels=self.labels)


def closed(running: Bead, request: Close) -> Closed:
    """How ``request`` closes ``running``: the exit's result, unless the plugin's own report (read in the same
    transaction) settles it otherwise (:func:`gtcore.model.settle`); the report's summary, else the request's, as body."""
    merged = {**running.data, **(request.data or {})}
    report = merged.get("report")
    final, note = settle(request.result, report)
    final, unanswered = drift_settled(final, merged)
    if report:
        merged["reported_result"] = report.get("result")
    if note or unanswered:
        merged["reason"] = "; ".join(filter(None, [merged.get("reason"), note, unanswered]))
    from_log = merged.pop("log_summary", "")
    body = (report or {}).get("summary") or request.summary or ""
    if not body and from_log:  # a failure that reported nothing is summed up by its last log line, marked as such
        body, merged["summary_from_log"] = from_log, True
    owed = request.owed and (final in FAILED or final == Result.ABANDONED)
    labels = {*running.labels, f"result:{final}"} - {"result:running", "result:queued"}  # as the backends' result trigger makes them
    return Closed(final, body, merged, tuple(sorted(labels | ({OWED} if owed else set()))), owed)


def reporting_run(bead: Bead | None, run_id: int, token: str, what: str) -> Bead:
    """The running wisp a plugin's ``what`` (its report, a drift note) is about, read in the writing transaction.

    Only the run's own processes know its token: ``what`` from anywhere
    else is refused rather than mixed in, and so is one after the run ended.
    """
    if bead is None or bead.kind != "wisp":
        raise NotFound(f"no such run: {format_ref('wisp', run_id)} is not on the ledger")
    if not token or bead.data.get("token") != token:
        raise GtError(f"{bead.ref} is not the run this process belongs to (its GTUI_RUN_TOKEN does not match): {what} refused")
    if bead.status != "running":
        raise GtError(f"{bead.ref} has ended ({bead.result}): a {what} after the run is not taken")
    return bead


def drift_settled(result: str, data: dict[str, Any]) -> tuple[str, str | None]:
    """A run that would end green although calls of it got no answer from gtui (exit 127, or refused) ends ``warning``, and
    why: the plugin could not do all it meant to, even when it silenced those calls (``|| true``)."""
    if result not in GREEN:
        return result, None
    calls = sum(note.calls for note in map(Drift.from_json, data.get("drift", ())) if note.level == "error")
    calls += (data.get("drift_more") or {}).get("error", 0)
    if not calls:
        return result, None
    return Result.WARNING, f"{calls} call(s) to gt or bd got no answer from gtui (see its problems): {result} became warning"


class Relabel(Record):
    """A running wisp as a report leaves it: its data, and the labels to add and to drop."""

    data: dict[str, Any]
    add: tuple[str, ...]
    drop: tuple[str, ...]


def reported(bead: Bead, report: Report, at: float) -> Relabel:
    """A running wisp with ``report`` kept: the last report wins, its labels too (they replace the previous report's, and
    its ``rig:`` the run's own, so the record has one rig label, as a Gas Town receipt has)."""
    brought, cut = recorder_labels(report)
    own_rig = f"rig:{bead.rig}"
    base = (set(bead.labels) - set(bead.data.get("report_labels", ()))) | {own_rig}
    if any(label.startswith("rig:") for label in brought):
        base.discard(own_rig)
    wanted = base | set(brought)
    kept = {**report.to_json(), "at": at, **({"labels_cut": cut} if cut else {})}
    data = {**bead.data, "report": kept, "report_labels": [label for label in brought if label not in base]}
    return Relabel(data, tuple(sorted(wanted - set(bead.labels))), tuple(sorted(set(bead.labels) - wanted)))


def recorder_labels(report: Report, own: Iterable[str] = ()) -> tuple[list[str], int]:
    """The labels a run's record takes from its recorder (never a ``result:`` one: the run's result owns it; none it has),
    each at most :data:`LABEL_CAP` characters, and how many had to be cut to fit."""
    have = set(own)
    labels = [label for label in dict.fromkeys(report.labels) if not label.startswith("result:")]
    capped = [capped_label(label) for label in labels]
    return [label for label in dict.fromkeys(capped) if label not in have], sum(len(label) > LABEL_CAP for label in labels)


def capped_label(label: str) -> str:
    """A label as either backend keeps it (see :data:`LABEL_CAP`)."""
    return label[:LABEL_CAP]


def with_drift(bead: Bead, drift: Drift, at: float) -> dict[str, Any]:
    """A running wisp's data with one more call it made in vain: counted on the same call's note, else a note of its own
    (at most :data:`MAX_DRIFTS`; past that only counted by level, in ``drift_more``, so no call is ever silent)."""
    notes = [dict(note) for note in bead.data.get("drift", [])]
    for note in notes:
        known = Drift.from_json(note)
        if known.same_call() == drift.same_call():
            note.update(count=known.calls + drift.calls, last_at=at)
            return {**bead.data, "drift": notes}
    if len(notes) < MAX_DRIFTS:
        return {**bead.data, "drift": [*notes, {**drift.to_json(), "at": at}]}
    more = dict(bead.data.get("drift_more") or {})
    more[drift.level] = more.get(drift.level, 0) + drift.calls
    return {**bead.data, "drift_more": more}


class Sameness(Record):
    """What makes a raise the same escalation as an unclosed one: a label it carries and, without a fingerprint, its subject."""

    label: str
    title: str | None

    @property
    def lock(self) -> str:
        """One name for everything that makes two raises the same (an advisory lock's key)."""
        return f"escalation:{self.label}\n{self.title or ''}"


def sameness(subject: str, source: str, fingerprint: str | None) -> Sameness:
    """With a fingerprint (Gas Town's label) that alone, whatever the subject and source; without one, gtui's own rule:
    the same source and subject."""
    if fingerprint:
        return Sameness(capped_label(fingerprint), None)
    return Sameness(capped_label(f"source:{source}"), subject)


class ReceiptWisp(Record):
    """What a receipt is written as: a wisp closed at ``at`` with its settled result, summary, data and extra labels."""

    result: str
    body: str
    data: dict[str, Any]
    labels: tuple[str, ...]
    at: float


def receipt_wisp(request: Receipt) -> ReceiptWisp:
    """How a receipt is kept: its result settled as a run's report is (a result gtui does not know is ``success``, said)."""
    for what, name in (("--plugin", request.plugin), ("--rig", request.rig)):
        if len(f"{what[2:]}:{name}") > LABEL_CAP:
            raise Refused(f"{what} is {len(name)} characters long: no {what[2:]} has a name that long (a receipt's"
                          f" {what[2:]}:NAME label is at most {LABEL_CAP} characters)", (what,))
    at = time.time() if request.now is None else request.now
    own = ("type:plugin-run", f"plugin:{request.plugin}", f"rig:{request.rig}")
    labels, cut = recorder_labels(request.report, own)
    report = {**request.report.to_json(), "at": at, **({"labels_cut": cut} if cut else {})}
    final, note = settle(Result.SUCCESS, report)
    data: dict[str, Any] = {"receipt": True, "actor": request.actor, "report": report, "reported_result": request.report.result}
    if note:
        data["reason"] = note
    return ReceiptWisp(final, request.report.summary, data, tuple(labels), at)


def with_outcome(escalation: Bead, delivery: Delivery, error: str | None, now: float) -> dict[str, Any]:
    """An escalation's data with one more delivery outcome in its history."""
    outcome = {"channel": delivery.channel, "ok": error is None, "error": error, "at": now}
    return {**escalation.data, "deliveries": [*escalation.data.get("deliveries", []), outcome]}
