"""Running one plugin: claim, execute, stream, time out, record.

A run is claimed on the ledger (a ``running`` wisp) before anything starts,
and always closed with a result — ``success``, ``failure``, ``timeout``,
``skipped`` — even when something inside gtui goes wrong.  If the ledger
cannot take the closing write (disk full), the result is kept in memory and
written by the next patrol: a record is never lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gtcore import processes
from gtcore.errors import LedgerError
from gtcore.events import EventBus, OutputLine, RunClaimed, RunFinished, RunStarted
from gtcore.ledger import ANY_LAST_RUN, Bead, GateMoved, Ledger, RunInFlight
from gtcore.plugins import Plugin
from gtcore.settings import Settings
from gtcore.town import Town

LOG_CAP = 1024 * 1024
LIVE_LINES_PER_SECOND = 200
_CHUNK = 65536


@dataclass
class RunOutcome:
    """What became of a dispatch: the closed run, or why none was claimed."""

    run: Bead | None
    refused: str | None = None


@dataclass
class _Pending:
    run_id: int
    result: str
    data: dict[str, object]
    at: float


class CappedLog:
    """A run log on disk that keeps only its last ``cap`` bytes.

    It grows to twice the cap, then keeps the tail: memory stays at most one
    cap whatever the plugin prints.
    """

    def __init__(self, path: Path, cap: int = LOG_CAP) -> None:
        self.path = path
        self.cap = cap
        self.dropped = 0
        try:
            self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:  # the first run of the town (or the directory was removed): make it
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` and flush it: whoever follows the file (``tail -f``, the log viewer) sees it now."""
        self._file.write(chunk)
        self._file.flush()
        self._size += len(chunk)
        if self._size > 2 * self.cap:
            self._keep_tail()

    def _keep_tail(self) -> None:
        self._file.flush()
        with open(self.path, "rb") as source:
            source.seek(self._size - self.cap)
            tail = source.read()
        self.dropped += self._size - self.cap
        self._file.seek(0)
        self._file.truncate()
        self._file.write(tail)
        self._size = len(tail)

    def abandon(self) -> None:
        """Stop writing after an I/O error: close the file, keep what made it to disk."""
        self._file.close()

    def close(self) -> None:
        if self._size > self.cap:
            self._keep_tail()
        if self.dropped:
            self._file.flush()
            with open(self.path, "rb") as source:
                tail = source.read()
            with open(self.path, "wb") as target:
                target.write(f"[gtui: {self.dropped} earlier bytes of output dropped; the log keeps the last {self.cap}]\n".encode())
                target.write(tail)
        self._file.close()


def log_tail(path: str | None, max_bytes: int = 4096, max_lines: int = 30) -> str:
    """The last lines of a run log, for an escalation's body."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - max_bytes))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(tail.splitlines()[-max_lines:])


class _LiveLines:
    """Splits output into lines for the event bus, at a bounded rate.

    A plugin that floods output must not flood the UI; the log file has it all.
    """

    def __init__(self, bus: EventBus, run_id: str, plugin: str) -> None:
        self.bus, self.run_id, self.plugin = bus, run_id, plugin
        self._partial = b""
        self._window = time.monotonic()
        self._sent = 0
        self._skipped = 0

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[-4096:]
        for line in lines:
            self._publish(line)

    def flush(self) -> None:
        if self._partial:
            self._publish(self._partial)
            self._partial = b""
        self._report_skipped()

    def _publish(self, line: bytes) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._report_skipped()
            self._window, self._sent = now, 0
        if self._sent >= LIVE_LINES_PER_SECOND:
            self._skipped += 1
            return
        self._sent += 1
        self.bus.publish(OutputLine(self.run_id, self.plugin, line.decode("utf-8", "replace").rstrip("\r")))

    def _report_skipped(self) -> None:
        if self._skipped:
            self.bus.publish(OutputLine(self.run_id, self.plugin, f"[gtui: {self._skipped} lines not shown live; see the run log]"))
            self._skipped = 0


class Runner:
    """Executes plugin runs for the dogs of one process."""

    def __init__(self, town: Town, ledger: Ledger, settings: Settings, bus: EventBus, plugin_bin: tuple[Path, ...] = ()) -> None:
        """``plugin_bin``: directories put first on every run's PATH (the plugin-facing ``gt`` and ``bd``)."""
        self.town, self.ledger, self.settings, self.bus = town, ledger, settings, bus
        self._base_environment = processes.base_environment(plugin_bin)  # built once: a run adds only its own variables
        # bash as the runs' PATH finds it, looked up once: a bare name makes every start try each PATH directory in turn
        self._bash = shutil.which("bash", path=self._base_environment.get("PATH")) or "bash"
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()
        self.active: set[int] = set()
        self._stop = threading.Event()  # set once: every run of this process ends now
        self.stop_reason = ""

    def run(self, plugin: Plugin, dog: str, *, expect_last_run: int | None = ANY_LAST_RUN, rig: str | None = None) -> RunOutcome:
        """Claim and execute one run of ``plugin`` on ``dog``; blocks until it ends."""
        target_rig = rig or plugin.rig
        started = time.time()
        try:
            run = self._claim(plugin, dog, target_rig, started, expect_last_run)
        except (RunInFlight, GateMoved) as exc:
            return RunOutcome(None, str(exc))
        self.bus.publish(RunClaimed(run.ref, plugin.name, target_rig, dog, started))
        try:
            result, data = self._execute(plugin, run, dog, target_rig)
        except Exception as exc:  # record the truth even when gtui itself fails
            result, data = "failure", {"reason": f"gtui could not run it: {type(exc).__name__}: {exc}"}
        data = {"dog": dog, "duration_s": round(time.time() - started, 3), **data}
        closed = self._close(run, result, data)
        with self._lock:
            self.active.discard(run.id)
        self.bus.publish(
            RunFinished(run.ref, plugin.name, target_rig, dog, result, data.get("exit_code"),  # type: ignore[arg-type]
                        data["duration_s"], str(data.get("reason", "")), time.time(), closed)  # type: ignore[arg-type]
        )
        return RunOutcome(closed)

    def _claim(self, plugin: Plugin, dog: str, rig: str, started: float, expect_last_run: int | None) -> Bead:
        """Claim the run on the ledger and mark it as ours in one step.

        The lock is held across the claim: a patrol reconciling in another
        thread must never see the new running wisp while :meth:`owns` still
        says no, or it would close a live run of this very process as abandoned.
        """
        with self._lock:
            run = self.ledger.claim_run(
                plugin.name,
                rig,
                labels=plugin.tracking.labels,
                data={"dog": dog, "owner": processes.owner_identity(), "timeout_s": plugin.execution.timeout.seconds,
                      "token": processes.new_token()},
                now=started,
                expect_last_run=expect_last_run,
            )
            self.active.add(run.id)
        return run

    def _close(self, run: Bead, result: str, data: dict[str, object]) -> Bead:
        at = time.time()
        try:
            return self.ledger.close_run(run.id, result, data=data, now=at)
        except LedgerError:
            with self._lock:
                self._pending.append(_Pending(run.id, result, data, at))
            return Bead(run.id, "wisp", run.title, "closed", "", run.created_at, at, at, run.plugin, run.rig, result,
                        {**run.data, **data}, run.labels)

    def flush_pending(self) -> int:
        """Write results the ledger refused earlier; returns how many are still waiting."""
        with self._lock:
            pending, self._pending = self._pending, []
        for item in pending:
            try:
                self.ledger.close_run(item.run_id, item.result, data=item.data, now=item.at)
            except LedgerError:
                with self._lock:
                    self._pending.append(item)
        return len(self._pending)

    def stop_all(self, reason: str) -> None:
        """End every run of this process now (SIGTERM, SIGKILL after the grace); each is recorded ``abandoned`` with ``reason``.

        For a gtui that goes away with runs in flight (quit, a closed
        terminal): its runs are never left behind unsupervised.
        """
        self.stop_reason = reason
        self._stop.set()

    def has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def owns(self, run_id: int) -> bool:
        """True for runs this process is executing or still has to record."""
        with self._lock:
            return run_id in self.active or any(item.run_id == run_id for item in self._pending)

    # -- execution --------------------------------------------------------------------

    def _command(self, plugin: Plugin) -> tuple[list[str] | None, bytes | None, str]:
        if plugin.execution.type == "script":
            return [self._bash, str(plugin.run_script)], None, ""
        if not self.settings.agent_command:
            return None, None, "no agent_command configured in settings/gtui.toml for this agent plugin"
        return list(self.settings.agent_command), plugin.instructions.encode(), ""

    def _environment(self, plugin: Plugin, run: Bead, dog: str, rig: str) -> dict[str, str]:
        """gtui's variables, and what a Gas Town dog gets, so Gas Town's plugins run unmodified."""
        town = str(self.town.root)
        return {**self._base_environment,
            "GT_TOWN": town,
            "GT_RIG": "" if rig == "town" else rig,
            "GT_PLUGIN": plugin.name,
            "GT_RUN_ID": run.ref,
            "GT_DOG": dog,
            processes.RUN_TOKEN: str(run.data.get("token", "")),
            "GT_TOWN_ROOT": town,
            "GT_ROOT": town,
            "GT_ROLE": "dog",
            "GT_DOG_NAME": dog,
            "BD_ACTOR": f"deacon/dogs/{dog}",
            "GT_RIG_ROOT": "" if rig == "town" else str(self.town.rig_root(rig)),
            "GIT_CEILING_DIRECTORIES": town,
        }

    def _execute(self, plugin: Plugin, run: Bead, dog: str, rig: str) -> tuple[str, dict[str, object]]:
        argv, stdin_data, skip_reason = self._command(plugin)
        log_path = self.town.runs_dir / f"{run.ref}.log"
        if argv is None:
            return "skipped", {"reason": skip_reason}
        output = RunOutput(log_path, _LiveLines(self.bus, run.ref, plugin.name))
        try:
            proc = processes.spawn(argv, plugin.directory, self._environment(plugin, run, dog, rig),
                                   stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        except OSError as exc:
            output.close()
            return "failure", {"reason": f"cannot start {argv[0]}: {exc.strerror or exc}", "log": str(log_path)}
        self.bus.publish(RunStarted(run.ref, plugin.name, dog, proc.pid, str(log_path), time.time()))
        if stdin_data is not None:
            threading.Thread(target=_feed_stdin, args=(proc, stdin_data), daemon=True).start()
        timeout = plugin.execution.timeout
        timed_out = _supervise(proc, output, str(run.data.get("token", "")), timeout.seconds, self.settings.kill_grace.seconds,
                               self._stop)
        stopped = self._stop.is_set() and not timed_out
        if timed_out:
            output.mark(f"timed out after {timeout}: the process group got SIGTERM (SIGKILL after {self.settings.kill_grace})")
        elif stopped:
            output.mark(f"stopped: {self.stop_reason}; the process group got SIGTERM (SIGKILL after {self.settings.kill_grace})")
        output.close()
        data: dict[str, object] = {"exit_code": proc.returncode, "log": str(log_path), "pid": proc.pid}
        if proc.returncode is not None and proc.returncode < 0:
            data["signal"] = signal_name(-proc.returncode)
        reasons = [output.error] if output.error else []
        if stopped:
            result, reasons = "abandoned", [f"stopped: {self.stop_reason}", *reasons]
        elif timed_out:
            result, reasons = "timeout", [f"ran past its timeout of {timeout}", *reasons]
        elif proc.returncode == 0:
            result = "success"
        else:
            result, reasons = "failure", [exit_words(proc.returncode), *reasons]
        return result, {**data, "reason": "; ".join(reasons)} if reasons else data


class RunOutput:
    """Where a run's output goes: the capped log file and the live lines.

    A log that cannot be written (disk full) must not stop the run or its
    supervision: the first error is kept as the run's note and the rest of
    the output is still drained (and still shown live).
    """

    def __init__(self, path: Path, live: _LiveLines) -> None:
        self.path, self.live = path, live
        self.error: str | None = None
        self._log: CappedLog | None = None
        try:
            self._log = CappedLog(path)
        except OSError as exc:
            self._failed(exc)

    def write(self, chunk: bytes) -> None:
        if self._log is not None:
            try:
                self._log.write(chunk)
            except OSError as exc:
                self._failed(exc)
        self.live.feed(chunk)

    def mark(self, text: str) -> None:
        """A line of gtui's own in the log (a timeout, leftover processes), marked as such."""
        self.write(f"\n[gtui: {text}]\n".encode())

    def close(self) -> None:
        self.live.flush()
        if self._log is not None:
            try:
                self._log.close()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            full = " (disk full)" if exc.errno == errno.ENOSPC else ""
            self.error = f"output could not be written to {self.path}: {exc.strerror or exc}{full}; the run went on without its log"
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.abandon()
            self._log = None


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


def _supervise(proc: subprocess.Popen[bytes], output: RunOutput, token: str, timeout: float, grace: float,
               stop: threading.Event | None = None) -> bool:
    """Stream output until the run ends or times out; returns True on timeout.

    Nothing the run started outlives it: its process group goes (on timeout
    with SIGTERM, then SIGKILL after ``grace``; after a normal exit, leftovers
    in the group get the same), and so does every process that left the
    group but still carries the run's token (``setsid``, double forks).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    poller = select.poll()  # poll(2) needs no descriptor of its own, unlike epoll
    poller.register(fd, select.POLLIN)
    exit_fd = _exit_descriptor(proc.pid)  # readable when the child exits: its end is seen at once, not at the next check
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    watched = {fd, exit_fd} - {None}

    def pump(wait: float) -> None:
        """Wait up to ``wait`` seconds for output or the child's exit, and take the output that came."""
        if not watched:
            time.sleep(wait)
            return
        ready = {ready_fd for ready_fd, _ in poller.poll(wait * 1000)}
        if exit_fd in ready:  # stays readable once the child is gone: watched no more
            poller.unregister(exit_fd)
            watched.discard(exit_fd)
        if fd in ready:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                return
            if chunk:
                output.write(chunk)
            else:
                poller.unregister(fd)
                watched.discard(fd)

    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    try:
        while proc.poll() is None and (remaining := deadline - time.monotonic()) > 0 and not stop.is_set():
            if watched:
                pump(min(0.1, remaining))
            else:  # the pipe closed and the kernel has no pidfd: Popen's own wait
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=min(0.1, remaining))
        timed_out = proc.poll() is None and not stop.is_set()
        processes.terminate_group(proc.pid, grace, pump)
        processes.reap(proc)
        escaped = processes.sweep(token, grace)
        if escaped:
            output.mark(f"{escaped} process(es) that left the run's process group were still running: killed")
        drain_until = time.monotonic() + 1.0
        while fd in watched and time.monotonic() < drain_until:
            pump(0.05)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)
        proc.stdout.close()
    return timed_out


def _exit_descriptor(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux 5.3 and later), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
