"""Child processes: own process groups, group-wide termination, owner identity, escapees.

Every plugin run and condition check is started in a new session so that a
timeout can signal the whole tree with one ``killpg``.  A descendant can
leave that group (``setsid``, a double fork); to find those, every run's
environment carries a token (:data:`RUN_TOKEN`) that descendants inherit,
and the gtui process makes itself a child subreaper (Linux
``PR_SET_CHILD_SUBREAPER``) so that orphans are re-parented to it rather
than to init: at the end of a run (and at its timeout) every process that
still carries the run's token is killed, and its zombie reaped.  A run's
owner is recorded as (host, pid, start time) so another process can tell,
without guessing, that the owner died and the run was abandoned — the start
time guards against a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

from gtcore.core.records import TYPE_CHECKING
from gtcore.dogs.kennel_door import HOST_VARIABLE as HOST_VARIABLE
from gtcore.dogs.kennel_door import hostname as hostname

if TYPE_CHECKING:
    from typing import Any

RUN_TOKEN = "GTUI_RUN_TOKEN"
_PR_SET_CHILD_SUBREAPER = 36
_spawn_lock = threading.Lock()
_spawned: set[int] = set()  # children started here and not yet waited for: never reaped behind their Popen's back
_subreaper = False


def new_token() -> str:
    """A token no other run on any host shares (a run id repeats across towns)."""
    return uuid.uuid4().hex


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux): they stay findable and their zombies are ours to reap.

    Only the ``gtui`` command does this, never a library user of the engine:
    reaping orphans is safe only where every child is started by :func:`spawn`.
    """
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    import ctypes  # here: most commands never start a run

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def spawn(argv: list[str], cwd: Path | str, env: Mapping[str, str] | Mapping[bytes, bytes],
          stdin: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, stdout and stderr on one pipe, stdin /dev/null unless given.

    The child is registered until :func:`reap` so the orphan reaper never takes its exit status.
    """
    given = devnull() if stdin is None else stdin
    return _registered(lambda: subprocess.Popen(argv, cwd=cwd, env=env, stdin=given, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                start_new_session=True, close_fds=True))


def _registered(start: Callable[[], subprocess.Popen[Any]]) -> subprocess.Popen[Any]:
    """Start a child and register it in :data:`_spawned`, so that :func:`reap_orphans` leaves it to its ``wait``.

    The orphan reaper reads only the main thread's children (where Linux
    puts adopted orphans, see :func:`_children`).  A child started on the
    main thread is listed there from its first instant, so it is started and
    registered in one step under the lock; one started on any other thread
    never is, so dogs start their runs side by side, not one at a time.
    """
    if threading.current_thread() is threading.main_thread():
        with _spawn_lock:
            proc = start()
            _spawned.add(proc.pid)
        return proc
    proc = start()
    with _spawn_lock:
        _spawned.add(proc.pid)
    return proc


@lru_cache(maxsize=1)
def devnull() -> int:
    """One descriptor of /dev/null for every child's stdin (Popen would open and close one per child)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def run_captured(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` with text output, registered like :func:`spawn` (raises as ``subprocess.run`` does)."""
    proc = _registered(lambda: subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                                errors="replace"))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        with _spawn_lock:
            _spawned.discard(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def reap(proc: subprocess.Popen[bytes]) -> int:
    """Wait for a child of :func:`spawn` and forget it."""
    code = proc.wait()
    with _spawn_lock:
        _spawned.discard(proc.pid)
    return code


def child_environment(extra: dict[str, str], first_on_path: tuple[Path, ...] = ()) -> dict[str, str]:
    """gtui's environment plus ``extra``; on PATH first ``first_on_path``, then gtui's own bin directory.

    Plugins and checks call ``gtui`` (``gtui stale --quiet``) even when the
    operator started it as ``.venv/bin/gtui`` without activating the venv; a
    run finds the plugin-facing ``gt`` and ``bd`` before any other.
    """
    return {**base_environment(first_on_path), **extra}


def base_environment(first_on_path: tuple[Path, ...] = ()) -> dict[str, str]:
    """What every child gets before its own variables (see :func:`child_environment`); build it once, merge per child."""
    first = [*map(str, first_on_path), os.path.dirname(sys.executable)]
    rest = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part and part not in first]
    return {**os.environ, "PATH": os.pathsep.join([*first, *rest])}


def exit_descriptor(pid: int) -> int | None:
    """A pidfd for a child (Linux 5.3 and later): readable once it exits, so its end is seen at once.  None elsewhere."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies excluded where we can tell)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(_in_group_and_running(pid, pgid) for pid in _pids()) if _HAS_PROC else True


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_HAS_PROC = Path("/proc/self/stat").exists()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> str | None:
    """/proc/PID/stat as text (None when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:  # open(), not Path: a scan reads one per process
            return handle.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    raw = _stat(pid)
    return None if raw is None else raw[raw.rfind(")") + 2:].split()


def process_tree() -> tuple[dict[int, list[int]], dict[int, str]]:
    """Every process's children, and its command name, as ``ps -axo pid=,ppid=,comm=`` gives them: one pass over /proc."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for pid in _pids():
        raw = _stat(pid)
        if raw is None:
            continue
        names[pid] = raw[raw.find("(") + 1:raw.rfind(")")]
        children.setdefault(int(raw[raw.rfind(")") + 2:].split()[1]), []).append(pid)
    return children, names


def _in_group_and_running(pid: int, pgid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z" and int(fields[2]) == pgid


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    if not _HAS_PROC:
        return 0 if pid_alive(pid) else None
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True




def owner_identity() -> dict[str, object]:
    """Who owns runs claimed by this process (asked for on every claim, so cached per pid)."""
    return dict(_identity(os.getpid(), hostname()))


@lru_cache(maxsize=4)
def _identity(pid: int, host: str) -> tuple[tuple[str, object], ...]:
    """Cached by pid and host: a forked child, or a GT_HOST set later in the process, is a new owner."""
    return (("host", host), ("pid", pid), ("start", process_start(pid)))


def kill_orphan(pid: object, started: object) -> bool:
    """SIGKILL the group of an abandoned run recorded before run tokens (its leader still that process)."""
    if not isinstance(pid, int) or started is None or process_start(pid) != started:
        return False
    signal_group(pid, signal.SIGKILL)
    return True


def carries(pid: int, token: str) -> bool:
    """Process ``pid`` carries the run ``token`` in its environment (the variable itself, exactly that value)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return f"{RUN_TOKEN}={token}".encode() in handle.read().split(b"\0")
    except OSError:
        return False


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return marker in handle.read()
    except OSError:
        return False


def _children(*, adopted_only: bool = False) -> list[int]:
    """This process's children, zombies too; ``adopted_only``: where adopted orphans are, one read.

    A child belongs to the thread that forked it, so the whole list means a
    ``children`` file per thread.  An orphan a subreaper adopts goes to its
    first live thread (Linux's ``find_alive_thread``): the main thread, whose
    file alone lists every leftover of every run (with the main thread's own
    children, which :func:`spawn` registered).
    """
    me = os.getpid()
    try:
        tasks = [str(me)] if adopted_only else os.listdir(f"/proc/{me}/task")
        found: list[int] = []
        for task in tasks:
            with open(f"/proc/{me}/task/{task}/children") as handle:
                found += map(int, handle.read().split())
        return found
    except OSError:  # no CONFIG_PROC_CHILDREN: look at every process's parent
        return [pid for pid in _pids() if (fields := _stat_fields(pid)) is not None and int(fields[1]) == me]


def tagged(token: str, *, everywhere: bool = False) -> list[int]:
    """Live processes carrying ``token`` in their environment (never this process).

    As a subreaper a run's escapees are this process's adopted children once
    their parents are gone, so only those are read; ``everywhere`` reads
    every process (after the owner died, orphans went to init).
    """
    if not _HAS_PROC or not token:
        return []
    marker = f"{RUN_TOKEN}={token}\0".encode()
    me = os.getpid()
    if _subreaper and not everywhere:
        with _spawn_lock:
            started_here = set(_spawned)
        # Leftovers of runs are the main thread's adopted children; the runs' own leaders (registered by spawn)
        # carry other tokens.  Only adopted orphans are read, and usually there are none: one small read a run.
        candidates = [pid for pid in _children(adopted_only=True) if pid not in started_here]
    else:
        candidates = _pids()
    return [pid for pid in candidates if pid != me and _alive_not_zombie(pid) and _environ_has(pid, marker)]


def _alive_not_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def sweep(token: str, grace: float, *, everywhere: bool = False) -> int:
    """Kill every process still carrying a run's token: SIGTERM, then SIGKILL after ``grace``.

    Each escapee's own process group goes with it (a ``setsid`` daemon leads
    one).  Killing an escapee can orphan its children in turn, so this looks
    again until none is left (a few rounds at most).  Returns how many were found.
    """
    found = 0
    for _ in range(5):
        pids = tagged(token, everywhere=everywhere)
        if not pids:
            break
        found += len(pids)
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive_not_zombie(pid) for pid in pids):
            reap_orphans()
            time.sleep(0.02)
        _signal_all([pid for pid in pids if _alive_not_zombie(pid)], signal.SIGKILL)
        reap_orphans()
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def reap_orphans() -> int:
    """Collect the exit status of adopted orphans that died (as a subreaper they are our zombies).

    Children started by :func:`spawn` are left to their own ``wait``.
    """
    if not _subreaper:
        return 0
    reaped = 0
    with _spawn_lock:
        for pid in _children(adopted_only=True):
            fields = _stat_fields(pid)
            if pid in _spawned or fields is None or fields[0] != "Z":
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped += 1
    return reaped


def owner_dead(owner: dict[str, object]) -> bool:
    """True when the recorded owner is certainly gone (same host, pid dead or reused)."""
    pid = owner.get("pid")
    if owner.get("host") != hostname() or not isinstance(pid, int):
        return False
    started = process_start(int(pid))  # int(): a bool is an int too, and True was read as pid 1
    return started is None or (owner.get("start") is not None and started != owner.get("start"))
