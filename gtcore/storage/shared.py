"""What both backends decide the same way, beside their statements: one place, so SQLite and PostgreSQL never drift.

A backend reads rows and writes them in its own dialect; what a bead may be,
what a claim refuses, how a close settles a run's result, what a delivery's
outcome adds to its escalation are decided here, on plain values.
"""

from __future__ import annotations

import time

from gtcore.errors import GateMoved, GtError, NotFound, RunTaken
from gtcore.model import FAILED, UNFINISHED, Bead, Report, Result, format_ref, settle
from gtcore.records import TYPE_CHECKING, Record
from gtcore.storage.contract import ANY_LAST_RUN, KINDS, OWED, PAUSED, RESUMED, Claim, Close, Delivery, Receipt, Take

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MAX_DRIFT = 20  # drift notes a run keeps: a plugin calling one unanswered verb in a loop must not grow its wisp without end

LATEST_PAUSES = f"SELECT max(id) FROM beads WHERE kind = 'event' AND title IN ('{PAUSED}', '{RESUMED}') GROUP BY plugin"
"""The ids of each plugin's latest pause or resume (plain SQL both dialects read alike)."""

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
        raise GateMoved(f"plugin {claim.plugin} was run meanwhile ({format_ref('wisp', latest)})")


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
    if report:
        merged["reported_result"] = report.get("result")
    if note:
        merged["reason"] = "; ".join(filter(None, [merged.get("reason"), note]))
    body = (report or {}).get("summary") or request.summary or ""
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


def reported(bead: Bead, report: Report, at: float) -> tuple[dict[str, Any], list[str]]:
    """A running wisp's data with ``report`` kept (the last report wins), and the recorder's labels it takes on."""
    return {**bead.data, "report": {**report.to_json(), "at": at}}, recorder_labels(report, bead.labels)


def recorder_labels(report: Report, own: Iterable[str]) -> list[str]:
    """The labels a run's record takes from its recorder: never a ``result:`` one (the run's result owns it), none it has."""
    have = set(own)
    return [label for label in dict.fromkeys(report.labels) if not label.startswith("result:") and label not in have]


def with_drift(bead: Bead, drift: dict[str, Any], at: float) -> dict[str, Any]:
    """A running wisp's data with one more drift note (at most :data:`MAX_DRIFT`, the first ones, are kept)."""
    notes = list(bead.data.get("drift", []))
    if len(notes) < MAX_DRIFT:
        notes.append({**drift, "at": at})
    return {**bead.data, "drift": notes}


class ReceiptWisp(Record):
    """What a receipt is written as: a wisp closed at ``at`` with its settled result, summary, data and extra labels."""

    result: str
    body: str
    data: dict[str, Any]
    labels: tuple[str, ...]
    at: float


def receipt_wisp(request: Receipt) -> ReceiptWisp:
    """How a receipt is kept: its result settled as a run's report is (a result gtui does not know is ``success``, said)."""
    at = time.time() if request.now is None else request.now
    report = {**request.report.to_json(), "at": at}
    final, note = settle(Result.SUCCESS, report)
    data: dict[str, Any] = {"receipt": True, "actor": request.actor, "report": report, "reported_result": request.report.result}
    if note:
        data["reason"] = note
    own = ("type:plugin-run", f"plugin:{request.plugin}", f"rig:{request.rig}")
    return ReceiptWisp(final, request.report.summary, data, tuple(recorder_labels(request.report, own)), at)


def with_outcome(escalation: Bead, delivery: Delivery, error: str | None, now: float) -> dict[str, Any]:
    """An escalation's data with one more delivery outcome in its history."""
    outcome = {"channel": delivery.channel, "ok": error is None, "error": error, "at": now}
    return {**escalation.data, "deliveries": [*escalation.data.get("deliveries", []), outcome]}
