"""Child processes: own process groups, group-wide termination, owner identity.

Every plugin run and condition check is started in a new session so that a
timeout can signal the whole tree (grandchildren included) with one
``killpg``.  A run's owner is recorded as (host, pid, start time) so another
process can tell, without guessing, that the owner died and the run was
abandoned — the start time guards against a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path


def spawn(argv: list[str], cwd: Path, env: dict[str, str], stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, stdout and stderr on one pipe."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """gtui's environment plus ``extra``, with gtui's own bin directory first on PATH.

    Plugins and checks call ``gtui`` (``gtui stale --quiet``) even when the
    operator started it as ``.venv/bin/gtui`` without activating the venv.
    """
    bin_dir = os.path.dirname(sys.executable)
    rest = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part and part != bin_dir]
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, *rest]), **extra}


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


def terminate_group(pgid: int, grace: float, pump: Callable[[float], None] = time.sleep) -> bool:
    """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL what is left.

    ``pump`` is called with a short interval while waiting (a run keeps
    draining its output so that a child blocked on a full pipe can exit).
    Returns True when SIGKILL was needed.
    """
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return False
        pump(0.05)
    if not group_alive(pgid):
        return False
    signal_group(pgid, signal.SIGKILL)
    return True


_HAS_PROC = Path("/proc/self/stat").exists()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


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


@lru_cache(maxsize=1)
def hostname() -> str:
    return socket.gethostname()


def owner_identity() -> dict[str, object]:
    """Who owns runs claimed by this process (asked for on every claim, so cached per pid)."""
    return dict(_identity(os.getpid()))


@lru_cache(maxsize=4)
def _identity(pid: int) -> tuple[tuple[str, object], ...]:
    return (("host", hostname()), ("pid", pid), ("start", process_start(pid)))


def kill_orphan(pid: object, started: object) -> bool:
    """SIGKILL the process group of an abandoned run if its leader is still that same process."""
    if not isinstance(pid, int) or started is None or process_start(pid) != started:
        return False
    signal_group(pid, signal.SIGKILL)
    return True


def owner_dead(owner: dict[str, object]) -> bool:
    """True when the recorded owner is certainly gone (same host, pid dead or reused)."""
    if owner.get("host") != hostname() or not isinstance(owner.get("pid"), int):
        return False
    pid = int(owner["pid"])  # type: ignore[arg-type]
    started = process_start(pid)
    return started is None or (owner.get("start") is not None and started != owner.get("start"))
