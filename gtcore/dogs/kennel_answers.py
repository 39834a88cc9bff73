"""Thin commands the kennel answers (:mod:`gtui.thin` asks through :mod:`gtcore.dogs.kennel_door`).

The face gives the kennel an answerer: what it answers (the thin commands of
this town, and the ``gt`` and ``bd`` its plugins call, nothing else) and how
(run in the kennel's own process).  Here is the rest: a request is refused
before anything runs when it comes from another gtui version or another
environment, or is no thin command of this town; a plugin's ``gt`` or ``bd``
only from a process of a run this kennel holds, in the very environment the
kennel gave that run (a plugin that changed it runs its command itself), with
its standard streams handed over.  An accepted one is answered from its connection's own
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
from gtcore.core.records import TYPE_CHECKING
from gtcore.dogs import kennel_door as door
from gtcore.dogs import processes

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    class Answerer(Protocol):
        """What the face gives a kennel to answer thin commands with."""

        def refusal(self, argv: list[str]) -> str | None:
            """Why this command line is not one to answer here (None: it is)."""

        def __call__(self, argv: list[str], gone: Callable[[], bool]) -> tuple[int, str, str]:
            """Run it as its own process would: exit status, stdout, stderr (``gone``: the asker went away)."""

        def shim_refusal(self, tool: str, argv: list[str]) -> str | None:
            """Why a plugin's ``tool`` (``gt`` or ``bd``) with ``argv`` runs in its own process (None: answered here)."""

        def shim(self, tool: str, argv: list[str], env: dict[str, str], streams: list[int], pid: int) -> int:
            """Run a plugin's ``tool`` as its process ``pid`` would, in ``env``, on its standard ``streams``; its status."""

    Call = Callable[[Callable[[], bool]], tuple[int, str, str]]  # an accepted command: exit status, stdout, stderr

KEEPALIVE_SECONDS = 1.0  # a newline this often while a command runs (door.QUIET_SECONDS on the asking side)
SEND_SECONDS = 5.0  # the longest a kennel waits for an asker to read its answer
GRACE_SECONDS = 10.0  # how long a kennel that goes waits for the commands it is answering


class Answers:
    """The commands a kennel answers, and those in flight (which keep it from idling out or going at once)."""

    def __init__(self, answerer: Answerer | None, runs: Callable[[str], dict[str, str] | None] = lambda token: None) -> None:
        self.answerer = answerer
        self.runs = runs  # the environment this kennel gave the run holding a token (None: it holds no such run)
        self.key = door.environment_key(os.environ)
        self.served = 0
        self._in_flight = 0
        self._cond = threading.Condition()

    @property
    def busy(self) -> bool:
        """A command is being answered: the kennel is not idle."""
        return self._in_flight > 0

    def answer(self, request: dict[str, Any], fds: list[int], pid: int | None) -> tuple[str | None, Call | None]:
        """Why this request is answered by the asker's own process instead, or how the kennel answers it."""
        argv = request.get("argv")
        answerer = self.answerer
        if answerer is None:
            return "this kennel answers no commands", None
        if request.get("version") != __version__:
            return "another gtui version", None
        if not (isinstance(argv, list) and all(isinstance(word, str) for word in argv)):
            return "not a command line", None
        if request.get("op") == "shim":
            return self._shim(answerer, request, argv, fds, pid)
        if request.get("key") != self.key:
            return "another environment", None
        why = answerer.refusal(argv)
        return why, None if why is not None else partial(answerer, argv)

    def _shim(self, answerer: Answerer, request: dict[str, Any], argv: list[str], fds: list[int],
              pid: int | None) -> tuple[str | None, Call | None]:
        """A plugin's gt or bd: from a process of a run of this kennel (its token proves it), in that run's environment,
        which is read once here and is the one the command then runs in (the run may end meanwhile).  Its status is the
        answer: what it printed went to the plugin's own streams."""
        token, tool = request.get("token"), str(request.get("tool"))
        env = self.runs(token) if isinstance(token, str) and token else None
        if env is None:
            return "not a run of this kennel", None
        if pid is None or not processes.carries(pid, str(token)):
            return "not a process of that run", None
        if request.get("key") != door.environment_key(env):
            return "another environment", None  # the plugin changed it: what it set is for its own process to read
        if len(fds) != len(door.STREAMS):
            return "no standard streams", None
        why = answerer.shim_refusal(tool, argv)
        if why is not None:
            return why, None

        def call(gone: Callable[[], bool]) -> tuple[int, str, str]:
            return answerer.shim(tool, argv, env, fds, pid), "", ""

        return None, call

    def take(self, conn: socket.socket, request: dict[str, Any], fds: list[int] | None = None, pid: int | None = None) -> None:
        """Answer a request on ``conn`` (from the connection's own thread), or say why not.  ``fds``: what came with it
        (a plugin's standard streams; the caller closes them); ``pid``: the asking process."""
        conn.settimeout(SEND_SECONDS)
        why, call = self.answer(request, fds or [], pid)
        if call is None:
            conn.sendall(json.dumps({"bypass": why}).encode() + b"\n")
            return
        with self._cond:
            self._in_flight += 1
        try:
            conn.sendall(door.ACCEPTED + b"\n")
            if conn.recv(len(door.GO)) != door.GO:
                return  # the asker did not see it in time, and runs the command itself: this kennel runs nothing
            self._serve(conn, call)
        finally:
            with self._cond:
                self._in_flight -= 1
                self.served += 1
                self._cond.notify_all()

    def _serve(self, conn: socket.socket, call: Call) -> None:
        lock, done = threading.Lock(), threading.Event()

        def send(payload: bytes) -> None:
            with lock, contextlib.suppress(OSError):
                conn.sendall(payload)

        def keep_alive() -> None:
            while not done.wait(KEEPALIVE_SECONDS):
                send(b"\n")

        threading.Thread(target=keep_alive, name="kennel-keepalive", daemon=True).start()
        try:
            code, out, err = call(partial(gone, conn))
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
