"""Runs: take, start, watch, end, record.

A run is claimed on the ledger (a ``queued`` wisp) by whoever dispatches it;
the kennel's runner takes it (``running``, with its owner, dog, token and
lease) before anything starts, and always closes it with a result —
``success``, ``failure``, ``timeout``, ``skipped``, ``abandoned`` — even when
something inside gtui goes wrong.  If the ledger cannot take the closing
write (disk full), the result is kept in memory and written by the next
patrol: a record is never lost.

The dogs of a kennel (:mod:`gtcore.dogs.pool`) drive all their runs from one
loop thread; only a child's start, which blocks, is left to starter threads
(:meth:`Runner.launch`).  A :class:`Run` is one run in flight: the loop hands it what it
sees (output, the child's exit, the clock) and the run moves on through its
phases — running, ending its process group, sweeping escapees, draining the
last output — without ever making the loop wait.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from gtcore.core.beads import Bead, Result
from gtcore.core.errors import LedgerError, NotFound
from gtcore.core.events import EventBus, RunClaimed, RunFinished, RunStarted
from gtcore.dogs import processes, recovery
from gtcore.dogs.output import LiveLines, RunOutput, last_line, log_text
from gtcore.plugins.spec import Plugin
from gtcore.storage.contract import Close, Ledger, QueuedRun, Take
from gtcore.town.layout import Town
from gtcore.town.settings import Settings

_CHUNK = 65536
DRAIN_SECONDS = 1.0  # after the end, output still in the pipe is read for this long at most
STEP_SECONDS = 0.05  # how often a run whose end cannot be watched for is looked at
PROBLEMS_KEPT = 10


@dataclass
class RunOutcome:
    """What became of a dispatch: the closed run, or why none was claimed."""

    run: Bead | None
    refused: str | None = None
    problem: str | None = None  # what went wrong after the run (its escalation step), said rather than swallowed


class Phase(Enum):
    """How far a run in flight has come."""

    RUNNING = "running"  # the child runs; its output is streamed
    ENDING = "ending"  # the child is gone or must go: its process group gets SIGTERM, SIGKILL after the grace
    SWEEPING = "sweeping"  # processes that left the group still carry the run's token: being killed (on a thread)
    DRAINING = "draining"  # output still in the pipe is read
    ENDED = "ended"  # everything is known: the run waits to be recorded


_LIVE: set[Runner] = set()  # every runner of this process with runs to execute or record (see owns_anywhere)
_LIVE_LOCK = threading.Lock()


def owns_anywhere(run_id: int) -> bool:
    """Whether any runner of this process executes ``run_id`` or still has to record it (a kennel beside a face, in tests)."""
    with _LIVE_LOCK:
        runners = list(_LIVE)
    return any(runner.owns(run_id) for runner in runners)


class Runner:
    """The runs of one kennel's dogs: what they take and start, how they end, what is recorded.

    Everything here runs on the dogs' loop thread, except :meth:`launch`,
    which their starter threads call, and :meth:`owns`, :meth:`flush_pending`,
    :meth:`stop` and :meth:`stop_all`, which any thread may call.
    """

    def __init__(self, town: Town, ledger: Ledger, settings: Settings, bus: EventBus, plugin_bin: tuple[Path, ...] = ()) -> None:
        """``plugin_bin``: directories put first on every run's PATH (the plugin-facing ``gt`` and ``bd``)."""
        self.town, self.ledger, self.settings, self.bus = town, ledger, settings, bus
        self.runs_dir = str(town.runs_dir)  # every run's log goes here: a string made once
        base = processes.base_environment(plugin_bin)
        base = town.dolt_environment(base)  # a dog's Dolt server, as Gas Town's daemon gives it
        # bash as the runs' PATH finds it, looked up once: a bare name makes every start try each PATH directory in turn
        self._bash = shutil.which("bash", path=base.get("PATH")) or "bash"
        town_root = str(town.root)
        # What every run of this town shares (the kennel's environment, the town's variables), built and encoded once:
        # a run adds only its own variables, and Popen passes bytes through untouched.
        self._town_variables = {"GT_TOWN": town_root, "GT_TOWN_ROOT": town_root, "GT_ROOT": town_root, "GT_ROLE": "dog",
                                "GIT_CEILING_DIRECTORIES": town_root}
        self._base_environment = {os.fsencode(key): os.fsencode(value) for key, value in {**base, **self._town_variables}.items()}
        self._pending: list[recovery.Entry] = []  # ends the ledger refused: retried, and kept in the recovery journal meanwhile
        self.lock = threading.Lock()  # held while takes are written: see record()
        self.active: set[int] = set()
        self._by_token: dict[str, Run] = {}  # the runs in flight by their token: a plugin's gt or bd proves its run with it
        self._stop = threading.Event()  # set once: every run of this kennel ends now
        self.stop_reason = ""
        self._stops: dict[int, str] = {}  # runs asked to stop one by one (ctrl+k, an interrupted gtui plugin run), with why
        self.problems: list[tuple[float, str]] = []  # what went wrong after runs, newest last (see note)
        self.wake: Callable[[], None] = lambda: None  # the dogs' loop sets this: a stop must not wait for its next turn
        with _LIVE_LOCK:
            _LIVE.add(self)

    # -- what any thread may ask --------------------------------------------------------

    def owns(self, run_id: int) -> bool:
        """True for runs this process is executing or still has to record."""
        with self.lock:
            return run_id in self.active or any(item.run_id == run_id for item in self._pending)

    def renew_leases(self) -> list[int]:
        """Tell every host this kennel is alive: its runs' leases (those it still has to record too) last another
        ``run_lease`` on the ledger's clock.  Returns the runs it executes that another host closed meanwhile (it lost
        them: it was frozen, or cut off from the ledger, for longer than the lease).  A refused write waits for the next."""
        with self.lock:
            ids = [*self.active, *(item.run_id for item in self._pending)]
        try:
            lost = self.ledger.renew_leases(ids, self.settings.run_lease.seconds)
        except LedgerError:
            return []
        with self.lock:
            return [run_id for run_id in lost if run_id in self.active]

    def has_pending(self) -> bool:
        with self.lock:
            return bool(self._pending)

    def flush_pending(self) -> int:
        """Write results the ledger refused earlier; returns how many are still waiting.

        A result is done once the ledger holds the run closed, whoever wrote it
        (a patrol that replayed the recovery journal meanwhile): closing twice
        keeps the first result, which is this one.
        """
        with self.lock:
            pending, self._pending = self._pending, []
        shared = self.ledger.shares_logs
        for item in pending:
            answer = self.ledger.record_turn([item.close(with_log=shared)], [])[0]
            if isinstance(answer, Bead):
                recovery.forget(self.town, item.run_id)
                continue
            if isinstance(answer, NotFound):
                continue  # the ledger lost the run: trying again is vain; the next patrol sets its journal entry aside, and says so
            with self.lock:
                self._pending.append(item._replace(error=_refusal(answer)))
        return len(self._pending)

    def stop_all(self, reason: str) -> None:
        """End every run of this kennel now (SIGTERM, SIGKILL after the grace); each is recorded ``abandoned`` with ``reason``.

        For a kennel that goes away with runs in flight (``gtui kennel stop``,
        SIGTERM): its runs are never left behind unsupervised.
        """
        self.stop_reason = reason
        self._stop.set()
        self.wake()

    def stop(self, run_id: int, reason: str) -> bool:
        """End one run of this kennel now, recorded ``abandoned`` with ``reason``; False when it runs elsewhere."""
        with self.lock:
            if run_id not in self.active:
                return False
            self._stops.setdefault(run_id, reason)
        self.wake()
        return True

    def why_stop(self, run_id: int) -> str | None:
        """Why a run must end now (None: it may go on)."""
        if self._stop.is_set():
            return self.stop_reason
        return self._stops.get(run_id)

    def note(self, problem: str) -> None:
        """Something went wrong after a run was recorded (a bug in gtui): said on the kennel's log and kept for its heartbeat."""
        if not problem:
            return
        import sys

        sys.stderr.write(f"gtui kennel: error: {problem} (a bug in gtui, please report it)\n")
        with self.lock:
            self.problems.append((time.time(), problem))
            del self.problems[:-PROBLEMS_KEPT]

    def retire(self) -> None:
        """This runner executes nothing more (its kennel is gone): it no longer speaks for runs of this process."""
        with _LIVE_LOCK:
            _LIVE.discard(self)

    # -- the ledger: one commit per turn of the loop ---------------------------------------

    def record(self, ended: list[Run], takes: list[tuple[QueuedRun, str, Plugin]]) -> tuple[list[Bead], list[Bead | str]]:
        """Close ``ended`` runs and take queued ones (the queued wisp, its dog, its plugin) in one transaction.

        Returns the closed wisps, and per take the running wisp or why it was
        refused (another kennel took it, it was stopped).  The lock is held
        across the takes: a patrol reconciling in another thread must never
        see a new running wisp while :meth:`owns` still says no, or it would
        close a live run of this very process as abandoned.
        """
        stamp = time.time()
        shared = self.ledger.shares_logs
        closes = [Close(run.bead.id, run.result, run.data, stamp, owed=self._owes(run), log=log_text(run.log_path) if shared else None)
                  for run in ended]
        owner = processes.owner_identity()
        requests = [Take(queued.id, {"dog": dog, "owner": owner, "timeout_s": plugin.execution.timeout.seconds,
                                     "token": processes.new_token()}, stamp, self.settings.run_lease.seconds)
                    for queued, dog, plugin in takes]
        with self.lock:
            answers = self.ledger.record_turn(closes, [], requests)
            taken = answers[len(ended):]
            self.active.update(answer.id for answer in taken if isinstance(answer, Bead))
            closed = [self._closed(run, answer, stamp) for run, answer in zip(ended, answers[:len(ended)], strict=True)]
            self.active.difference_update(run.bead.id for run in ended)
            for run in ended:
                self._stops.pop(run.bead.id, None)
                self._by_token.pop(run.token, None)
        return closed, [answer if isinstance(answer, Bead) else _refusal(answer) for answer in taken]

    @staticmethod
    def _owes(run: Run) -> bool:
        """A failed run of a plugin that notifies owes its escalation; one a person stopped does not."""
        return run.plugin.execution.notify_on_failure and run.result != Result.ABANDONED

    def _closed(self, run: Run, answer: object, at: float) -> Bead:
        """The closed wisp; when the ledger refused the write, kept to be written later, in memory and in the recovery
        journal (the caller holds the lock)."""
        if isinstance(answer, Bead):
            return answer
        entry = recovery.Entry(run.bead.id, run.bead.ref, run.plugin.name, run.result, run.data, at, self._owes(run),
                               _refusal(answer), Path("(memory only)"))
        self._pending.append(entry._replace(path=recovery.keep(self.town, entry) or entry.path))
        bead = run.bead
        return Bead(bead.id, "wisp", bead.title, "closed", "", bead.created_at, at, at, bead.plugin, bead.rig, run.result,
                    {**bead.data, **run.data}, bead.labels)

    # -- starting ---------------------------------------------------------------------------

    def claim(self, plugin: Plugin, bead: Bead, dog: str, rig: str) -> Run:
        """A taken run, announced, its child not started yet (see :meth:`launch`)."""
        run = Run(self, plugin, bead, dog, rig)
        if run.token:
            self._by_token[run.token] = run
        self.bus.publish(RunClaimed(bead.ref, plugin.name, rig, dog, bead.created_at))
        return run

    def run_environment(self, token: str) -> dict[str, str] | None:
        """The environment this runner gave the run in flight holding ``token`` (None: it holds no such run): what a
        plugin's gt or bd must still have for the kennel to answer it (:mod:`gtcore.dogs.kennel_answers`)."""
        run = self._by_token.get(token)
        if run is None:
            return None
        env = self._environment(run.plugin, run.bead, run.dog, run.rig)
        return {os.fsdecode(key): os.fsdecode(value) for key, value in env.items()}

    def launch(self, run: Run) -> None:
        """Start a claimed run's child; a run that cannot start ends at once, with the reason.

        Any thread may call it (the dogs' starters do): it touches only ``run``
        and what this runner built once, and the loop takes the run back only
        when it returns.
        """
        try:
            run.start(*self._command(run.plugin), self._environment(run.plugin, run.bead, run.dog, run.rig))
        except Exception as exc:  # record the truth even when gtui itself fails
            run.fail(exc)

    def finished(self, run: Run, closed: Bead) -> RunOutcome:
        """Announce a recorded run."""
        data = closed.data
        self.bus.publish(RunFinished(closed.ref, run.plugin.name, run.rig, run.dog, closed.result or run.result,
                                     data.get("exit_code"), data.get("duration_s", 0.0), str(data.get("reason", "")),
                                     time.time(), closed))
        return RunOutcome(closed)

    def _command(self, plugin: Plugin) -> tuple[list[str] | None, bytes | None, str]:
        if plugin.order is not None:  # a Gas City order: sh -c EXEC, or its formula through gc
            from gtcore.gascity.runs import command

            return command(plugin)
        if plugin.execution.type == "script":
            return [self._bash, os.path.join(os.path.dirname(plugin.file), "run.sh")], None, ""
        if not self.settings.agent_command:
            return None, None, "no agent_command configured in settings/gtui.toml for this agent plugin"
        return list(self.settings.agent_command), plugin.instructions.encode(), ""

    def _environment(self, plugin: Plugin, run: Bead, dog: str, rig: str) -> dict[bytes, bytes]:
        """gtui's variables, and what a Gas Town dog gets, so Gas Town's plugins run unmodified: the town's, built once
        (see ``__init__``), and the run's own, encoded here."""
        own = {
            "GT_RIG": "" if rig == "town" else rig,
            "GT_PLUGIN": plugin.name,
            "GT_RUN_ID": run.ref,
            "GT_DOG": dog,
            processes.RUN_TOKEN: str(run.data.get("token", "")),
            "GT_DOG_NAME": dog,
            "BD_ACTOR": f"deacon/dogs/{dog}",
            "GT_RIG_ROOT": "" if rig == "town" else str(self.town.rig_root(rig)),
        }
        if plugin.order is not None:  # a Gas City order: Gas City's environment, and gtui's run variables
            from gtcore.gascity.runs import run_environment

            return run_environment(plugin, self.town.root, {**self._town_variables, **own})
        env = self._base_environment.copy()
        env.update((os.fsencode(key), os.fsencode(value)) for key, value in own.items())
        return env


def _refusal(answer: object) -> str:
    """Why a claim was refused, in words (a run in flight, a gate that moved, a ledger that cannot be written)."""
    return str(answer) if isinstance(answer, Exception) else f"the ledger answered {answer!r}"


class Run:
    """One run in flight: its child, its output, and how far its end has come (see :class:`Phase`).

    The loop calls :meth:`watched` for the descriptors to poll, :meth:`ready`
    when one is, :meth:`advance` every turn, and :meth:`wait_for` for how
    soon it must look again; once :attr:`phase` is ``ENDED``, :attr:`result`
    and :attr:`data` are what gets recorded.
    """

    def __init__(self, runner: Runner, plugin: Plugin, bead: Bead, dog: str, rig: str) -> None:
        self.runner, self.plugin, self.bead, self.dog, self.rig = runner, plugin, bead, dog, rig
        self.phase = Phase.RUNNING
        self.result = "failure"
        self.data: dict[str, object] = {}
        self.began = time.monotonic()  # its duration is measured on a clock no NTP step moves
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: RunOutput | None = None
        self.log_path = f"{runner.runs_dir}/{bead.ref}.log"
        self.token = str(bead.data.get("token", ""))
        self._pipe: int | None = None
        self._exit: int | None = None  # a pidfd: readable once the child exits (None where the kernel has none)
        self._deadline = 0.0
        self._started_at = 0.0  # when the child started (wall clock, for RunStarted); 0: it did not
        self._kill_at = 0.0
        self._killed = False
        self._drain_until = 0.0
        self._why_ending: str | None = None  # None: it exited by itself; else "timeout" or "stopped"
        self._stop_reason = ""  # why it was stopped, when it was
        self._sweeper: threading.Thread | None = None
        self._escaped = 0

    # -- the loop's side --------------------------------------------------------------------

    def watched(self) -> list[int]:
        return [fd for fd in (self._pipe, self._exit) if fd is not None]

    def wait_for(self, now: float) -> float:
        """Seconds until this run must be looked at again, whatever the descriptors say."""
        if self.phase is Phase.RUNNING:
            return STEP_SECONDS if self._exit is None else max(0.0, self._deadline - now)
        if self.phase is Phase.DRAINING:
            return max(0.0, self._drain_until - now)
        return STEP_SECONDS

    def ready(self, fd: int) -> None:
        """A watched descriptor is readable: output to take, or the child's exit."""
        if fd == self._exit:
            self._close_exit()
            return
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        if chunk:
            assert self.output is not None
            self.output.write(chunk)
        else:
            self._close_pipe()

    def advance(self, now: float) -> None:
        """Move on as far as what is known allows (never waits)."""
        if self.phase is Phase.RUNNING:
            self._check_running(now)
        if self.phase is Phase.ENDING:
            self._check_ending(now)
        if self.phase is Phase.SWEEPING and not (self._sweeper and self._sweeper.is_alive()):
            self._swept(now)
        if self.phase is Phase.DRAINING and (self._pipe is None or now >= self._drain_until):
            self._end()

    # -- phases -----------------------------------------------------------------------------

    def start(self, argv: list[str] | None, stdin_data: bytes | None, skip_reason: str, env: dict[bytes, bytes]) -> None:
        started = time.monotonic()
        if argv is None:
            self._finish("skipped", {"reason": skip_reason})
            return
        self.output = RunOutput(self.log_path, LiveLines(self.runner.bus, self.bead.ref, self.plugin.name))
        try:
            self.proc = processes.spawn(argv, self.plugin.workdir, env,
                                        stdin=subprocess.PIPE if stdin_data is not None else None)
        except OSError as exc:
            self.output.close()
            self._finish("failure", {"reason": f"cannot start {argv[0]}: {exc.strerror or exc}", "log": self.log_path})
            return
        assert self.proc.stdout is not None
        self._pipe = self.proc.stdout.fileno()
        os.set_blocking(self._pipe, False)
        self._exit = processes.exit_descriptor(self.proc.pid)
        self._deadline = started + self.plugin.execution.timeout.seconds
        self._started_at = time.time()
        if stdin_data is not None:
            threading.Thread(target=_feed_stdin, args=(self.proc, stdin_data), daemon=True).start()

    def announce(self) -> None:
        """Say on the bus that the child started (on the loop, after :meth:`start` on whichever thread): a run's events
        are all published from the loop, in their order."""
        if self._started_at and self.proc is not None:
            self.runner.bus.publish(RunStarted(self.bead.ref, self.plugin.name, self.dog, self.proc.pid, self.log_path, self._started_at))

    def _check_running(self, now: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            self._begin_ending(now, None)
        elif (why := self.runner.why_stop(self.bead.id)) is not None:
            self._stop_reason = why
            self._begin_ending(now, "stopped")
        elif now >= self._deadline:
            self._begin_ending(now, "timeout")

    def _begin_ending(self, now: float, why: str | None) -> None:
        """The child exited, or must: its whole process group goes (SIGTERM, then SIGKILL after the grace)."""
        assert self.proc is not None and self.output is not None
        self._why_ending = why
        grace = self.runner.settings.kill_grace
        if why == "timeout":
            self.output.mark(f"timed out after {self.plugin.execution.timeout}: the process group got SIGTERM (SIGKILL after {grace})")
        elif why == "stopped":
            self.output.mark(f"stopped: {self._stop_reason}; the process group got SIGTERM (SIGKILL after {grace})")
        self.phase = Phase.ENDING
        self._kill_at = now + grace.seconds
        if processes.group_alive(self.proc.pid):
            processes.signal_group(self.proc.pid, signal.SIGTERM)

    def _check_ending(self, now: float) -> None:
        """Wait (without waiting) for the group to go; SIGKILL once the grace is over; then look for escapees."""
        assert self.proc is not None
        if not self._killed and processes.group_alive(self.proc.pid):
            if now < self._kill_at:
                return
            processes.signal_group(self.proc.pid, signal.SIGKILL)
            self._killed = True
        if self.proc.poll() is None:
            return  # the leader's exit is not collected yet: next turn
        processes.reap(self.proc)
        if processes.tagged(self.token):
            self.phase = Phase.SWEEPING
            self._sweeper = threading.Thread(target=self._sweep, name=f"sweep-{self.bead.ref}", daemon=True)
            self._sweeper.start()
        else:
            self._swept(now)

    def _sweep(self) -> None:
        """On its own thread: killing escapees takes up to a grace, and the loop must not wait for it."""
        try:
            self._escaped = processes.sweep(self.token, self.runner.settings.kill_grace.seconds)
        finally:
            self.runner.wake()

    def _swept(self, now: float) -> None:
        if self._escaped:
            assert self.output is not None
            self.output.mark(f"{self._escaped} process(es) that left the run's process group were still running: killed")
        self.phase = Phase.DRAINING
        self._drain_until = now + DRAIN_SECONDS

    def _end(self) -> None:
        """Everything is known: close the output and settle what the exit says."""
        assert self.proc is not None and self.output is not None
        self._close_pipe()
        self._close_exit()
        self.output.close()
        code = self.proc.returncode
        data: dict[str, object] = {"exit_code": code, "log": self.log_path, "pid": self.proc.pid}
        if code is not None and code < 0:
            data["signal"] = signal_name(-code)
        reasons = [self.output.error] if self.output.error else []
        if self._why_ending == "stopped":
            result, reasons = "abandoned", [f"stopped: {self._stop_reason}", *reasons]
        elif self._why_ending == "timeout":
            result, reasons = "timeout", [f"ran past its timeout of {self.plugin.execution.timeout}", *reasons]
        elif code == 0:
            result = "success"
        else:
            result, reasons = "failure", [exit_words(code), *reasons]
        if result in ("failure", "timeout") and (said := last_line(self.log_path)):
            data["log_summary"] = said  # its summary, unless the plugin reports one of its own (see shared.closed)
        self._finish(result, {**data, "reason": "; ".join(reasons)} if reasons else data)

    def fail(self, exc: BaseException) -> None:
        """gtui itself failed this run: its processes go at once, and the run is recorded a failure that says why."""
        if self.proc is not None:
            processes.signal_group(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(timeout=self.runner.settings.kill_grace.seconds)
            except subprocess.TimeoutExpired:
                pass
            else:
                processes.reap(self.proc)
        self._close_pipe()
        self._close_exit()
        if self.output is not None:
            self.output.close()
        self._finish("failure", {"reason": f"gtui could not run it: {type(exc).__name__}: {exc}"})

    def _finish(self, result: str, data: dict[str, object]) -> None:
        self.result = result
        self.data = {"dog": self.dog, "duration_s": round(time.monotonic() - self.began, 3), **data}
        self.phase = Phase.ENDED

    def _close_pipe(self) -> None:
        if self._pipe is not None and self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._pipe = None

    def _close_exit(self) -> None:
        if self._exit is not None:
            os.close(self._exit)
            self._exit = None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_words(code: int | None) -> str:
    """``exited 3`` or ``killed by SIGTERM``: a negative status is a signal, said by name."""
    if code is None:
        return "did not exit"
    return f"killed by {signal_name(-code)}" if code < 0 else f"exited {code}"


def _feed_stdin(proc: subprocess.Popen[bytes], payload: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except OSError:
        pass
