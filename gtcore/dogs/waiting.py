"""A command that waits for the runs it queued: one look at the ledger at a time for their ends (and for runs whose
kennel died), and their logs followed line by line for a person watching (:meth:`gtcore.engine.Engine.wait_runs`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from gtcore.core.beads import Bead
from gtcore.core.errors import LedgerError
from gtcore.core.records import TYPE_CHECKING

if TYPE_CHECKING:
    from gtcore.engine import Engine
    from gtcore.storage.contract import RunState

ORPHAN_LOOK_SECONDS = 2.0  # how often a command waiting on runs a kennel holds checks that the kennel still lives


def settled(run: RunState, grace: float) -> bool:
    """A run is over for whoever waits on it once it is closed and what it owes is paid: its escalation raised by the
    kennel (the ``follow-up:owed`` label gone), or a delivery's ``grace`` past its close (the next patrol pays it then)."""
    if run.status != "closed":
        return False
    return not run.owed or time.time() - (run.closed_at or 0.0) > grace + 5.0


class RunWatch:
    """What :meth:`Engine.wait_runs` knows of the runs it waits on, one look at a time."""

    def __init__(self, engine: Engine, wanted: list[int], follow: Callable[[Bead, str], None] | None) -> None:
        self.engine, self.wanted, self.follow = engine, wanted, follow
        self.pending, self.grace = set(wanted), engine.settings.delivery_timeout.seconds
        self.tails = {run_id: LogTail() for run_id in wanted} if follow is not None else {}
        self.started: dict[int, Bead] = {}
        self.version: int | None = None
        self.silent_since: float | None = None  # when the ledger stopped answering (monotonic), while it does not
        self.running: set[int] = set()  # those a kennel holds, as last read
        self.orphans_at = time.monotonic() + ORPHAN_LOOK_SECONDS

    def look(self) -> bool:
        """One look at the runs (and their logs); whether the wait is over."""
        from gtcore.dogs import recovery

        try:
            self._read_ledger()
        except LedgerError:
            now = time.monotonic()
            self.silent_since = self.silent_since if self.silent_since is not None else now
            if now - self.silent_since > self.engine.settings.run_lease.seconds:
                raise
        self.pending -= recovery.waiting(self.engine.town)
        self._orphans()
        done = not self.pending
        for run_id, run in self.started.items():
            self.tails[run_id].read(self.engine, run, self.follow, last=done)  # type: ignore[arg-type]
        return done

    def _read_ledger(self) -> None:
        ledger = self.engine.ledger
        moved = ledger.changes()
        self.silent_since = None
        if moved == self.version:
            return
        self.version = moved
        states = ledger.run_states(list(self.pending | (self.tails.keys() - self.started.keys())))
        self.pending -= {state.id for state in states if settled(state, self.grace)}
        self.running = {state.id for state in states if state.status == "running"}
        began = [state.id for state in states if state.status != "queued" and state.id in self.tails and state.id not in self.started]
        self.started.update((bead.id, bead) for bead in ledger.fetch_runs(began) if began)

    def _orphans(self) -> None:
        """Now and then, runs held by a kennel are checked for a dead owner (a killed kennel): those are closed here."""
        now = time.monotonic()
        held = self.running & self.pending
        if now < self.orphans_at or not held or self.silent_since is not None or self.engine.ledger.readonly:
            return
        self.orphans_at = now + ORPHAN_LOOK_SECONDS
        with contextlib.suppress(LedgerError):  # the next look tries again
            self.engine.abandon_orphans(sorted(held))

    def runs(self) -> dict[int, Bead]:
        """Each run as the ledger has it now; when the ledger does not answer and every one has its end in the recovery
        journal, those last read (none, unless followed): the caller says of each that it is not recorded yet."""
        from gtcore.dogs import recovery

        try:
            return {bead.id: bead for bead in self.engine.ledger.fetch_runs(self.wanted)}
        except LedgerError:
            if not recovery.waiting(self.engine.town).issuperset(self.wanted):
                raise
            return dict(self.started)


class LogTail:
    """Where a face is in one run's log, and the line it has only half read."""

    def __init__(self) -> None:
        self.offset = 0
        self.partial = b""

    def read(self, engine: Engine, run: Bead, follow: Callable[[Bead, str], None], *, last: bool) -> None:
        while True:
            chunk, self.offset = engine.log_since(run, self.offset)
            if not chunk:
                break
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()
            for line in lines:
                follow(run, line.decode("utf-8", "replace").rstrip("\r"))
        if last and self.partial:
            follow(run, self.partial.decode("utf-8", "replace"))
            self.partial = b""


def where(run: Bead) -> str:
    """Where a run in flight is, in words: waiting in the queue, or on which dog of which host."""
    if run.status == "queued":
        return "queued for a kennel"
    owner = run.data.get("owner") or {}
    return f"on dog {run.data.get('dog', '?')} of {owner.get('host', '?')}"
