"""The storage contract: every operation the engine asks of its ledger, in the engine's words.

The engine never sees SQL or a connection.  It asks for domain operations —
claim a run, close it, the gate facts of every plugin in one call, lease the
deliveries that are due, squash a day into its digest — and a backend
answers them in one transaction each.  :class:`Ledger` is that contract; the
SQLite file of one host (:mod:`gtcore.storage.sqlite`) is its first backend.

A backend implements the abstract primitives; the operations built on them
(a town event is a closed ``event`` bead, a pause is an event about a
plugin) are written here once, for every backend.

Where an operation must decide inside the transaction (raising an
escalation counts an open duplicate; a digest merges into the day's bead),
the caller passes a pure function of what was read, and the backend applies
what it returns: the decision stays in the engine's module, the statements
in the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from gtcore.core.beads import MAX_ID, NOUNS, PREFIX, Bead, Drift, PluginStats, Report, format_ref, parse_ref
from gtcore.core.errors import NotFound
from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

KINDS = ("wisp", "digest", "escalation", "mail", "event", "note")
IN_FLIGHT = ("queued", "running")  # the statuses of a run claimed and not yet closed: one per plugin at a time
ANY_LAST_RUN = -1  # a claim that does not care which run came last
PAUSED, RESUMED = "plugin.paused", "plugin.resumed"
OWED = "follow-up:owed"  # the label of a failed run whose escalation is not yet raised (see Close.owed)
ROUTE_LATER = "@route"  # the channel of a delivery whose route could not be read yet (broken settings)


class EventMark(Record):
    """A town event's latest emission: when (for people), and its place in the ledger's order (what gates compare)."""

    at: float
    seq: int


class Pause(Record):
    """An operator's pause of a plugin (see :meth:`Ledger.set_paused`): why, who, and when on the writer's clock."""

    reason: str
    by: str
    at: float


class LedgerFacts:
    """What the gates need from the ledger (see :meth:`Ledger.gate_facts`)."""

    __slots__ = ("events", "paused", "pauses", "running", "summary")

    def __init__(self) -> None:
        self.summary: dict[str, PluginStats] = {}
        self.running: dict[str, Bead] = {}  # plugin -> its run in flight, queued or running (data and ids, no labels)
        self.pauses: dict[str, Pause] = {}  # plugin -> the operator's pause
        self.paused: dict[str, str] = {}  # plugin -> the operator's reason (what the gates read)
        self.events: dict[str, EventMark] = {}  # town event -> its latest emission

    def add_pause(self, plugin: str, pause: Pause | None) -> None:
        if pause is not None:
            self.pauses[plugin] = pause
            self.paused[plugin] = pause.reason


class Claim(Record):
    """A run to record as ``queued`` for a kennel to take (see :meth:`Ledger.claim_run`); the ledger stamps it
    ``data["queued_at"]`` on its own clock, what ``queue_timeout`` is judged by."""

    plugin: str
    rig: str
    labels: tuple[str, ...] = ()
    data: dict[str, Any] | None = None
    now: float | None = None
    expect_last_run: int | None = ANY_LAST_RUN


class Take(Record):
    """A queued run a kennel takes: it becomes ``running``, with ``data`` (its owner, dog, token) merged in, and a lease of
    ``lease`` seconds on the ledger's own clock (``data["lease_until"]``: no host's wall clock decides it)."""

    run_id: int
    data: dict[str, Any]
    now: float | None = None
    lease: float = 30.0


class QueuedRun(Record):
    """A run waiting for a kennel, as the queue shows it: what a kennel needs to choose it, and no more."""

    id: int
    plugin: str
    rig: str

    @property
    def ref(self) -> str:
        return format_ref("wisp", self.id)


class RunState(Record):
    """Where a run is, for whoever waits on it: its status, when it closed, and whether its escalation is still owed."""

    id: int
    status: str
    closed_at: float | None
    owed: bool


class Close(Record):
    """A run in flight (queued or running) to close with its result (see :meth:`Ledger.close_run`)."""

    run_id: int
    result: str
    data: dict[str, Any] | None = None
    now: float | None = None
    summary: str | None = None
    owed: bool = False  # a failure owes an escalation: the wisp carries OWED, in the same commit, until it is raised
    log: str | None = None  # the run's capped log, kept on a ledger several hosts share (see Ledger.shares_logs)


class Receipt(Record):
    """A plugin run recorded outside any run of it (Gas Town's ``gt plugin record-run``): a wisp closed at once.

    History and the gates count it as a run of ``plugin`` (its start is
    ``now``), as Gas Town's cooldown counts its receipts; ``report`` is what
    the recorder said (result, title as summary, description as detail, labels).
    """

    plugin: str
    rig: str
    report: Report
    actor: str = ""
    now: float | None = None


class EscalationChange(Record):
    """What to write on an escalation: its data, and optionally status, body, labels and deliveries.

    ``labels`` maps a key to its new value (``{"severity": "high"}`` replaces
    every ``severity:*`` label); ``queue`` holds (channel, severity) pairs
    to deliver from ``now`` on (a pair already waiting is not queued twice);
    ``drop_pending`` discards every delivery still waiting (a closed
    escalation sends nothing more).
    """

    data: dict[str, Any]
    status: str | None = None
    body: str | None = None
    labels: dict[str, str] | None = None
    queue: tuple[tuple[str, str], ...] = ()
    drop_pending: bool = False


class Delivery(Record):
    """One pending delivery of an escalation, as leased: sent by the one process that leased it."""

    escalation_id: int
    channel: str
    severity: str
    attempts: int
    next_at: float


class FinishedRun(Record):
    """What a digest keeps of one run: a day can hold 100,000 runs, so no whole :class:`Bead` is built."""

    id: int
    created_at: float
    plugin: str | None
    result: str | None
    duration: Any
    reason: Any
    log: Any

    @property
    def ref(self) -> str:
        return format_ref("wisp", self.id)


class DigestDraft(Record):
    """The digest bead of a day as it should read after a squash."""

    data: dict[str, Any]
    body: str
    labels: tuple[str, ...]


class Squash(Record):
    """What :meth:`Ledger.squash_day` found and did: the runs, the day's digest before, and after (None on a dry run)."""

    runs: list[FinishedRun]
    existing: Bead | None
    digest: Bead | None


class KennelBeat(Record):
    """A kennel as the ledger knows it: its host and process, since when, its last heartbeat (the ledger's clock), what it said."""

    host: str
    pid: int
    started_at: float
    beat_at: float
    data: dict[str, Any]


class LedgerDump(Record):
    """A batch of what a ledger holds, for copying it into another: beads with their ids, labels and (escalations)
    pending deliveries; the runs' logs where the copy keeps them; the per-plugin summary in the last batch."""

    beads: list[Bead]
    logs: dict[int, str] | None = None
    stats: list[PluginStats] | None = None


class Ledger(ABC):
    """Every record gtui keeps, behind domain operations; see the module docstring.

    Implementations are thread-safe: the dogs, the patrol and the control
    room's collector share one.  Every failure of the backend (a corrupt
    file, a lock held too long, a full disk, a lost connection) is a
    :class:`gtcore.core.errors.LedgerError` of one line saying what and where.
    """

    readonly: bool
    where: str  # the ledger as messages name it (a file, or a URL without its password)
    shares_logs = False  # True where hosts share the ledger: a run's log is kept in it, readable from every host

    # -- life ---------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Let go of connections (a later call opens them again)."""

    @abstractmethod
    def changes(self) -> int:
        """A number that moves whenever another writer commits: the control room's cheap "anything new?"."""

    def listen(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_change`` (from a thread of the ledger's) as soon as any host commits; returns how to stop.

        A backend that cannot push calls nothing: its readers poll :meth:`changes`.
        """
        return _nothing

    # -- beads --------------------------------------------------------------------------

    @abstractmethod
    def create(self, kind: str, *, title: str = "", status: str = "open", body: str = "", labels: Iterable[str] = (),
               data: dict[str, Any] | None = None, plugin: str | None = None, rig: str | None = None,
               result: str | None = None, now: float | None = None) -> Bead:
        """Write one bead and its labels in a transaction of its own."""

    @abstractmethod
    def fetch(self, bead_id: int) -> Bead | None:
        """One bead with its labels, or None."""

    @abstractmethod
    def beads(self, kind: str, *, status: str | Iterable[str] | None = None, label: str | None = None, plugin: str | None = None,
              limit: int | None = None, newest_first: bool = True) -> list[Bead]:
        """Beads of one kind, filtered, with their labels, by creation time."""

    @abstractmethod
    def any_bead(self, kind: str, *, status: Iterable[str], label: str) -> bool:
        """Whether a bead of ``kind`` in one of ``status`` carries ``label`` (no records built)."""

    @abstractmethod
    def find(self, kinds: Iterable[str], *, labels: Iterable[str] = (), statuses: Iterable[str] | None = None,
             created_after: float | None = None, limit: int | None = None) -> list[Bead]:
        """Beads of several kinds carrying ALL of ``labels``, newest first: what ``bd list`` asks."""

    @abstractmethod
    def close_bead(self, bead: Bead, *, reason: str = "", now: float | None = None) -> Bead:
        """Close a note (``bd close``); closing a closed one changes nothing."""

    def get(self, bead_id: int, kind: str | None = None) -> Bead:
        """A bead that must exist (of ``kind``, when given)."""
        bead = self.fetch(bead_id) if 0 < bead_id <= MAX_ID else None
        if bead is None or (kind is not None and bead.kind != kind):
            noun = NOUNS[kind] if kind else "record"
            raise NotFound(f"no such {noun}: {format_ref(kind, bead_id) if kind else bead_id} is not on the ledger")
        return bead

    def by_ref(self, ref: str) -> Bead:
        """A bead of any kind by the id people and plugins pass around (``run-3``, ``note-4``, ``esc-2``), exactly as written."""
        prefix = str(ref).rpartition("-")[0]
        kind = next((kind for kind, known in PREFIX.items() if known == prefix), None)
        if kind is None:
            raise NotFound(f"{ref!r} is not an id gtui knows (run-N, note-N, esc-N, mail-N, dig-N, evt-N)")
        return self.get(parse_ref(ref, kind), kind)

    # -- runs ---------------------------------------------------------------------------

    @abstractmethod
    def clock(self) -> float:
        """The ledger's own time (seconds since the epoch): the one clock every host of a town shares."""

    @abstractmethod
    def record_turn(self, closes: list[Close], claims: list[Claim], takes: Iterable[Take] = ()) -> list[Bead | Exception]:
        """Close runs, claim others and take queued ones in one commit, each apart: per request (closes, then
        claims, then takes) its wisp or the exception it met.

        A claim is recorded ``queued`` and refused with
        :class:`gtcore.core.errors.RunInFlight` while its plugin has a run in
        flight (queued or running, on any host), and with
        :class:`gtcore.core.errors.GateMoved` when ``expect_last_run`` is no longer
        the plugin's last run: two patrols seeing one open gate run it once.
        A take makes a queued run ``running`` and is refused with
        :class:`gtcore.core.errors.RunTaken` when the run is no longer queued: two
        kennels never start one run.  Closing a closed run keeps its first
        result.  A failure of the whole commit is every request's answer.
        """

    @abstractmethod
    def queued_runs(self, limit: int | None = None) -> list[QueuedRun]:
        """The runs waiting for a kennel (the first ``limit``), first come first served (a patrol claims the longest-waiting
        first): a kennel asks at every turn, so only what it chooses by is read, from the index of runs in flight."""

    @abstractmethod
    def fetch_runs(self, run_ids: list[int]) -> list[Bead]:
        """These runs as they are now, with their labels, in one read (any order; ids that are no run are left out)."""

    @abstractmethod
    def bare_runs(self, run_ids: list[int]) -> list[Bead]:
        """These runs without their labels (``labels`` empty), in one light read (any order): what a listing of every
        plugin's last run needs, its result, times, summary and data, at a thousand plugins a patrol."""

    @abstractmethod
    def run_states(self, run_ids: list[int]) -> list[RunState]:
        """Where each of these runs is, in one light read (any order): what a command waiting on a thousand runs polls."""

    @abstractmethod
    def request_stop(self, run_id: int, reason: str, *, now: float | None = None) -> Bead:
        """Stop a run in flight: a queued one is closed ``abandoned`` at once; a running one is marked
        (``data["stop"]``) for the kennel that runs it, which ends it and records it.  Returns the run as it is now."""

    @abstractmethod
    def stop_requests(self, run_ids: list[int]) -> dict[int, str]:
        """Which of these runs someone asked to stop, with the reason given."""

    @abstractmethod
    def take_finished(self, reader: str, limit: int) -> tuple[list[Bead], bool]:
        """The runs that ended since ``reader`` last asked, in the order they ended (the ledger's sequence, never a clock),
        at most ``limit``; and whether more are waiting.  Each run is given to each reader once: the read moves the
        reader's cursor in the same transaction."""

    # -- kennels --------------------------------------------------------------------------

    @abstractmethod
    def beat_kennel(self, host: str, pid: int, started_at: float, data: dict[str, Any]) -> float:
        """A kennel is alive: keep it (one per host, the newest wins) with its heartbeat on the ledger's clock, returned."""

    @abstractmethod
    def kennels(self) -> list[KennelBeat]:
        """Every kennel that beat and has not said goodbye, by host."""

    @abstractmethod
    def forget_kennel(self, host: str, pid: int) -> None:
        """A kennel is gone (it said so, or its host's patrol found it dead): forget it, unless another took its place."""

    @abstractmethod
    def report_run(self, run_id: int, token: str, report: Report, *, now: float | None = None) -> Bead:
        """Keep a plugin's own report on its running wisp; only the run's token may."""

    @abstractmethod
    def record_receipt(self, receipt: Receipt) -> Bead:
        """Write ``receipt`` as a closed wisp in one transaction (the summary and the gates count it as a run)."""

    @abstractmethod
    def note_drift(self, run_id: int, token: str, drift: Drift, *, now: float | None = None) -> Bead:
        """Keep on a running wisp a call of its run that gtui did not answer as asked (the same call again counts up);
        only the run's token may."""

    @abstractmethod
    def changed_runs(self, since: float, limit: int = 500) -> list[Bead]:
        """Run wisps claimed or closed at or after ``since``, oldest change first (the feed)."""

    def claim_run(self, plugin: str, rig: str, *, labels: Iterable[str] = (), data: dict[str, Any] | None = None,
                  now: float | None = None, expect_last_run: int | None = ANY_LAST_RUN) -> Bead:
        """Record a run as ``queued`` for a kennel; refused as :meth:`record_turn` says."""
        return _answer(self.record_turn([], [Claim(plugin, rig, tuple(labels), data, now, expect_last_run)])[0])

    def take_run(self, run_id: int, data: dict[str, Any], *, now: float | None = None) -> Bead:
        """Make a queued run ``running`` for this kennel; refused as :meth:`record_turn` says."""
        return _answer(self.record_turn([], [], [Take(run_id, data, now)])[0])

    def close_run(self, run_id: int, result: str, *, data: dict[str, Any] | None = None, now: float | None = None,
                  summary: str | None = None) -> Bead:
        """Close a run in flight with its result; closing twice keeps the first result."""
        return _answer(self.record_turn([Close(run_id, result, data, now, summary)], [])[0])

    def run_log(self, run_id: int) -> str | None:
        """A run's log as the ledger keeps it (None: it keeps none; logs are files on the one host)."""
        return None

    @abstractmethod
    def renew_leases(self, run_ids: list[int], lease: float) -> list[int]:
        """The owner of these runs is alive: the leases of those still running last ``lease`` seconds more, on the ledger's
        own clock (``data["lease_until"]``); returns the ids that are no longer running (closed by someone else: lost)."""

    @abstractmethod
    def settle_follow_up(self, run_id: int, escalation: str | None = None) -> None:
        """What a failed run owed (its escalation) is done: its wisp loses the OWED label, and keeps which escalation it
        raised or joined (``data["escalation"]``, what ``--once`` reports with the run)."""

    @abstractmethod
    def owed_follow_ups(self) -> list[Bead]:
        """Finished runs whose escalation is still owed (its raising failed, or its process died first), oldest first.

        Every writing patrol asks: it must cost what the owed runs cost, not what the ledger holds.
        """

    def runs(self, plugin: str | None = None, *, limit: int | None = 50, status: str | None = None) -> list[Bead]:
        """Run wisps, newest first."""
        return self.beads("wisp", plugin=plugin, limit=limit, status=status)

    def runs_in_flight(self) -> list[Bead]:
        """Every run claimed and not yet closed (queued or running), in any process."""
        return self.beads("wisp", status=IN_FLIGHT, limit=None)

    # -- town events, pauses and the gates' facts ---------------------------------------

    @abstractmethod
    def emit_events(self, events: Iterable[tuple[str, float]], *, source: str) -> None:
        """Record several town events at their own times, in one transaction."""

    @abstractmethod
    def last_events(self) -> dict[str, EventMark]:
        """Each town event's latest emission (the latest by the ledger's order, whatever the clocks said)."""

    def paused(self) -> dict[str, str]:
        """Plugins an operator paused, with the reason given (the latest pause or resume wins)."""
        return {plugin: pause.reason for plugin, pause in self.pauses().items()}

    @abstractmethod
    def pauses(self) -> dict[str, Pause]:
        """Plugins an operator paused: why, who and when (the latest pause or resume wins)."""

    @abstractmethod
    def gate_facts(self) -> LedgerFacts:
        """Everything a patrol decides from, in one read: summary, runs in flight, pauses, last events."""

    @abstractmethod
    def plugin_summary(self) -> dict[str, PluginStats]:
        """Run count, failures and last run of every plugin, kept by the backend as runs are written."""

    def emit_event(self, name: str, *, source: str = "", now: float | None = None) -> Bead:
        """Record that the town event ``name`` happened (event gates listen)."""
        return self.create("event", title=name, status="closed", labels=[f"event:{name}"], data={"source": source}, now=now)

    def set_paused(self, plugin: str, paused: bool, *, reason: str = "", by: str = "", now: float | None = None) -> Bead:
        """Pause or resume a plugin (``by``: who, in words); the latest such record wins, and all stay as history."""
        return self.create("event", title=PAUSED if paused else RESUMED, status="closed", body=reason, plugin=plugin,
                           labels=[f"plugin:{plugin}"], data={"by": by} if by else None, now=now)

    # -- escalations and their deliveries -----------------------------------------------

    @abstractmethod
    def raise_escalation(self, subject: str, source: str, *, fresh: Callable[[], EscalationChange],
                         again: Callable[[Bead], EscalationChange], labels: Iterable[str], now: float,
                         fingerprint: str | None = None) -> tuple[Bead, bool]:
        """The open escalation of ``source`` about ``subject`` changed by ``again``, else a new one made by ``fresh``.

        With ``fingerprint`` (a label, Gas Town's ``escalation-fp:...``) the
        open escalation is the unclosed one carrying that label, whatever its
        subject and source: acknowledged still counts, closed does not.
        Returns the escalation's bead (its ``data["pending"]`` the deliveries
        waiting) and whether it is new; one transaction, so two processes
        raising the same thing at once make one escalation.
        """

    @abstractmethod
    def change_escalation(self, escalation_id: int, change: Callable[[Bead], EscalationChange | None], *, now: float) -> Bead:
        """Apply ``change`` (a pure function of the escalation as it is now; None: leave it) in one transaction."""

    @abstractmethod
    def lease_deliveries(self, now: float, lease: float, *, route: Callable[[Bead, str], EscalationChange],
                         only: int | None = None) -> list[Delivery]:
        """Take every due delivery of unclosed escalations for this process until ``now + lease``.

        A delivery leased here is not leased again before its lease runs out,
        by any process.  A delivery held for a route that could not be read
        (channel ``@route``) is first replaced by ``route(escalation, severity)``.
        """

    @abstractmethod
    def record_delivery(self, delivery: Delivery, error: str | None, *, now: float, retry_at: float | None) -> None:
        """Keep a delivery's outcome on its escalation; a failed one waits until ``retry_at``, a sent one is done."""

    # -- copying -------------------------------------------------------------------------

    @abstractmethod
    def dump(self, batch: int = 5000) -> Iterator[LedgerDump]:
        """Everything this ledger holds, ``batch`` beads at a time in id order; the summary comes with the last batch."""

    @abstractmethod
    def load(self, parts: Iterable[LedgerDump]) -> int:
        """Fill this ledger, which must be empty, with another's dump in ONE transaction; returns how many beads came.

        Ids, labels, pending deliveries and the summary (which counts runs
        digests squashed away) arrive as they were; a failure anywhere loads nothing.
        """

    # -- digests and retention -----------------------------------------------------------

    @abstractmethod
    def squash_day(self, title: str, plugins: list[str], start: float, end: float,
                   fold: Callable[[list[FinishedRun], Bead | None], DigestDraft], *, dry_run: bool, now: float) -> Squash:
        """Squash the finished runs of ``plugins`` in [start, end) into the digest bead titled ``title``, in one transaction.

        ``fold`` turns the runs and the day's digest as it stands (None: none
        yet) into the digest to keep; the runs are then deleted.  Nothing is
        written on a dry run, or when there are no runs.
        """

    @abstractmethod
    def run_days(self, plugins: list[str], before: float) -> list[int]:
        """UTC day numbers (days since 1970-01-01) holding finished runs of ``plugins`` before ``before``."""

    @abstractmethod
    def digest_beads(self, plugin: str | None = None, limit: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        """(id, title, data) of digests, newest day first; with ``plugin``, only those that may hold it."""

    @abstractmethod
    def prune_runs(self, cutoff: float, keep: list[str], only: list[str] | None, batch: int) -> list[str | None]:
        """Delete up to ``batch`` finished runs created before ``cutoff`` of plugins not in ``keep`` (and in ``only``).

        Returns the deleted runs' log paths (None where a run had none).
        """


def _nothing() -> None:
    """Stopping a listener that never started."""


def _answer(answer: Bead | Exception) -> Bead:
    if isinstance(answer, Exception):
        raise answer
    return answer
