"""The kennel: the one long-lived process per town and host that executes every run.

Faces (``gtui --once``, the control room, ``gtui plugin run``, a plugin's
``gt dog dispatch``) never run a plugin: they claim its run on the ledger as
``queued`` and return.  The kennel of an eligible host takes it within a
moment and its dogs run it; its result is on the ledger for whoever asks
next.  So no face waits for a plugin, and none stops a run by going away.

Where a kennel lives, for one town and host (:class:`Place`):

- ``<town>/.gtui/kennel/<host>.lock``: held (``flock``) by the living kennel
  for its whole life, and holding its pid.  The kernel lets go of it when
  the kennel dies, however it dies, so "is one alive?" is one ``flock``
  probe, and at most one kennel holds it.
- ``<host>.sock``: a Unix socket on which the kennel hears ``wake`` (a run
  was queued: take it now), ``stop`` and ``drain``.  Only the town's own
  user may speak to it.
- ``<host>.log``: what an autostarted kennel prints (it has no terminal).

A command that queues a run for this host calls :func:`ensure`: with a
kennel alive it wakes it; with none, under a second lock (``.spawn``) so
that racing commands start exactly one, it starts ``gtui kennel
--autostarted`` detached (its own session, stdin from /dev/null, stdout and
stderr to the log) and waits until the new kennel holds its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from gtcore.core.errors import GtError, KennelBusy
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.dogs import kennel_door as door
from gtcore.dogs import processes
from gtcore.dogs.kennel_answers import GRACE_SECONDS, Answers
from gtcore.dogs.pool import DogPool, Job

if TYPE_CHECKING:
    from typing import Any

    from gtcore.dogs.kennel_answers import Answerer
    from gtcore.engine import Engine
    from gtcore.plugins.discovery import PluginSet
    from gtcore.storage.contract import QueuedRun
    from gtcore.town.layout import Town

LOCK_WAIT_SECONDS = 2.0  # a new kennel waits this long for a lock a face may be probing; a living kennel holds it for good
SPAWN_WAIT_SECONDS = 15.0  # the longest a command waits for the kennel it started to hold its lock
LOG_CAP = 1024 * 1024  # an autostarted kennel's log is rotated (one old copy) when it grows past this
REQUEST_SECONDS = 0.5  # the whole request line, however slowly it trickles in
TALKS = 64  # connections a kennel keeps at once (each has its thread); one more is closed at once
RESCAN_SECONDS = 2.0  # how old a scan the queue may be matched against (a plugin it lacks rescans at once)
PAGE_RUNS = 64  # queued runs read at once for the dogs, who take them a few at a time (see Kennel.jobs)
BEAT_PROBLEMS_SECONDS = 3600.0  # problems a kennel noted are shown for an hour


class Place(Record):
    """Where the kennel of one town and host keeps its lock, its socket and its log."""

    host: str
    lock: Path
    socket: str
    log: Path

    @property
    def spawn_lock(self) -> Path:
        return self.lock.with_suffix(".spawn")


def place(town: Town, host: str | None = None) -> Place:
    """The kennel's files for ``town`` on ``host`` (this host by default)."""
    host = host or door.hostname()
    safe = door.host_file_name(host)
    directory = town.state_dir / "kennel"
    return Place(host, directory / f"{safe}.lock", door.socket_path(str(town.root), host), directory / f"{safe}.log")


# -- what a face asks ----------------------------------------------------------------------


def alive(where: Place) -> dict[str, Any] | None:
    """The living kennel's own words (pid, started_at, ...) when one holds the lock, else None.

    Only probes: the lock is taken shared for an instant when it is free, so a
    probe never stops a kennel from starting (it waits :data:`LOCK_WAIT_SECONDS`).
    """
    try:
        fd = os.open(where.lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _words(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _words(fd: int) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        words = json.loads(os.pread(fd, 4096, 0) or b"{}")
        if isinstance(words, dict):
            return words
    return {}


def tell(where: Place, request: dict[str, Any], *, timeout: float = 0.5, answer: bool = True) -> dict[str, Any] | None:
    """Send one request to the kennel; its answer (None: no kennel listens, or it did not answer within ``timeout``)."""
    return door.tell(where.socket, request, timeout=timeout, answer=answer)


def wake(where: Place) -> bool:
    """Tell the kennel that runs wait (without waiting for its answer); False when none listens."""
    return tell(where, {"op": "wake"}, timeout=0.2, answer=False) is not None


def ensure(town: Town, argv: Sequence[str], where: Place | None = None) -> str | None:
    """A kennel alive for ``town`` on this host, woken: started (``argv`` + kennel arguments) when none is.

    Returns None, or what keeps runs waiting (the kennel could not be started).
    Racing commands start one kennel: the check and the start happen under
    the spawn lock, and the first kennel holds its own lock before that one is let go.
    """
    where = where or place(town)
    if alive(where) is not None:
        wake(where)
        return None
    try:
        where.lock.parent.mkdir(parents=True, exist_ok=True)
        spawn_fd = os.open(where.spawn_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return f"cannot start a kennel: {where.lock.parent}: {exc.strerror or exc}"
    try:
        if not _lock(spawn_fd, SPAWN_WAIT_SECONDS):
            return f"cannot start a kennel: another command held {where.spawn_lock} for {SPAWN_WAIT_SECONDS:g}s"
        if alive(where) is not None:  # another command started it meanwhile
            wake(where)
            return None
        return _spawn(town, argv, where)
    finally:
        os.close(spawn_fd)


def _lock(fd: int, wait: float) -> bool:
    """Take ``flock`` on ``fd``, exclusive, within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _spawn(town: Town, argv: Sequence[str], where: Place) -> str | None:
    """Start the kennel detached and wait until it holds its lock (its first half exits then, see :func:`detach`)."""
    _rotate(where.log)
    try:
        log = open(where.log, "ab")  # noqa: SIM115 - handed to the child, closed here once it has it
    except OSError as exc:
        return f"cannot start a kennel: {where.log}: {exc.strerror or exc}"
    try:
        proc = subprocess.Popen([*argv, "--town", str(town.root), "kennel", "--autostarted"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd=town.root)
    except OSError as exc:
        return f"cannot start a kennel ({argv[0]}): {exc.strerror or exc}"
    finally:
        log.close()
    try:
        code = proc.wait(SPAWN_WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"the kennel did not start within {SPAWN_WAIT_SECONDS:g}s; see {where.log}"
    if alive(where) is None:
        return f"the kennel exited at once (status {code}); see {where.log}"
    return None


def _rotate(log: Path) -> None:
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_CAP:
            log.replace(log.with_name(log.name + ".1"))


def detach() -> Callable[[bool], None]:
    """Fork once more: the parent (what the starting command waits for) exits as soon as the child says it is ready.

    Returns how the child says so (``ready(True)``: it holds the lock;
    ``False``: another kennel does).  The child is adopted by init, so the
    command that started it is left with nothing to reap.
    """
    read, write = os.pipe()
    if os.fork():
        os.close(write)
        with contextlib.suppress(OSError):
            os.read(read, 1)
        os._exit(0)
    os.close(read)
    os.setsid()

    def ready(ok: bool) -> None:
        with contextlib.suppress(OSError):
            os.write(write, b"1" if ok else b"0")
            os.close(write)

    return ready


# -- the kennel itself ---------------------------------------------------------------------------


class Kennel:
    """A kennel: the lock, the socket, the dogs and what they take, the heartbeat, and (``patrol``) the patrols.

    ``gtui kennel`` runs one in the foreground (:meth:`serve`); tests and
    benchmarks run one inside their own process (:meth:`start`, then
    :meth:`close`).  It is handed an engine of its own for the ledger,
    settings, runner and escalations.
    """

    def __init__(self, engine: Engine, *, patrol: bool = False, autostarted: bool = False,
                 answerer: Answerer | None = None) -> None:
        self.engine = engine
        self.answers = Answers(answerer, engine.runner.run_environment)  # the thin commands and the plugins' gt and bd
        self._talks = threading.BoundedSemaphore(TALKS)
        self.where = place(engine.town)
        self.host = self.where.host
        self.patrol = patrol
        self.autostarted = autostarted
        self.started_at = time.time()
        self.pool: DogPool | None = None
        self.draining = False
        self.stop_reason: str | None = None
        self._lock_fd: int | None = None
        self._server: socket.socket | None = None
        self._event = threading.Event()  # the main loop has something to do (a stop, a drain, a patrol asked for)
        self._busy_at = time.monotonic()  # when this kennel last had work: an idle autostarted one goes after kennel_idle
        self._beat_fails = 0
        self.successor = False  # drained with runs still queued for this host: close() starts the next kennel
        self._scan: PluginSet | None = None  # the plugins as last scanned for the queue (see _plugins)
        self._scanned_at = float("-inf")
        self._page: list[Job] = []  # queued runs read for the dogs and not handed out yet, next first (see jobs)
        self._page_at = float("-inf")

    # -- life ---------------------------------------------------------------------------

    def open(self) -> None:
        """Hold the lock for this town and host; :class:`KennelBusy` when another kennel does."""
        self.where.lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.where.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        holder = _words(fd)
        quick = isinstance(holder.get("pid"), int) and holder["pid"] != os.getpid() and processes.pid_alive(holder["pid"])
        if not _lock(fd, 0.0 if quick else LOCK_WAIT_SECONDS):
            words = _words(fd)
            os.close(fd)
            raise KennelBusy(f"a kennel is already running for {self.engine.town.root} on {self.host}"
                             f" (pid {words.get('pid', '?')}); see gtui kennel status")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": self.host, "started_at": self.started_at,
                                  "patrol": self.patrol}).encode(), 0)
        self._lock_fd = fd

    def start(self) -> Kennel:
        """Listen, beat, and let the dogs take work (the lock must be held: :meth:`open`)."""
        assert self._lock_fd is not None, "open() first"
        self._listen()
        self.engine.wake_kennel = self.look
        self.pool = DogPool(self.engine.runner, self.engine.settings.dogs, self.engine.bus, self,
                            aftermath=self.engine.after_run)
        self.beat()
        return self

    def close(self) -> None:
        """Stop the runs still going (recorded ``abandoned``), forget this kennel, let go of everything."""
        pool = self.pool
        if pool is not None:
            if pool.busy():
                self.engine.runner.stop_all(self.stop_reason or "the kennel stopped")
            pool.shutdown()
            pool.join(self.engine.settings.kill_grace.seconds + 10.0)
            self.pool = None
        self.engine.runner.retire()
        with contextlib.suppress(GtError):
            self.engine.ledger.forget_kennel(self.host, os.getpid())
        self._unlisten()
        if not self.answers.wait():
            _say(f"commands still being answered after {GRACE_SECONDS:g}s: their askers answer them themselves")
        self.engine.close()
        self.engine.ledger.close()  # the last connection of a process folds the WAL in: the ledger is left whole
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock goes with the descriptor
            self._lock_fd = None
        if self.successor and self.engine.kennel_argv:
            self.successor = False
            problem = ensure(self.engine.town, self.engine.kennel_argv, self.where)
            if problem:
                _say(problem)

    def ask_stop(self, reason: str) -> None:
        """Stop: every run ends now, recorded ``abandoned`` with ``reason``, and the kennel exits (any thread, a signal handler)."""
        self.stop_reason = reason
        self._event.set()

    def ask_drain(self) -> None:
        """Drain: take nothing new, exit when the runs in flight have ended."""
        self.draining = True
        if self.pool is not None:
            self.pool.shutdown()
        self.beat()  # every face shows it draining now, not at the next heartbeat
        self._event.set()

    def serve(self) -> int:
        """The kennel's main thread until it stops, drains or (autostarted, no ``patrol``) stays idle for ``kennel_idle``."""
        next_patrol = time.monotonic()
        while True:
            settings = self.engine.settings
            now = time.monotonic()
            if self.patrol and now >= next_patrol and not self.draining:
                self._patrol()
                next_patrol = time.monotonic() + settings.patrol_interval.seconds
            wait = settings.kennel_idle.seconds if not self.patrol else max(0.0, next_patrol - time.monotonic())
            self._event.wait(min(wait, 1.0))
            self._event.clear()
            if self.stop_reason is not None:
                return 0
            assert self.pool is not None
            if self.draining and self.pool.join(0.0):
                self.successor = bool(self.engine.kennel_argv) and self.engine.settings.kennel == "auto" and bool(self._eligible())
                return 0
            if self.pool.busy() or self.engine.runner.has_pending() or self.answers.busy:  # a result not yet recorded keeps it
                self._busy_at = time.monotonic()
            elif self._idle_long_enough() and self._let_go():
                return 0

    def _patrol(self) -> None:
        try:
            report = self.engine.patrol_once()
        except GtError as exc:
            _say(f"patrol failed: {exc}")
            return
        for problem in report.problems:
            _say(f"{problem.level}: {problem}")

    def _idle_long_enough(self) -> bool:
        return self.autostarted and not self.patrol and time.monotonic() - self._busy_at >= self.engine.settings.kennel_idle.seconds

    def _let_go(self) -> bool:
        """Exit for idleness, unless work came: the lock is let go first, then the queue read, so a command that saw this
        kennel alive queued its run before the read (and it is taken), and one that did not starts the next kennel."""
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if not self._eligible():
            return True
        if _lock(self._lock_fd, 0.0):
            self._busy_at = time.monotonic()
            return False
        return True  # another kennel took over meanwhile: it takes the work

    # -- what the dogs ask (the JobSource) ----------------------------------------------------

    def look(self) -> None:
        """Work may be queued: the dogs look now."""
        self._busy_at = time.monotonic()
        if self.pool is not None:
            self.pool.look()

    def jobs(self, idle: int) -> list[Job]:
        """The queued runs this kennel may take, first come first served, at most ``idle``.

        A run of a plugin this host does not know (removed since its claim,
        or a host whose checkout differs) is left queued: another host's
        kennel may know it, and ``queue_timeout`` ends its wait with the reason.

        The queue is read a page at a time and handed out from that page
        (:attr:`_page`) while it lasts and is at most :data:`RESCAN_SECONDS`
        old: a thousand runs queued at once cost a read per page, not one per
        turn of the dogs' loop.  Runs queued since come after the page's (the
        queue is in claim order); one of the page that another kennel took
        or someone stopped meanwhile is refused at its take, and the dogs look again.
        """
        now = time.monotonic()
        if len(self._page) < idle or now - self._page_at > RESCAN_SECONDS:
            self._page, self._page_at = self._eligible(max(idle, PAGE_RUNS)), now
        eligible, self._page = self._page[:idle], self._page[idle:]
        if eligible:
            self._busy_at = now
        return eligible

    def _eligible(self, wanted: int = 1) -> list[Job]:
        """Up to ``wanted`` queued runs this kennel may take: the queue is read a page at a time, a page as large as the
        wants, four times larger each time runs of the page are for other hosts."""
        page = max(16, wanted)
        while True:
            try:
                queued = self.engine.ledger.queued_runs(page)
            except GtError as exc:
                _say(f"cannot read the queue: {exc}")
                return []
            if not queued:
                return []
            plugins = self._plugins(queued)
            found = [Job(run, plugin, run.rig or plugin.rig) for run in queued  # in the order the ledger gives them
                     if (plugin := plugins.get(run.plugin)) is not None and plugin.execution.runs_on(self.host)]
            if len(found) >= wanted or len(queued) < page:
                return found[:wanted]
            page *= 4

    def _plugins(self, queued: list[QueuedRun]) -> PluginSet:
        """The town's plugins as scanned at most :data:`RESCAN_SECONDS` ago, or now when a queued run names one it lacks:
        a thousand runs queued at once cost one scan, not one per turn of the dogs' loop."""
        now = time.monotonic()
        known = self._scan
        if known is None or now - self._scanned_at > RESCAN_SECONDS or any(known.get(run.plugin) is None for run in queued):
            known = self._scan = self.engine.plugins()
            self._scanned_at = now
        return known

    def stops(self, running: list[int]) -> dict[int, str]:
        try:
            return self.engine.ledger.stop_requests(running)
        except GtError:
            return {}

    def beat(self) -> None:
        """Tell every host this kennel is alive: its runs' leases last another ``run_lease``, and its heartbeat is new.

        A run another host closed meanwhile (this kennel was frozen, or cut off
        from the ledger, past its lease) is no longer this kennel's: it is
        stopped, so it never overlaps the run that may have replaced it.
        """
        runner = self.engine.runner
        for run_id in runner.renew_leases():
            runner.stop(run_id, "its lease was lost: another host's patrol closed it as abandoned while this kennel did not renew it")
        cutoff = time.time() - BEAT_PROBLEMS_SECONDS
        data = {"dogs": [dog._asdict() for dog in (self.pool.dogs() if self.pool else [])], "patrol": self.patrol,
                "autostarted": self.autostarted, "draining": self.draining,
                "problems": [problem for at, problem in list(runner.problems) if at >= cutoff], "commands_served": self.answers.served}
        try:
            self.engine.ledger.beat_kennel(self.host, os.getpid(), self.started_at, data)
            self._beat_fails = 0
        except GtError as exc:
            self._beat_fails += 1
            if self._beat_fails == 1:
                _say(f"cannot beat: {exc}")

    # -- the socket ---------------------------------------------------------------------

    def _listen(self) -> None:
        path = self.where.socket
        directory = os.path.dirname(path)
        _private_directory(directory, is_state=directory == str(self.where.lock.parent))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a dead kennel's: this one holds the lock
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o600)
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), name="kennel-socket", daemon=True).start()

    def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.where.socket)
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()

    def _accept(self, server: socket.socket) -> None:
        """Take every connection at once, each to a thread of its own: one asker that says nothing holds up no other."""
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed: the kennel is going
            if not self._talks.acquire(blocking=False):
                conn.close()  # as many connections as a kennel keeps at once: this one is refused
                continue
            threading.Thread(target=self._talk, args=(conn,), name="kennel-door", daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._answer(conn)
        except OSError:
            pass  # the asker went away
        finally:
            self._talks.release()

    def _answer(self, conn: socket.socket) -> None:
        """Answer one request."""
        if not door.own(conn):  # only the town's user (or root) may wake, stop, drain or ask it
            conn.sendall(b'{"error": "not the town\'s user"}\n')
            return
        fds: list[int] = []  # a plugin's gt or bd hands over its standard streams with its request
        try:
            try:
                request = json.loads(door.read_line(conn, REQUEST_SECONDS, fds) or b"{}")
            except ValueError:
                request = {}
            op = request.get("op") if isinstance(request, dict) else None
            if op in ("command", "shim"):
                self.answers.take(conn, request, fds, door.peer_pid(conn))
                return
        finally:
            for fd in fds:
                os.close(fd)
        reply: dict[str, Any] = {"ok": True, "pid": os.getpid(), "host": self.host, "runs": len(self.engine.runner.active)}
        if op == "wake":
            act = self.look
        elif op == "stop":
            reason = str(request.get("reason") or "the kennel was stopped (gtui kennel stop)")
            act = partial(self.ask_stop, reason)
        elif op == "drain":
            act = self.ask_drain
        else:
            reply, act = {"error": f"unknown request {op!r}"}, _nothing
        with contextlib.suppress(OSError):  # the answer first: a stop may end this process before a later send
            conn.sendall(json.dumps(reply).encode() + b"\n")
        act()


def _nothing() -> None:
    """What an unknown request does."""


def _private_directory(directory: str, *, is_state: bool) -> None:
    """The socket's directory: the town's own, or one under /tmp that only this user may enter (refused otherwise)."""
    if is_state:
        os.makedirs(directory, exist_ok=True)
        return
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    info = os.lstat(directory)
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not os.path.isdir(directory) or os.path.islink(directory):
        raise GtError(f"the kennel's socket directory {directory} is not this user's private directory; remove it")


def _say(message: str) -> None:
    """A line on the kennel's stderr: the terminal of a foreground kennel, the log of an autostarted one."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} gtui kennel: {message}\n")
        sys.stderr.flush()
