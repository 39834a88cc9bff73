"""The kennel's door: where its socket is, and how a process speaks to it, importing nothing of gtcore.

A thin command (:mod:`gtui.thin`) asks a living kennel to answer it before it
imports anything else: this module is all it needs, so it stays a leaf of the
standard library.  The kennel itself (:mod:`gtcore.kennel`) opens the door at
the same place and answers through it.

One request is one JSON line; each answer is one JSON line.  ``wake``,
``stop`` and ``drain`` get one answer.  ``command`` gets two: at once
``{"accepted": true}`` (or ``{"bypass": why}`` when the kennel will not answer
it: another gtui version, another environment), then, when the command ends,
``{"code": N, "out": ..., "err": ...}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import time
from functools import lru_cache

HOST_VARIABLE = "GT_HOST"
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; past this the socket lives in a private directory under /tmp
REQUEST_MAX = 64 * 1024
ANSWER_MAX = 64 * 1024 * 1024  # a command's whole output (a listing of 10,000 plugins is a few MiB)
ACCEPT_SECONDS = 0.2  # a kennel that has not accepted a command by then is bypassed (and said to be slow)
QUIET_SECONDS = 10.0  # a kennel that accepted and then said nothing (not even its keep-alive line) for this long froze
# What can change a thin command's answer: gtui's and Gas Town's own variables, the time zone and the clock (faked),
# colours forced or refused, where programs, libraries and files are found, who asks.  Not the terminal's (a thin
# command's output is for a pipe, or JSON) nor the locale (Python itself sets LC_CTYPE for its children: two
# processes of one shell would differ).
ENV_PREFIXES = ("GT_", "GC_", "GTUI_", "BD_", "PYTHON", "FAKETIME", "LD_")
ENV_NAMES = ("TZ", "NO_COLOR", "FORCE_COLOR", "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "XDG_RUNTIME_DIR")
TOWN_ENV = ("GT_TOWN_ROOT", "GT_ROOT", "GT_TOWN")  # gtcore.town.TOWN_ENV, which a thin command cannot afford to import
ENV_UNWEIGHED = ("GTUI_THIN", *TOWN_ENV)  # how this command is asked to go; the town, sent named


def hostname() -> str:
    """This host's name as the town knows it: ``GT_HOST`` when set (two gtuis on one box as two hosts), else the system's."""
    return os.environ.get(HOST_VARIABLE) or _system_hostname()


@lru_cache(maxsize=1)
def _system_hostname() -> str:
    return socket.gethostname()


def host_file_name(host: str) -> str:
    """``host`` as a file name: itself when it is one, else a cleaned name with a hash (two hosts never share one)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", host)
    if safe != host or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha256(host.encode()).hexdigest()[:8]}"
    return safe


def socket_path(root: str, host: str) -> str:
    """The kennel's socket for the town at ``root`` (resolved) on ``host``: in the town's ``.gtui/kennel/``, or, when
    that path is too long for a Unix socket, in this user's private directory under /tmp."""
    sock = os.path.join(root, ".gtui", "kennel", f"{host_file_name(host)}.sock")
    if len(sock.encode()) > SOCKET_PATH_MAX:
        digest = hashlib.sha256(f"{root}\0{host}".encode()).hexdigest()[:24]
        sock = f"/tmp/gtui-{os.getuid()}/{digest}.sock"  # not $TMPDIR: every command must find it, whatever its environment
    return sock


def environment_key(environ: dict[str, str] | os._Environ[str]) -> str:
    """A digest of what in an environment can change a command's answer (the town, the ledger's URL, the time zone,
    colours, PATH, ...): a kennel answers a command only for a process whose key is its own."""
    weighed = sorted((name, value) for name, value in environ.items()
                     if (name.startswith(ENV_PREFIXES) or name in ENV_NAMES) and name not in ENV_UNWEIGHED)
    return hashlib.sha256(json.dumps(weighed).encode()).hexdigest()


def tell(path: str, request: dict[str, object], *, timeout: float = 0.5, answer: bool = True) -> dict[str, object] | None:
    """Send one request to the kennel; its answer (None: no kennel of this user listens, or it did not answer within
    ``timeout``)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            if not own(conn):
                return None
            conn.sendall(json.dumps(request).encode() + b"\n")
            if not answer:
                return {}
            conn.shutdown(socket.SHUT_WR)
            return _parsed(read_line(conn, timeout))
    except OSError:
        return None


def ask_command(path: str, argv: list[str], key: str, version: str) -> dict[str, object] | str | None:
    """Ask the kennel at ``path`` to answer a command: its answer (``code``, ``out``, ``err``); a string when it will
    not or did not (why, in words: ``slow`` when it accepted nothing within :data:`ACCEPT_SECONDS`); None when no
    kennel of this user listens there."""
    request = {"op": "command", "argv": argv, "key": key, "version": version}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(ACCEPT_SECONDS)
        try:
            conn.connect(path)
        except TimeoutError:
            return "slow"  # a kennel so swamped that its backlog is full
        except OSError:
            return None  # no socket, or nobody behind it: no kennel
        if not own(conn):
            return None  # whoever listens there is not this user's kennel: never believed
        try:
            conn.sendall(json.dumps(request).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            reader = conn.makefile("rb")  # the answers may come in one packet: read them as lines
            first = _parsed(reader.readline(REQUEST_MAX))
        except OSError:
            return "slow"
        if first is None:
            return "slow"
        if first.get("accepted") is not True:
            return str(first.get("bypass") or first.get("error") or "it refused")
        conn.settimeout(QUIET_SECONDS)  # accepted: the command takes what it takes, its keep-alive says it is alive
        return _answer(reader)


def _answer(reader: object) -> dict[str, object] | str:
    """The command's answer after its keep-alive lines; why there is none."""
    try:
        while (line := reader.readline(ANSWER_MAX)) == b"\n":  # type: ignore[attr-defined]
            continue
    except TimeoutError:
        return f"the kennel went quiet (nothing for {QUIET_SECONDS:g}s)"
    except OSError:
        line = b""
    answer = _parsed(line)
    return answer if answer is not None and isinstance(answer.get("code"), int) else "the kennel went away while answering"


def own(conn: socket.socket) -> bool:
    """What answers on ``conn`` runs as this user (or root): a socket another user made where the kennel's would be
    is never believed (Linux: SO_PEERCRED; elsewhere the socket's 0600 mode and private directory keep others out)."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return True
    return struct.unpack("3i", raw)[1] in (os.getuid(), 0)


def read_line(conn: socket.socket, seconds: float) -> bytes:
    """One line (a request, or a kennel's answer), read within ``seconds`` in all: a peer that trickles it in byte by
    byte gets no more time."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    while size < REQUEST_MAX:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the line did not come in time")
        conn.settimeout(left)
        chunk = conn.recv(65536)
        if not chunk:
            break
        cut = chunk.find(b"\n")
        chunks.append(chunk if cut < 0 else chunk[:cut])
        if cut >= 0:
            break
        size += len(chunk)
    return b"".join(chunks)


def _parsed(line: bytes) -> dict[str, object] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
