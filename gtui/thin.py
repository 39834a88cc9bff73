"""Thin commands: the town's living kennel answers ``gtui --once``, ``gtui plugin list`` and ``gtui escalate list``.

A Deacon runs ``gtui --once --json`` every patrol cycle; most of such a
command's time is Python importing gtui and gtui reading the town afresh.
The kennel has done both already.  So the ``gtui`` console script starts
here, importing nothing but the standard library and the kennel's door
(:mod:`gtcore.dogs.kennel_door`): when the command is one of those, names its
town (``--town``, ``$GT_TOWN_ROOT``, ``$GT_ROOT``, ``$GT_TOWN``) and a kennel
of this gtui version and this environment lives for it on this host, the
kennel runs the command line in its own process, exactly as this process
would have, and sends back its exit status and output.  Otherwise the command
runs here, as it always did; so it does when the kennel accepted nothing
within 200 ms (said as a problem of the answer) or went away while answering.

Human output on a terminal always runs here: its width and colours are the
terminal's.  ``GTUI_THIN=off`` keeps every command in its own process;
``GTUI_THIN=require`` makes one fail (exit 2) rather than run here, to check
that the kennel answers.
"""

from __future__ import annotations

import os
import sys

from gtcore import __version__
from gtcore.dogs import kennel_door as door

TYPE_CHECKING = False  # typing costs a thin command its import; type checkers read this name as typing's
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

THIN_VARIABLE = "GTUI_THIN"
THIN_WORDS = ((), ("plugin", "list"), ("escalate", "list"))  # () with --once
FLAGS = frozenset({"--once", "--json", "--read-only", "--all", "--stale"})
VALUED = frozenset({"--town", "--severity"})


def main() -> int:
    """The ``gtui`` console script: through the kennel when it can answer, else :func:`gtui.cli.main` here."""
    argv = sys.argv[1:]
    mode = os.environ.get(THIN_VARIABLE, "")
    notes: list[str] = []
    thin = None if mode == "off" else thin_command(argv, os.environ, sys.stdout.isatty(), _utf8(sys.stdout))
    if thin is not None:
        answer = door.ask_command(door.socket_path(thin[0], door.hostname()), thin[1], door.environment_key(os.environ),
                                  __version__)
        if isinstance(answer, dict):
            return _said(answer)
        if answer == "slow":
            notes.append(f"the town's kennel did not answer within {door.ACCEPT_SECONDS * 1000:.0f} ms; answered by this"
                         " process instead (gtui kennel status)")
        elif answer is not None and answer.startswith(("the kennel went away", "the kennel went quiet")):
            notes.append(f"{answer}; answered by this process instead")
        if mode == "require":
            sys.stderr.write(f"gtui: error: {THIN_VARIABLE}=require: the kennel did not answer ({answer or 'none alive'})\n")
            return 2
    elif mode == "require":
        sys.stderr.write(f"gtui: error: {THIN_VARIABLE}=require: not a command the kennel answers here (--once, plugin list or"
                         " escalate list, the town named, --json or output for a pipe)\n")
        return 2
    from gtui.cli import main as here

    return here(argv, notes=notes)


def shim(tool: str) -> int:
    """A plugin's ``gt`` or ``bd`` (``tool``; the scripts in ``.gtui/bin`` start here): inside a run, the town's kennel
    answers it with this process's own standard streams, when this process still has the environment the kennel gave
    the run; otherwise, or when the kennel hands it back (a real ``gt`` or ``bd`` must take it), it runs here."""
    argv = sys.argv[1:]
    mode = os.environ.get(THIN_VARIABLE, "")
    token = os.environ.get("GTUI_RUN_TOKEN", "")
    root = _town_root(None, os.environ)
    answer: dict[str, object] | str | None = None
    if mode != "off" and token and root:
        answer = door.ask_shim(door.socket_path(root, door.hostname()), tool, argv,
                               door.environment_key(os.environ), __version__, token)
        if isinstance(answer, dict) and answer["code"] != door.HAND_BACK:
            return int(answer["code"])  # type: ignore[call-overload]
    if mode == "require" and not (isinstance(answer, dict) and answer["code"] == door.HAND_BACK):
        sys.stderr.write(f"{tool}: error: {THIN_VARIABLE}=require: the kennel did not answer ({answer or 'none asked'})\n")
        return 2
    return _tool(tool)(argv)


def _tool(tool: str) -> Callable[[list[str]], int]:
    """The plugin-facing ``gt`` or ``bd`` itself."""
    if tool == "bd":
        from gtui.shims.bd import main
    else:
        from gtui.shims.gt import main
    return main


def _said(answer: dict[str, object]) -> int:
    """Print the kennel's answer as the command's own; a reader that went away (``| head``) ends it quietly, as here."""
    out, err = answer["out"], answer["err"]
    assert isinstance(out, bytes) and isinstance(err, bytes), "the door reads bytes"
    try:
        _write(sys.stdout, out)
        _write(sys.stderr, err)
    except BrokenPipeError:
        import contextlib

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    return int(answer["code"])  # type: ignore[call-overload]


def _write(stream: TextIO, data: bytes) -> None:
    """The kennel's bytes onto ``stream`` as they are (its buffer, when it has one)."""
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(data.decode(errors="replace"))
    else:
        buffer.write(data)
    stream.flush()


def _utf8(stream: object) -> bool:
    """The kennel draws tables for UTF-8: output for a stream of another encoding is drawn here, for that encoding."""
    return str(getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "") == "utf8"


def thin_command(argv: list[str], environ: dict[str, str] | os._Environ[str], tty: bool,
                 utf8: bool = True) -> tuple[str, list[str]] | None:
    """The town root and the command line to send to its kennel, when ``argv`` is a thin command; else None.

    The line is ``argv`` as given (the command line accepts some flags only
    after the verb: their places are kept) with the town named explicitly,
    resolved here: the kennel, whose working directory is the town, reads the
    town this process would have read.
    """
    line: list[str] = []
    words: list[str] = []
    town = None
    index = 0
    while index < len(argv):
        token, index = argv[index], index + 1
        name, has_value, value = token.partition("=")
        if name in VALUED:
            if not has_value:
                if index >= len(argv) or argv[index].startswith("-"):
                    return None  # argparse takes no option for a value: the command line says what is wrong
                value, index = argv[index], index + 1
            if name == "--town":
                town = value
                continue
            line += [name, value]
        elif token in FLAGS or not token.startswith("-"):
            line.append(token)
            words += [] if token in FLAGS else [token]
        else:
            return None
    if tuple(words) not in THIN_WORDS or (not words) != ("--once" in line) or ((tty or not utf8) and "--json" not in line):
        return None
    root = _town_root(town, environ)
    if root is None:
        return None  # the town above the working directory, a city, ~/gt: the engine finds those
    return root, [*line, "--town", root]


def _town_root(town: str | None, environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The town ``--town`` names, else the town's variables (resolved, as the kennel's socket is named by it); None when
    neither does."""
    town = town or next((environ[name] for name in door.TOWN_ENV if environ.get(name)), None)
    return os.path.realpath(os.path.expanduser(town)) if town else None


# -- in the kennel --------------------------------------------------------------------------------


class _Switch:
    """``sys.stdin``, ``sys.stdout`` or ``sys.stderr`` of a kennel that answers commands: a thread answering a command
    reads and writes that command's own streams (:attr:`kept`), everything else the real ones."""

    def __init__(self, real: object) -> None:
        import threading

        self._real, self.kept = real, threading.local()

    def __getattr__(self, name: str) -> object:
        return getattr(getattr(self.kept, "stream", None) or self._real, name)


def _kept_run(run: Callable[[], int], streams: list[object | None]) -> int:
    """``run()`` with this thread's stdin, stdout and stderr switched to ``streams`` (None: left to the real one), its
    exit status (a SystemExit's too); the streams are switched back however it ends."""
    switches = (sys.stdin, sys.stdout, sys.stderr)
    assert all(isinstance(switch, _Switch) for switch in switches), "answering() puts them in place"
    for switch, stream in zip(switches, streams, strict=True):
        switch.kept.stream = stream  # type: ignore[union-attr]
    try:
        return run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    finally:
        for switch in switches:
            switch.kept.stream = None  # type: ignore[union-attr]


class Answerer:
    """In the kennel of the town at ``root``: the thin commands of that town, run as their own processes would run them
    (:class:`gtcore.dogs.kennel_answers.Answers` calls it; nothing else is answered)."""

    def __init__(self, root: str) -> None:
        from gtcore.model import ScanKeeper

        self.root = root
        self.scans = ScanKeeper()  # the town's last scan, shared by the answers while nothing it read changed

    def refusal(self, argv: list[str]) -> str | None:
        """None for a thin command line of this town exactly as a thin command sends it; else why not."""
        if thin_command(argv, {}, tty=False) != (self.root, argv):
            return "not a thin command of this town"
        return None

    def shim_refusal(self, tool: str, argv: list[str]) -> str | None:
        """None for a plugin's gt or bd; anything else is no tool of gtui's."""
        return None if tool in ("gt", "bd") else f"no plugin-facing {tool!r}"

    def shim(self, tool: str, argv: list[str], env: dict[str, str], streams: list[int], pid: int) -> int:
        """A plugin's ``tool`` run here as its own process ``pid`` would run it: in ``env``, reading and writing its
        standard ``streams`` (the kennel's copies of them; it closes them); :data:`door.HAND_BACK` when only that process
        can answer (it hands over to a real gt or bd)."""
        import contextlib
        import io

        from gtui.shims.context import HandBack, asked_by

        here = _tool(tool)
        # closefd=False: the kennel closes the descriptors themselves, whatever the command does
        stdin = io.TextIOWrapper(open(streams[0], "rb", closefd=False), encoding="utf-8")  # noqa: SIM115
        outs = [open(fd, "w", encoding="utf-8", errors="surrogateescape", closefd=False) for fd in streams[1:]]  # noqa: SIM115

        def run() -> int:
            with asked_by(env, pid):
                try:
                    return here(argv)
                except HandBack:
                    return door.HAND_BACK

        try:
            return _kept_run(run, [stdin, *outs])
        finally:
            for out in outs:
                with contextlib.suppress(OSError, ValueError):
                    out.flush()

    def __call__(self, argv: list[str], gone: Callable[[], bool]) -> tuple[int, str, str]:
        """Exit status, stdout and stderr, kept for the command that asked (``gone``: it went away meanwhile)."""
        import io

        from gtui.cli import main as here

        if gone():
            return 2, "", ""  # nobody will read it: nothing is run
        out, err = io.StringIO(), io.StringIO()
        code = _kept_run(lambda: here(argv, release=True, gone=gone, scans=self.scans), [None, out, err])
        return code, out.getvalue(), err.getvalue()

    def close(self) -> None:
        """The kennel goes: its watch on the town's plugins is let go."""
        self.scans.close()


def answering(root: str) -> Answerer:
    """What the kennel of the town at ``root`` answers thin commands with; called once, before it serves, to put
    :class:`_Switch` in place of ``sys.stdout`` and ``sys.stderr`` (each answering thread then writes apart)."""
    import gtui.cli  # imported once now, so no answer pays for them (a plugin's first gt or bd neither)
    import gtui.shims.bd
    import gtui.shims.gt  # noqa: F401

    sys.stdin, sys.stdout, sys.stderr = _Switch(sys.stdin), _Switch(sys.stdout), _Switch(sys.stderr)  # type: ignore[assignment]
    return Answerer(root)
