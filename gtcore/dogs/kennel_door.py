"""The kennel's door: where its socket is, and how a process speaks to it, importing nothing of gtcore.

A thin command (:mod:`gtui.thin`) asks a living kennel to answer it before it
imports anything else: this module is all it needs, so it imports only what
``python -c pass`` has already imported, and ``_socket``.  Not ``socket``,
``json``, ``re`` or ``hashlib``: each costs a thin command a millisecond or
more, and the interpreter's own start is the yardstick.  The kennel itself
(:mod:`gtcore.dogs.kennel`) opens the door at the same place and answers through it.

One request is one JSON line.  ``wake``, ``stop`` and ``drain`` get one JSON
line back.  ``command`` (and ``shim``, a plugin's ``gt`` or ``bd`` with its
standard streams passed along) gets a line at once: ``{"accepted": true}`` (or
``{"bypass": why}`` when the kennel will not answer it: another gtui version,
another environment); the asker, if that came in time, says go (a newline),
else it closes and runs the command itself, and the kennel, seeing no go, runs
nothing: a command runs once, here or there; then an empty line every second while the command runs;
then its end: ``<exit status> <stdout bytes> <stderr bytes>`` on a line, and
those bytes as they are (no JSON to escape a listing of 10,000 plugins into,
and out of again).
"""

from __future__ import annotations

import _socket
import os
import sys
import time

HOST_VARIABLE = "GT_HOST"
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; past this the socket lives in a private directory under /tmp
REQUEST_MAX = 64 * 1024
ANSWER_MAX = 64 * 1024 * 1024  # a command's whole output (a listing of 10,000 plugins is a few MiB)
ACCEPT_SECONDS = 0.2  # a kennel that has not accepted a command by then is bypassed (and said to be slow)
QUIET_SECONDS = 10.0  # a kennel that accepted and then said nothing (not even its keep-alive line) for this long froze
ACCEPTED = b'{"accepted": true}'
GO = b"\n"  # the asker's word that it saw ACCEPTED in time and waits for the answer (the kennel runs nothing without it)
STREAMS = (0, 1, 2)  # what a plugin's gt or bd hands the kennel: its standard input, output and error
HAND_BACK = -1  # the status of a gt or bd the kennel hands back: it hands over to a real one, which only the asker can become
# What can change a thin command's answer: gtui's and Gas Town's own variables, the time zone and the clock (faked),
# colours forced or refused, where programs, libraries and files are found, who asks.  Not the terminal's (a thin
# command's output is for a pipe, or JSON) nor the locale (Python itself sets LC_CTYPE for its children: two
# processes of one shell would differ).
ENV_PREFIXES = ("GT_", "GC_", "GTUI_", "BD_", "PYTHON", "FAKETIME", "LD_")
ENV_NAMES = ("TZ", "NO_COLOR", "FORCE_COLOR", "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "XDG_RUNTIME_DIR")
TOWN_ENV = ("GT_TOWN_ROOT", "GT_ROOT", "GT_TOWN")  # gtcore.town.layout.TOWN_ENV, which a thin command cannot afford to import
ENV_UNWEIGHED = ("GTUI_THIN", *TOWN_ENV)  # how this command is asked to go; the town, sent named
HOST_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
# A JSON string's escapes for what may not stand in one as it is (the request is written without importing json).
JSON_ESCAPES = {**{code: f"\\u{code:04x}" for code in range(0x20)}, ord('"'): '\\"', ord("\\"): "\\\\"}


def hostname() -> str:
    """This host's name as the town knows it: ``GT_HOST`` when set (two gtuis on one box as two hosts), else the system's."""
    return os.environ.get(HOST_VARIABLE) or os.uname().nodename


def _digest(text: str) -> str:
    import hashlib  # only for names too long or too strange to stand as they are

    return hashlib.sha256(text.encode()).hexdigest()


def host_file_name(host: str) -> str:
    """``host`` as a file name: itself when it is one, else a cleaned name with a hash (two hosts never share one)."""
    safe = "".join(char if char in HOST_SAFE else "_" for char in host)
    if safe != host or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{_digest(host)[:8]}"
    return safe


def socket_path(root: str, host: str) -> str:
    """The kennel's socket for the town at ``root`` (resolved) on ``host``: in the town's ``.gtui/kennel/``, or, when
    that path is too long for a Unix socket, in this user's private directory under /tmp."""
    sock = os.path.join(root, ".gtui", "kennel", f"{host_file_name(host)}.sock")
    if len(sock.encode()) > SOCKET_PATH_MAX:
        digest = _digest(f"{root}\0{host}")[:24]
        sock = f"/tmp/gtui-{os.getuid()}/{digest}.sock"  # not $TMPDIR: every command must find it, whatever its environment
    return sock


def environment_key(environ: dict[str, str] | os._Environ[str]) -> str:
    """What in an environment can change a command's answer (the town, the ledger's URL, the time zone, colours,
    PATH, ...), as one string: a kennel answers a command only for a process whose key is its own."""
    weighed = sorted((name, value) for name, value in environ.items()
                     if (name.startswith(ENV_PREFIXES) or name in ENV_NAMES) and name not in ENV_UNWEIGHED)
    return "\0".join(f"{name}={value}" for name, value in weighed)


def json_string(text: str) -> str:
    """``text`` as a JSON string (UTF-8 as it is; a lone surrogate, which no JSON reader takes, raises ValueError)."""
    quoted = f'"{text.translate(JSON_ESCAPES)}"'
    quoted.encode()  # UnicodeEncodeError, a ValueError, for a lone surrogate
    return quoted


def request_line(op: str, argv: list[str], key: str, version: str, **fields: str) -> bytes:
    """The request line of a thin command (``op`` ``command``) or a plugin's ``gt``/``bd`` (``shim``), written as
    :func:`json.dumps` would read it back (see the module's text)."""
    words = ", ".join(map(json_string, argv))
    more = "".join(f", {json_string(name)}: {json_string(value)}" for name, value in fields.items())
    return (f'{{"op": {json_string(op)}, "argv": [{words}], "key": {json_string(key)}, "version": {json_string(version)}{more}}}\n'
            ).encode()


def _connection(path: str, timeout: float) -> _socket.socket | None:
    """A connection to the kennel at ``path``, when one of this user listens there (TimeoutError: it did not accept)."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(path)
        if own(conn):
            return conn
    except TimeoutError:
        conn.close()
        raise
    except OSError:
        pass
    conn.close()
    return None


def tell(path: str, request: dict[str, object], *, timeout: float = 0.5, answer: bool = True) -> dict[str, object] | None:
    """Send one request to the kennel; its answer (None: no kennel of this user listens, or it did not answer within
    ``timeout``)."""
    import json  # the faces and the kennel have it already; a thin command never comes here

    try:
        conn = _connection(path, timeout)
        if conn is None:
            return None
        try:
            conn.sendall(json.dumps(request).encode() + b"\n")
            if not answer:
                return {}
            conn.shutdown(_socket.SHUT_WR)
            return _parsed(read_line(conn, timeout))
        finally:
            conn.close()
    except OSError:
        return None


def ask_command(path: str, argv: list[str], key: str, version: str) -> dict[str, object] | str | None:
    """Ask the kennel at ``path`` to answer a command: its answer (``code``, and ``out`` and ``err`` as bytes); a
    string when it will not or did not (why, in words: ``slow`` when it accepted nothing within
    :data:`ACCEPT_SECONDS`); None when no kennel of this user listens there, or the command cannot be sent (a word
    that is no text: the command runs in its own process)."""
    try:
        request = request_line("command", argv, key, version)
    except ValueError:
        return None
    return _ask(path, request, ())


def ask_shim(path: str, tool: str, argv: list[str], key: str, version: str, token: str) -> dict[str, object] | str | None:
    """Ask the kennel at ``path`` to answer a plugin's ``gt`` or ``bd`` (``tool``) for the run holding ``token``, with
    this process's own standard input, output and error (handed over with the request: the kennel reads and writes
    them as this process would).  Answers as :func:`ask_command` does; ``out`` and ``err`` are then empty."""
    try:
        request = request_line("shim", argv, key, version, tool=tool, token=token)
    except ValueError:
        return None
    return _ask(path, request, STREAMS)


def _ask(path: str, request: bytes, fds: tuple[int, ...]) -> dict[str, object] | str | None:
    """Send ``request`` (and the file descriptors ``fds``) and read the answer: see :func:`ask_command`."""
    try:
        conn = _connection(path, ACCEPT_SECONDS)
    except TimeoutError:
        return "slow"  # a kennel so swamped that its backlog is full
    if conn is None:
        return None  # no socket, nobody behind it, or not this user's kennel: never believed
    try:
        reader = _Reader(conn)
        try:
            _send(conn, request, fds)
            first = reader.line(REQUEST_MAX)
            if first == ACCEPTED:
                conn.sendall(GO)  # from here the kennel runs it, and this process waits for its end: never both
                conn.shutdown(_socket.SHUT_WR)
        except OSError:
            return "slow"  # the kennel sees this end closed instead of a go: it runs nothing
        if first != ACCEPTED:
            return _refusal(first)
        conn.settimeout(QUIET_SECONDS)  # accepted: the command takes what it takes, its keep-alive says it is alive
        return _answer(reader)
    finally:
        conn.close()


def _send(conn: _socket.socket, data: bytes, fds: tuple[int, ...]) -> None:
    """``data``, with ``fds`` passed along with its first bytes (SCM_RIGHTS: the kennel gets its own copies)."""
    if fds:
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)  # an array of C ints
        data = data[conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)]):]
    if data:  # not an empty send: a kennel that refused at once and closed would make it an error
        conn.sendall(data)


def _refusal(line: bytes | None) -> str:
    """Why a kennel did not accept a command (``slow``: it said nothing in time)."""
    said = _parsed(line) if line else None
    if said is None:
        return "slow"
    return str(said.get("bypass") or said.get("error") or "it refused")


class _Reader:
    """Lines and counted bytes from a connection, read as they come (a kennel's answers may share one packet)."""

    def __init__(self, conn: _socket.socket) -> None:
        self.conn, self.buffer = conn, bytearray()

    def _more(self) -> bool:
        chunk = self.conn.recv(262144)
        self.buffer += chunk
        return bool(chunk)

    def line(self, limit: int) -> bytes | None:
        """The next line without its newline (None: the connection ended first, or the line is longer than ``limit``)."""
        while (cut := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > limit or not self._more():
                return None
        line = bytes(self.buffer[:cut])
        del self.buffer[:cut + 1]
        return line

    def exactly(self, size: int) -> bytes | None:
        """The next ``size`` bytes (None: the connection ended first)."""
        while len(self.buffer) < size:
            if not self._more():
                return None
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken


def _answer(reader: _Reader) -> dict[str, object] | str:
    """The command's answer after its keep-alive lines; why there is none."""
    gone = "the kennel went away while answering"
    try:
        while (line := reader.line(REQUEST_MAX)) == b"":
            continue
        code, out_size, err_size = map(int, (line or b"").split())
        if out_size < 0 or err_size < 0 or out_size + err_size > ANSWER_MAX:
            return gone
        body = reader.exactly(out_size + err_size)
    except TimeoutError:
        return f"the kennel went quiet (nothing for {QUIET_SECONDS:g}s)"
    except (OSError, ValueError):  # ValueError: an end that is not three numbers
        return gone
    if body is None:
        return gone
    return {"code": code, "out": body[:out_size], "err": body[out_size:]}


def answer_bytes(code: int, out: str, err: str) -> bytes:
    """A command's end as the kennel sends it (:func:`_answer` reads it)."""
    out_bytes, err_bytes = out.encode(errors="surrogateescape"), err.encode(errors="surrogateescape")
    return b"%d %d %d\n" % (code, len(out_bytes), len(err_bytes)) + out_bytes + err_bytes


def own(conn: _socket.socket) -> bool:
    """What answers on ``conn`` runs as this user (or root): a socket another user made where the kennel's would be
    is never believed (Linux: SO_PEERCRED; elsewhere the socket's 0600 mode and private directory keep others out)."""
    credentials = _peer(conn)
    return credentials is None or credentials[1] in (os.getuid(), 0)


def peer_pid(conn: _socket.socket) -> int | None:
    """The process at the other end of ``conn`` (None where the system does not say)."""
    credentials = _peer(conn)
    return credentials[0] if credentials is not None else None


def _peer(conn: _socket.socket) -> tuple[int, int] | None:
    """The peer's pid and uid (SO_PEERCRED's struct ucred: pid, uid, gid as C ints), or None where there is none."""
    try:
        raw = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except (OSError, AttributeError):
        return None
    return int.from_bytes(raw[0:4], sys.byteorder, signed=True), int.from_bytes(raw[4:8], sys.byteorder)


def read_line(conn: _socket.socket, seconds: float, fds: list[int] | None = None) -> bytes:
    """One line (a request, or a kennel's answer), read within ``seconds`` in all: a peer that trickles it in byte by
    byte gets no more time.  ``fds``: the file descriptors that came with it are added there (the caller owns them)."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    while size < REQUEST_MAX:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the line did not come in time")
        conn.settimeout(left)
        chunk = conn.recv(65536) if fds is None else _received(conn, fds)
        if not chunk:
            break
        cut = chunk.find(b"\n")
        chunks.append(chunk if cut < 0 else chunk[:cut])
        if cut >= 0:
            break
        size += len(chunk)
    return b"".join(chunks)


def _received(conn: _socket.socket, fds: list[int]) -> bytes:
    """Bytes from ``conn``, and the file descriptors that came with them into ``fds``."""
    data, ancillary, _flags, _address = conn.recvmsg(65536, _socket.CMSG_SPACE(4 * len(STREAMS)))
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(payload[at:at + 4], sys.byteorder) for at in range(0, len(payload) - len(payload) % 4, 4)]
    return data


def _parsed(line: bytes) -> dict[str, object] | None:
    import json

    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
