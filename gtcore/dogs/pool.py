"""Dogs: the named workers of a kennel that execute plugin runs.

Nobody hands a dog work directly.  A patrol (or a person) claims a run on
the ledger as ``queued``; the kennel's :class:`JobSource` answers, when the
pack has idle dogs, which queued runs this kennel should take, the
longest-waiting first (by how long the plugin's gate has been open, then by
claim), so when more gates are open than dogs are idle none is starved.

The pack runs on one thread, the dogs' loop: each turn it records the runs
that ended and takes queued runs for idle dogs in one ledger commit, hands
the taken ones to its starters, then waits on every run's output and exit at
once (``poll``) and moves each run on (:class:`gtcore.dogs.runner.Run`).  A thread
per dog would spend its time handing the interpreter lock to the others; one
loop spends it on the runs, and four dogs finishing together make one commit,
not four.

Starting a child is the one step that blocks: its caller waits until the
child has executed its program (``vfork``, which on a busy machine waits for
a CPU), and its log file is created.  On the loop that wait held up every
other run, so starter threads take it (:class:`_Starters`, one per dog up to
four); the interpreter lock is let go during the wait, and the loop picks
each run up once its child has started, or failed to.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue

from gtcore.core.beads import Bead, Dog, dog_names
from gtcore.core.events import DogChanged, EventBus
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.dogs.runner import Phase, Run, Runner, RunOutcome
from gtcore.plugins.spec import Plugin
from gtcore.storage.contract import QueuedRun

if TYPE_CHECKING:
    from typing import Protocol

    class JobSource(Protocol):
        """What a kennel tells its dogs: which queued runs to take, and which running ones to stop."""

        def jobs(self, idle: int) -> list[Job]:
            """At most ``idle`` queued runs for this kennel, next first (called on the dogs' loop)."""

        def stops(self, running: list[int]) -> dict[int, str]:
            """Which of these running runs were asked to stop, and why (called on the dogs' loop)."""

        def beat(self) -> None:
            """The kennel is alive: renew its runs' leases and its heartbeat (called on the dogs' loop, a third of a lease apart)."""


IDLE_WAIT_SECONDS = 1.0  # the longest the loop sleeps with nothing to look at (a wake-up ends it sooner)
LOOK_SECONDS = 0.25  # how often the loop looks at the ledger for new work when nothing woke it
FLUSH_FIRST_WAIT, FLUSH_LAST_WAIT = 0.5, 30.0  # a refused result is written again after this, doubling up to that
# Threads that start children: a starter per dog up to this many, so no run of the default pack of four waits for
# another's start (a start mostly waits, for the exec and the file system, with the interpreter lock let go).
STARTERS = 4


class Job(Record):
    """A queued run a kennel may take: the run as the queue shows it, the plugin as its file says now, the rig it runs for."""

    run: QueuedRun
    plugin: Plugin
    rig: str


class DogPool:
    """A fixed pack of dogs fed by a :class:`JobSource`, all run by one loop thread."""

    def __init__(self, runner: Runner, size: int, bus: EventBus, source: JobSource,
                 aftermath: Callable[[Bead], Callable[[], object] | None] | None = None) -> None:
        """``aftermath`` is asked, with every recorded run, what follows it (None: nothing); that step is taken on a
        thread of its own: what follows a run (its escalation) never holds up the loop."""
        self.runner = runner
        self.bus = bus
        self.source = source
        self._aftermath = aftermath
        self._aftermath_queue: SimpleQueue[tuple[RunOutcome, Callable[[], object]] | None] = SimpleQueue()
        self._aftermath_thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._dogs = {name: Dog(name) for name in dog_names(size)}
        self._closing = False  # takes nothing new; the loop ends once its runs are recorded
        self._look = threading.Event()  # new work may be waiting: ask the source
        self._look.set()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._wake_lock = threading.Lock()  # a wake-up never writes to the pipe's descriptor once closed (and reused)
        self._wake_open = True
        runner.wake = self._wake
        self._thread = threading.Thread(target=self._loop, name="dogs", daemon=True)
        self._thread.start()

    def look(self) -> None:
        """Something may be queued for this kennel (a dispatcher said so, the ledger moved): look now."""
        self._look.set()
        self._wake()

    def dogs(self) -> list[Dog]:
        with self._cond:
            return list(self._dogs.values())

    def busy(self) -> bool:
        with self._cond:
            return any(dog.state != "idle" for dog in self._dogs.values())

    def join(self, timeout: float) -> bool:
        """Wait for the loop to end (after :meth:`shutdown`); True once it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def shutdown(self) -> None:
        """Take nothing new; runs in flight finish on their own (or as the runner is told), then the loop ends."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._wake()

    # -- the loop ---------------------------------------------------------------------------

    def _wake(self) -> None:
        """Interrupt the loop's wait (any thread: starters, sweepers, the socket); once the loop has closed its pipe,
        nothing: the descriptor's number may belong to another file by then."""
        with self._wake_lock:
            if self._wake_open:
                with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                    os.write(self._wake_write, b"\0")

    def _loop(self) -> None:
        loop = _Loop(self)
        try:
            while loop.turn():
                pass
        finally:
            loop.starters.close()
            with self._wake_lock:
                self._wake_open = False
                os.close(self._wake_read)
                os.close(self._wake_write)
            self._aftermath_queue.put(None)

    def _take(self, freeing: list[str]) -> tuple[list[tuple[Job, str]], bool]:
        """Jobs for idle dogs (each dog marked working), and whether the loop may end (closing, nothing left).

        ``freeing`` are dogs whose runs are recorded this turn: they count as
        idle, so a dog goes from one run to the next in one commit.
        """
        with self._cond:
            idle = [name for name, dog in self._dogs.items() if dog.state == "idle"] + freeing
            closing = self._closing
        if closing:
            return [], True
        if not idle or not self._look.is_set():
            return [], False
        self._look.clear()
        jobs = self.source.jobs(len(idle))
        taken = []
        with self._cond:
            for job, name in zip(jobs, idle, strict=False):
                self._set(name, Dog(name, "working", job.plugin.name, job.run.ref, time.time(), job.plugin.execution.timeout.seconds))
                taken.append((job, name))
        if len(jobs) == len(idle):
            self._look.set()  # every idle dog got work: more may wait
        return taken, False

    def _claimed(self, name: str, plugin: str, bead: Bead) -> None:
        with self._cond:
            dog = self._dogs[name]
            if dog.plugin == plugin:
                self._dogs[name] = dog._replace(run_ref=bead.ref, started_at=bead.data.get("started_at", bead.created_at))

    def _free(self, name: str, plugin: str, outcome: RunOutcome) -> None:
        """A job is over; its dog goes idle unless it took the next job already.  What follows the run is handed on."""
        with self._cond:
            if self._dogs[name].plugin == plugin:
                self._set(name, Dog(name))
            self._cond.notify_all()
        try:
            step = self._aftermath(outcome.run) if outcome.run is not None and self._aftermath is not None else None
        except Exception as exc:  # the run is recorded; what failed after it is said on the kennel's log
            step, outcome = None, _troubled(outcome, exc)
        if outcome.problem:
            self.runner.note(outcome.problem)
        if step is None:
            return
        if self._aftermath_thread is None:
            self._aftermath_thread = threading.Thread(target=self._follow_up, name="dogs-aftermath", daemon=True)
            self._aftermath_thread.start()
        self._aftermath_queue.put((outcome, step))

    def _follow_up(self) -> None:
        """The aftermath thread: each recorded run's follow-up, in the order the runs ended."""
        while (item := self._aftermath_queue.get()) is not None:
            outcome, step = item
            try:
                step()
            except Exception as exc:  # the run is recorded; what failed after it is said, and the next patrol pays what is owed
                self.runner.note(_troubled(outcome, exc).problem or "")

    def _set(self, name: str, dog: Dog) -> None:
        self._dogs[name] = dog
        self.bus.publish(DogChanged(name, dog.state, dog.plugin, dog.run_ref))


def _troubled(outcome: RunOutcome, exc: Exception) -> RunOutcome:
    where = outcome.run.ref if outcome.run is not None else "the run"
    return RunOutcome(outcome.run, outcome.refused, f"after {where}: {type(exc).__name__}: {exc}")


class _Starters:
    """Threads that start the loop's runs (see the module's docstring); each run is the loop's again once picked up.

    The loop hands a claimed run to :meth:`submit` and takes it back from
    :meth:`started`; in between only its starter touches it, and the queues
    order the two.  The threads come with the first run and go with the loop.
    """

    def __init__(self, runner: Runner, wake: Callable[[], None], count: int) -> None:
        self._runner, self._wake, self._count = runner, wake, count
        self._todo: SimpleQueue[Run | None] = SimpleQueue()
        self._done: SimpleQueue[Run] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.pending = 0  # runs handed out and not yet taken back (the loop's own count: only the loop changes it)

    def submit(self, run: Run) -> None:
        if not self._threads:
            self._threads = [threading.Thread(target=self._serve, name=f"dogs-starter-{n}", daemon=True) for n in range(self._count)]
            for thread in self._threads:
                thread.start()
        self.pending += 1
        self._todo.put(run)

    def started(self) -> list[Run]:
        """The runs whose child started (or could not) since the last call."""
        runs = []
        with contextlib.suppress(Empty):
            while True:
                runs.append(self._done.get_nowait())
        self.pending -= len(runs)
        return runs

    def close(self) -> None:
        """The loop is over: each thread ends after its current start (there is none when the loop ends well; its
        wake-up then finds the pipe closed, see :meth:`DogPool._wake`)."""
        for _ in self._threads:
            self._todo.put(None)

    def _serve(self) -> None:
        while (run := self._todo.get()) is not None:
            try:
                self._runner.launch(run)
            finally:  # whatever happened, the loop gets the run back: it records how it ended
                self._done.put(run)
                self._wake()


class _Loop:
    """The loop's own state: the runs in flight, and what each watched descriptor belongs to."""

    def __init__(self, pool: DogPool) -> None:
        self.pool, self.runner = pool, pool.runner
        self.starters = _Starters(pool.runner, pool._wake, min(len(pool._dogs), STARTERS))
        self.poller = select.poll()
        self.poller.register(pool._wake_read, select.POLLIN)
        self.runs: dict[Run, list[int]] = {}
        self.by_fd: dict[int, Run] = {}
        self.ended: list[Run] = []
        self.renew_at = time.monotonic() + pool.runner.settings.run_lease.seconds / 3  # leases, a third of one apart
        self.look_at = time.monotonic() + LOOK_SECONDS
        self.flush_wait = FLUSH_FIRST_WAIT
        self.flush_at = 0.0

    def turn(self) -> bool:
        """One turn: record and take, hand the taken to the starters, wait, watch the started, move every run on.  False
        when the pack is done for good."""
        taken, done = self.pool._take([run.dog for run in self.ended])
        if done and not self.runs and not self.ended and not self.starters.pending:
            return False
        if taken or self.ended:
            self._record(taken)
        self._wait()
        self._adopt()
        now = time.monotonic()
        for run in list(self.runs):
            self._advance(run, now)
        if now >= self.look_at:  # what no wake-up said: a claim from a process that could not reach this kennel, a stop
            self.look_at = now + LOOK_SECONDS
            self.pool._look.set()
            self._stops()
        if now >= self.renew_at:
            self.pool.source.beat()
            self.renew_at = now + self.runner.settings.run_lease.seconds / 3
        if now >= self.flush_at and self.runner.has_pending():
            self._flush(now)
        return True

    def _flush(self, now: float) -> None:
        """Results the ledger refused are written again, the wait doubling from half a second up to 30s while it refuses."""
        waiting = self.runner.flush_pending()
        self.flush_wait = FLUSH_FIRST_WAIT if not waiting else min(FLUSH_LAST_WAIT, self.flush_wait * 2)
        self.flush_at = now + self.flush_wait

    def _stops(self) -> None:
        """Runs someone asked to stop (``ctrl+k``, ``gtui plugin run`` interrupted) are ended and recorded as such."""
        running = [run.bead.id for run in self.runs if run.phase is Phase.RUNNING]
        if running:
            for run_id, reason in self.pool.source.stops(running).items():
                self.runner.stop(run_id, reason or "asked to stop")

    def _record(self, taken: list[tuple[Job, str]]) -> None:
        ended, self.ended = self.ended, []
        try:
            closed, answers = self.runner.record(ended, [(job.run, name, job.plugin) for job, name in taken])
        except Exception as exc:  # a bug in gtui: every run is told, and each queued one stays queued for the next look
            closed = []
            answers = [f"dogs could not take it (a bug in gtui): {type(exc).__name__}: {exc}"] * len(taken)
            for run in ended:
                self.runs.pop(run)
                self.pool._free(run.dog, run.plugin.name, RunOutcome(None, f"could not record {run.bead.ref}: {type(exc).__name__}: {exc}"))
            ended = []
        for run, bead in zip(ended, closed, strict=True):
            self.runs.pop(run)
            self.pool._free(run.dog, run.plugin.name, self.runner.finished(run, bead))
        refused = False
        for (job, name), answer in zip(taken, answers, strict=True):
            if isinstance(answer, Bead):
                self.pool._claimed(name, job.plugin.name, answer)
                self._start(job, name, answer)
            else:
                self.pool._free(name, job.plugin.name, RunOutcome(None, answer))
                refused = True
        if refused:  # its dog is idle again: the next job is taken now, not after the loop's idle wait
            self.pool.look()

    def _start(self, job: Job, name: str, bead: Bead) -> None:
        self.starters.submit(self.runner.claim(job.plugin, bead, name, job.rig))

    def _adopt(self) -> None:
        """Watch the runs the starters have started; one that could not start is recorded with the reason."""
        for run in self.starters.started():
            run.announce()
            fds = run.watched()
            self.runs[run] = fds
            for fd in fds:
                self.poller.register(fd, select.POLLIN)
                self.by_fd[fd] = run
            if run.phase is Phase.ENDED:
                self._retire(run)

    def _wait(self) -> None:
        """Sleep until output, an exit, a wake-up, or the soonest moment some run (or the ledger) must be looked at."""
        now = time.monotonic()
        # Runs to record: look, but do not sleep.
        timeout = 0.0 if self.ended else min((run.wait_for(now) for run in self.runs), default=IDLE_WAIT_SECONDS)
        timeout = min(timeout, IDLE_WAIT_SECONDS, max(0.0, self.look_at - now))
        for fd, _ in self.poller.poll(timeout * 1000):
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
        fds = self.runs[run]
        still = run.watched()
        for fd in fds:
            if fd not in still:
                self.poller.unregister(fd)
                self.by_fd.pop(fd, None)
        self.runs[run] = still

    def _retire(self, run: Run) -> None:
        if run not in self.ended:
            self._forget_closed(run)
            self.ended.append(run)
