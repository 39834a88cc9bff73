"""A run's output: the capped log file on disk and the live lines for the control room.

Every chunk a run prints is written and flushed at once (whoever follows the
file sees it now), the file keeps only the last :data:`LOG_CAP` bytes, and
lines go to the event bus at a bounded rate: a plugin that floods its output
floods neither the disk nor the UI.  A log that cannot be written (a full
disk) costs the run its log, never its supervision or its result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from gtcore.core.events import EventBus, OutputLine
from gtcore.core.records import TYPE_CHECKING
from gtcore.core.safe_text import clean

if TYPE_CHECKING:
    from gtcore.core.beads import Bead
    from gtcore.storage.contract import LedgerDump

LOG_CAP = 1024 * 1024
LIVE_LINES_PER_SECOND = 200


class CappedLog:
    """A run log on disk that keeps only its last ``cap`` bytes.

    It grows to twice the cap, then keeps the tail: memory stays at most one
    cap whatever the plugin prints.
    """

    def __init__(self, path: Path | str, cap: int = LOG_CAP) -> None:
        self.path = path
        self.cap = cap
        self.dropped = 0
        try:
            self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:  # the first run of the town (or the directory was removed): make it
            os.makedirs(os.path.dirname(path), exist_ok=True)
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


def last_line(path: str | None, limit: int = 200) -> str:
    """The last line of a run's log with something on it (at most ``limit`` characters): what a failed run that reported
    no summary most likely says of itself ("error: disk quota exceeded")."""
    lines = [line for line in (clean(raw).strip() for raw in log_tail(path, max_lines=50).splitlines())
             if line and not line.startswith("[gtui")]  # no escape sequence reaches a summary, the ledger or the JSON
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= limit else lines[-1][: limit - 1] + "…"


class LiveLines:
    """Splits output into lines for the event bus, at a bounded rate.

    A plugin that floods output must not flood the UI; the log file has it all.
    """

    def __init__(self, bus: EventBus, run_ref: str, plugin: str) -> None:
        self.bus, self.run_ref, self.plugin = bus, run_ref, plugin
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
        self.bus.publish(OutputLine(self.run_ref, self.plugin, line.decode("utf-8", "replace").rstrip("\r")))

    def _report_skipped(self) -> None:
        if self._skipped:
            self.bus.publish(OutputLine(self.run_ref, self.plugin, f"[gtui: {self._skipped} lines not shown live; see the run log]"))
            self._skipped = 0


class RunOutput:
    """Where a run's output goes: the capped log file and the live lines.

    A log that cannot be written (disk full) must not stop the run or its
    supervision: the first error is kept as the run's note and the rest of
    the output is still drained (and still shown live).
    """

    def __init__(self, path: Path | str, live: LiveLines) -> None:
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


def log_text(path: str) -> str:
    """A finished run's log as text, for a ledger every host reads (capped as the file is; unreadable: said so)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(LOG_CAP + 4096).decode("utf-8", "replace")
    except OSError as exc:
        return f"(gtui could not read this run's log at {path}: {exc.strerror or exc})\n"


def no_log_reason(run: Bead, path: str) -> str:
    """Why a run has no log here, truly: not started yet, run on another host, ended without a process, or its file gone."""
    from gtcore.dogs import processes

    host = (run.data.get("owner") or {}).get("host")
    reason = run.data.get("reason")
    if run.status == "queued":
        return f"{run.ref} has no log yet: it waits in the queue for a kennel"
    if host and host != processes.hostname():
        return f"{run.ref} ran on {host}, which keeps its log (gtui plugin log there), and this ledger keeps no copy"
    if not run.data.get("log") and run.status == "closed":
        return f"{run.ref} has no log: it ended {run.result} without starting anything" + (f" ({reason})" if reason else "")
    if run.status == "running":
        return f"{run.ref} has printed nothing yet"
    return f"{run.ref} has no log: {path} is gone (removed since the run ended)"


def with_log_files(part: LedgerDump) -> LedgerDump:
    """A dump batch with its runs' log files read in, for a ledger that keeps logs for every host."""
    logs = {bead.id: log_text(bead.data["log"]) for bead in part.beads
            if bead.kind == "wisp" and isinstance(bead.data.get("log"), str) and os.path.isfile(bead.data["log"])}
    return part._replace(logs=logs)
