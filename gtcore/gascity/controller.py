"""Is Gas City's controller running for a city?  It dispatches the city's orders every 30s while it runs, beside gtui.

A running controller (``gc start``, or the machine's supervisor for a
registered city) holds ``flock(LOCK_EX)`` on ``<city>/.gc/controller.lock``
for its life; a probe that cannot take the lock at once knows it runs, and
lets go at once.  Its socket (``<city>/.gc/controller.sock``, or
``/tmp/gascity-controller/<sha256(realpath)[:32]>.sock`` when that path is
too long) answers ``identify`` with its pid and mode.  Sources:
``cmd/gc/controller.go`` (``acquireControllerLock``,
``controllerSocketPath``), ``cmd/gc/cmd_events_reemit_execution.go``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path

from gtcore.core.digests import sha256_hex
from gtcore.core.errors import Problem

SOCKET_PATH_MAX = 100


def lock_path(city: Path) -> Path:
    return city / ".gc" / "controller.lock"


def socket_path(city: Path) -> str:
    """Where the controller listens (``controllerSocketPath``)."""
    direct = str(city / ".gc" / "controller.sock")
    if len(direct.encode()) <= SOCKET_PATH_MAX:
        return direct
    try:
        real = os.path.realpath(city)
    except OSError:
        real = str(city)
    return f"/tmp/gascity-controller/{sha256_hex(real.encode())[:32]}.sock"


def running(city: Path) -> bool:
    """Whether a controller holds the city's lock now (a missing lock file: never started)."""
    try:
        fd = os.open(lock_path(city), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def identify(city: Path, timeout: float = 0.5) -> dict[str, object]:
    """The controller's own word on itself (``{"pid": 123, "hosting_mode": "standalone"}``), or {} when it does not answer."""
    with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(socket_path(city))
        conn.sendall(b"identify\n")
        reply = b""
        while b"\n" not in reply and len(reply) < 4096:
            chunk = conn.recv(1024)
            if not chunk:
                break
            reply += chunk
        answer = json.loads(reply.split(b"\n", 1)[0])
        return answer if isinstance(answer, dict) else {}
    return {}


def problem(city: Path) -> Problem | None:
    """A warning while gc's controller runs: it dispatches the city's orders too, and has no switch to stop only that."""
    if not running(city):
        return None
    words = identify(city)
    pid = words.get("pid")
    mode = words.get("hosting_mode")
    who = "Gas City's controller" + (f" (pid {pid}{', ' + str(mode) if mode else ''})" if pid else "")
    return Problem(str(lock_path(city)), None,
                   f"{who} holds this lock: it dispatches the city's orders every 30s on its own, beside gtui, so orders run twice;"
                   " stop it (gc stop, or unregister the city from the supervisor) for gtui to run them, or run gtui --read-only"
                   " to watch (docs/gascity.md)", "warning")
