"""Dogs: the named workers that execute plugin runs without blocking the patrol.

Dispatch only queues.  The queue is ordered by how long a plugin's gate has
been open (``since``), then by arrival, so when more gates are open than dogs
are idle the longest-waiting plugin goes first and none is starved: a plugin
is queued at most once, so each can be overtaken only a bounded number of times.

The pack runs on one thread, the kennel loop: each turn it records the runs
that ended and claims runs for idle dogs in one ledger commit, starts the
claimed ones, then waits on every run's output and exit at once (``poll``)
and moves each run on (:class:`gtcore.runner.Run`).  A thread per dog would
spend its time handing the interpreter lock to the others; one loop spends it
on the runs, and four dogs finishing together make one commit, not four.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import SimpleQueue

from gtcore.events import DogChanged, EventBus
from gtcore.model import Bead, Dog, dog_names
from gtcore.plugins import Plugin
from gtcore.runner import Phase, Run, Runner, RunOutcome
from gtcore.storage.contract import ANY_LAST_RUN

IDLE_WAIT_SECONDS = 1.0  # the longest the loop sleeps with nothing to look at (a wake-up ends it sooner)


@dataclass(order=True)
class _Job:
    since: float
    seq: int
    plugin: Plugin = field(compare=False)
    expect_last_run: int | None = field(compare=False)
    rig: str | None = field(compare=False)
    future: Future[RunOutcome] = field(compare=False)


class DogPool:
    """A fixed pack of dogs fed from one ordered queue, all run by one loop thread."""

    def __init__(self, runner: Runner, size: int, bus: EventBus,
                 aftermath: Callable[[Bead], Callable[[], object] | None] | None = None) -> None:
        """``aftermath`` is asked, with every recorded run, what follows it (None: nothing); that step is taken on a
        thread of its own before the dispatch's future is resolved: what follows a run (its escalation) never holds
        up the loop, and is done by the time a caller hears of the run."""
        self.runner = runner
        self.bus = bus
        self._aftermath = aftermath
        self._aftermath_queue: SimpleQueue[tuple[_Job, RunOutcome, Callable[[], object]] | None] = SimpleQueue()
        self._aftermath_thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._wanted: set[str] = set()
        self._dogs = {name: Dog(name) for name in dog_names(size)}
        self._closing = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        runner.wake = self._wake
        self._thread = threading.Thread(target=self._loop, name="dogs", daemon=True)
        self._thread.start()

    def dispatch(
        self,
        plugin: Plugin,
        *,
        since: float | None = None,
        expect_last_run: int | None = ANY_LAST_RUN,
        rig: str | None = None,
    ) -> Future[RunOutcome] | None:
        """Queue a run; None when this plugin is already queued or running here."""
        with self._cond:
            if plugin.name in self._wanted or self._closing:
                return None
            future: Future[RunOutcome] = Future()
            heapq.heappush(self._queue, _Job(time.time() if since is None else since, next(self._seq), plugin, expect_last_run, rig,
                                             future))
            self._wanted.add(plugin.name)
        self._wake()
        return future

    def dogs(self) -> list[Dog]:
        with self._cond:
            return list(self._dogs.values())

    def queued(self) -> list[str]:
        """Plugins waiting for a dog, next first."""
        with self._cond:
            return [job.plugin.name for job in sorted(self._queue)]

    def busy(self) -> bool:
        with self._cond:
            return bool(self._wanted)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no dog works (True) or ``timeout`` passes (False)."""
        ends = time.monotonic() + timeout
        with self._cond:
            while self._wanted and (left := ends - time.monotonic()) > 0:
                self._cond.wait(min(left, 0.1))
            return not self._wanted

    def shutdown(self) -> None:
        """Stop taking work; queued jobs are dropped, running ones finish on their own (then the loop ends)."""
        with self._cond:
            self._closing = True
            for job in self._queue:
                job.future.set_result(RunOutcome(None, "gtui is shutting down"))
                self._wanted.discard(job.plugin.name)
            self._queue.clear()
            self._cond.notify_all()
        self._wake()

    # -- the loop ---------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending anyway; closed: the loop is gone
            os.write(self._wake_write, b"\0")

    def _loop(self) -> None:
        kennel = _Kennel(self)
        try:
            while kennel.turn():
                pass
        finally:
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._aftermath_queue.put(None)

    def _take(self, freeing: list[str]) -> tuple[list[tuple[_Job, str]], bool]:
        """Jobs for idle dogs (each dog marked working), and whether the loop may end (closing, nothing left).

        ``freeing`` are dogs whose runs are recorded this turn: they count as
        idle, so a dog goes from one run to the next in one commit.
        """
        taken = []
        with self._cond:
            idle = [name for name, dog in self._dogs.items() if dog.state == "idle"] + freeing
            while self._queue and idle and not self._closing:
                job, name = heapq.heappop(self._queue), idle.pop(0)
                self._set(name, Dog(name, "working", job.plugin.name, None, time.time(), job.plugin.execution.timeout.seconds))
                taken.append((job, name))
            return taken, self._closing and not self._wanted

    def _claimed(self, name: str, plugin: str, bead: Bead) -> None:
        with self._cond:
            dog = self._dogs[name]
            if dog.plugin == plugin:
                self._dogs[name] = dog._replace(run_id=bead.ref, started_at=bead.created_at)

    def _free(self, name: str, job: _Job, outcome: RunOutcome) -> None:
        """A job is over; its dog goes idle unless it took the next job already.  Its outcome follows the aftermath."""
        with self._cond:
            if self._dogs[name].plugin == job.plugin.name:
                self._set(name, Dog(name))
        try:
            step = self._aftermath(outcome.run) if outcome.run is not None and self._aftermath is not None else None
        except Exception as exc:  # the run is recorded; what failed after it is said on its outcome
            step, outcome = None, _troubled(outcome, exc)
        if step is None:
            self._resolve(job, outcome)
            return
        if self._aftermath_thread is None:
            self._aftermath_thread = threading.Thread(target=self._follow_up, name="dogs-aftermath", daemon=True)
            self._aftermath_thread.start()
        self._aftermath_queue.put((job, outcome, step))

    def _follow_up(self) -> None:
        """The aftermath thread: each recorded run's follow-up, in the order the runs ended."""
        while (item := self._aftermath_queue.get()) is not None:
            job, outcome, step = item
            try:
                step()
            except Exception as exc:  # the run is recorded; what failed after it is said on its outcome
                outcome = _troubled(outcome, exc)
            self._resolve(job, outcome)

    def _resolve(self, job: _Job, outcome: RunOutcome) -> None:
        with self._cond:
            self._wanted.discard(job.plugin.name)
            self._cond.notify_all()
        job.future.set_result(outcome)

    def _set(self, name: str, dog: Dog) -> None:
        self._dogs[name] = dog
        self.bus.publish(DogChanged(name, dog.state, dog.plugin, dog.run_id))


def _troubled(outcome: RunOutcome, exc: Exception) -> RunOutcome:
    where = outcome.run.ref if outcome.run is not None else "the run"
    return RunOutcome(outcome.run, outcome.refused, f"after {where}: {type(exc).__name__}: {exc}")


class _Kennel:
    """The loop's own state: the runs in flight, and what each watched descriptor belongs to."""

    def __init__(self, pool: DogPool) -> None:
        self.pool, self.runner = pool, pool.runner
        self.poller = select.poll()
        self.poller.register(pool._wake_read, select.POLLIN)
        self.runs: dict[Run, tuple[_Job, list[int]]] = {}
        self.by_fd: dict[int, Run] = {}
        self.ended: list[Run] = []
        self.renew_at = time.monotonic() + pool.runner.settings.run_lease.seconds / 3  # leases, a third of one apart

    def turn(self) -> bool:
        """One turn: record and claim, start, wait, move every run on.  False when the pack is done for good."""
        taken, done = self.pool._take([run.dog for run in self.ended])
        if done and not self.runs and not self.ended:
            return False
        if taken or self.ended:
            self._record(taken)
        self._wait()
        now = time.monotonic()
        for run in list(self.runs):
            self._advance(run, now)
        if self.runs and now >= self.renew_at:
            self.runner.renew_leases()
            self.renew_at = now + self.runner.settings.run_lease.seconds / 3
        return True

    def _record(self, taken: list[tuple[_Job, str]]) -> None:
        ended, self.ended = self.ended, []
        claims = [(job.plugin, name, job.rig or job.plugin.rig, job.expect_last_run) for job, name in taken]
        try:
            closed, claimed = self.runner.record(ended, claims)
        except Exception as exc:  # a bug in gtui: every one of them is told, none is left waiting
            closed = []
            claimed = [f"dogs could not claim it (a bug in gtui): {type(exc).__name__}: {exc}"] * len(taken)
            for run in ended:
                job, _ = self.runs.pop(run)
                self.pool._free(run.dog, job, RunOutcome(None, f"could not record {run.bead.ref}: {type(exc).__name__}: {exc}"))
            ended = []
        for run, bead in zip(ended, closed, strict=True):
            job, _ = self.runs.pop(run)
            self.pool._free(run.dog, job, self.runner.finished(run, bead))
        refused = False
        for (job, name), answer in zip(taken, claimed, strict=True):
            if isinstance(answer, Bead):
                self.pool._claimed(name, job.plugin.name, answer)
                self._start(job, name, answer)
            else:
                self.pool._free(name, job, RunOutcome(None, answer))
                refused = True
        if refused:  # its dog is idle again: the next job is taken now, not after the loop's idle wait
            self.pool._wake()

    def _start(self, job: _Job, name: str, bead: Bead) -> None:
        run = self.runner.start(job.plugin, bead, name, job.rig or job.plugin.rig)
        fds = run.watched()
        self.runs[run] = (job, fds)
        for fd in fds:
            self.poller.register(fd, select.POLLIN)
            self.by_fd[fd] = run
        if run.phase is Phase.ENDED:
            self._retire(run)

    def _wait(self) -> None:
        """Sleep until output, an exit, a wake-up, or the soonest moment some run must be looked at."""
        now = time.monotonic()
        # Runs to record: look, but do not sleep.
        timeout = 0.0 if self.ended else min((run.wait_for(now) for run in self.runs), default=IDLE_WAIT_SECONDS)
        for fd, _ in self.poller.poll(min(timeout, IDLE_WAIT_SECONDS) * 1000):
            if fd == self.pool._wake_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 4096)
                continue
            run = self.by_fd.get(fd)
            if run is None:
                continue
            try:
                run.ready(fd)
            except Exception as exc:  # a bug in gtui costs this run, never the pack
                run.fail(exc)
            self._forget_closed(run)

    def _advance(self, run: Run, now: float) -> None:
        if run.phase is not Phase.ENDED:
            try:
                run.advance(now)
            except Exception as exc:  # a bug in gtui costs this run, never the pack
                run.fail(exc)
            self._forget_closed(run)
        if run.phase is Phase.ENDED:
            self._retire(run)

    def _forget_closed(self, run: Run) -> None:
        """Stop watching the descriptors the run has closed (its pipe at end of output, its pidfd at exit)."""
        job, fds = self.runs[run]
        still = run.watched()
        for fd in fds:
            if fd not in still:
                self.poller.unregister(fd)
                self.by_fd.pop(fd, None)
        self.runs[run] = (job, still)

    def _retire(self, run: Run) -> None:
        if run not in self.ended:
            self._forget_closed(run)
            self.ended.append(run)
