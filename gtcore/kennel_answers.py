"""Thin commands the kennel answers (:mod:`gtui.thin` asks through :mod:`gtcore.kennel_door`).

The face gives the kennel an answerer: what it answers (the thin commands of
this town, nothing else) and how (the command line run in the kennel's own
process).  Here is the rest: a request is refused before anything runs when
it comes from another gtui version or another environment, or is no thin
command of this town; an accepted one is answered from its connection's own
thread, with a keep-alive line every second so a client can tell a kennel
that works from one that froze; a client that went away is seen (its command
then takes nothing it cannot give back, such as ``--once``'s ``finished``);
and the kennel waits for the commands in flight before it goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
from functools import partial

from gtcore import __version__
from gtcore import kennel_door as door
from gtcore.records import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    class Answerer(Protocol):
        """What the face gives a kennel to answer thin commands with."""

        def refusal(self, argv: list[str]) -> str | None:
            """Why this command line is not one to answer here (None: it is)."""

        def __call__(self, argv: list[str], gone: Callable[[], bool]) -> tuple[int, str, str]:
            """Run it as its own process would: exit status, stdout, stderr (``gone``: the asker went away)."""

KEEPALIVE_SECONDS = 1.0  # a newline this often while a command runs (door.QUIET_SECONDS on the asking side)
SEND_SECONDS = 5.0  # the longest a kennel waits for an asker to read its answer
GRACE_SECONDS = 10.0  # how long a kennel that goes waits for the commands it is answering


class Answers:
    """The commands a kennel answers, and those in flight (which keep it from idling out or going at once)."""

    def __init__(self, answerer: Answerer | None) -> None:
        self.answerer = answerer
        self.key = door.environment_key(os.environ)
        self.served = 0
        self._in_flight = 0
        self._cond = threading.Condition()

    @property
    def busy(self) -> bool:
        """A command is being answered: the kennel is not idle."""
        return self._in_flight > 0

    def refusal(self, request: dict[str, Any]) -> str | None:
        """Why this request is answered by the asker's own process instead (None: the kennel answers it)."""
        argv = request.get("argv")
        if self.answerer is None:
            return "this kennel answers no commands"
        if request.get("version") != __version__:
            return "another gtui version"
        if request.get("key") != self.key:
            return "another environment"
        if not (isinstance(argv, list) and all(isinstance(word, str) for word in argv)):
            return "not a command line"
        return self.answerer.refusal(argv)

    def take(self, conn: socket.socket, request: dict[str, Any]) -> None:
        """Answer a command request on ``conn`` (from the connection's own thread), or say why not."""
        conn.settimeout(SEND_SECONDS)
        why = self.refusal(request)
        if why is not None:
            conn.sendall(json.dumps({"bypass": why}).encode() + b"\n")
            return
        with self._cond:
            self._in_flight += 1
        try:
            conn.sendall(door.ACCEPTED + b"\n")
            self._serve(conn, request["argv"])
        finally:
            with self._cond:
                self._in_flight -= 1
                self.served += 1
                self._cond.notify_all()

    def _serve(self, conn: socket.socket, argv: list[str]) -> None:
        assert self.answerer is not None
        lock, done = threading.Lock(), threading.Event()

        def send(payload: bytes) -> None:
            with lock, contextlib.suppress(OSError):
                conn.sendall(payload)

        def keep_alive() -> None:
            while not done.wait(KEEPALIVE_SECONDS):
                send(b"\n")

        threading.Thread(target=keep_alive, name="kennel-keepalive", daemon=True).start()
        try:
            code, out, err = self.answerer(argv, partial(gone, conn))
        finally:
            done.set()
        send(door.answer_bytes(code, out, err))

    def wait(self, seconds: float = GRACE_SECONDS) -> bool:
        """Wait until no command is being answered (at most ``seconds``); whether none is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout=seconds)


def gone(conn: socket.socket) -> bool:
    """The asker closed its end (it gave up, or was killed): nobody will read the answer."""
    poller = select.poll()
    poller.register(conn, select.POLLHUP)
    return any(event & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, event in poller.poll(0))
