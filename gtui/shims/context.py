"""What every plugin-facing command shares: the run it is part of, the engine, output, and handing over.

A run's environment says who is asking: ``GT_RUN_ID`` and ``GTUI_RUN_TOKEN``
(the run), ``GT_PLUGIN``, ``GT_RIG``, ``GT_DOG``, ``BD_ACTOR``, and the town
(``GT_TOWN_ROOT``).  Outside a run the commands still work on the town the
environment or the working directory names, as Gas Town's do.

Inside a run the town's kennel usually answers them (:func:`gtui.thin.shim`):
then the asking process's environment and session are not this process's, and
:func:`asked_by` says whose they are, for the thread answering.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
import threading
from pathlib import Path

from gtcore.core.errors import GtError, Refused, brief
from gtcore.engine import Engine
from gtcore.model import TYPE_CHECKING, Drift, DriftOutcome, Record, Town, carries, readable
from gtui.terminal import safe

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any

    from gtui.shims.flags import Command

    Handler = Callable[[list[str]], int]
    Commands = dict[str, Handler | dict[str, Handler]]  # a command's handler by name, or a group of them by name

PASS_THROUGH_EXIT = 127  # what a shell says for a command it cannot find


class HandBack(Exception):
    """Raised in a kennel answering a plugin's gt or bd that must hand over to a real one: only the plugin's own process
    can become it, so the command is handed back to run there."""


class _Asker(threading.local):
    """The process a kennel's thread answers for (None: this process itself), and the engines opened for it."""

    env: dict[str, str] | None = None
    pid = 0
    engines: list[Engine]

    def __init__(self) -> None:
        self.engines = []


_ASKER = _Asker()


def environ() -> Mapping[str, str]:
    """The asking process's environment: this process's own, or the one :func:`asked_by` names."""
    return os.environ if _ASKER.env is None else _ASKER.env


@contextlib.contextmanager
def asked_by(env: dict[str, str], pid: int) -> Iterator[None]:
    """Answer, on this thread, for the process ``pid`` whose environment is ``env``; the engines its commands open are
    released when it ends (a kennel lives on)."""
    _ASKER.env, _ASKER.pid = env, pid
    try:
        yield
    finally:
        engines, _ASKER.engines = _ASKER.engines, []
        _ASKER.env, _ASKER.pid = None, 0
        for opened in engines:
            opened.release()


def answered_elsewhere() -> bool:
    """This thread answers for another process (a kennel's): what it opens is released when that answer ends."""
    return _ASKER.env is not None


class RunContext(Record):
    """The run a command was called from (None outside one)."""

    run_ref: str  # GT_RUN_ID: "run-12"
    token: str
    plugin: str
    rig: str
    dog: str

    @property
    def actor(self) -> str:
        return environ().get("BD_ACTOR") or f"deacon/dogs/{self.dog or 'dog'}"


def run_context(given: Mapping[str, str] | None = None) -> RunContext | None:
    env = environ() if given is None else given
    run_ref, token = env.get("GT_RUN_ID", ""), env.get("GTUI_RUN_TOKEN", "")
    if not run_ref or not token:
        return None
    return RunContext(run_ref, token, env.get("GT_PLUGIN", ""), env.get("GT_RIG", ""), env.get("GT_DOG", ""))


def actor(context: RunContext | None) -> str:
    env = environ()
    return context.actor if context else env.get("BD_ACTOR") or env.get("USER") or "unknown"


def engine() -> Engine:
    """The town's engine for one command: a broken gtui.toml must not cost a plugin its report.  What it queues wakes (or
    starts) the town's kennel."""
    from gtui.cli.dispatching import KENNEL_ARGV

    opened = Engine.tolerant(Town.locate(environ=environ()), kennel_argv=KENNEL_ARGV)
    if answered_elsewhere():
        _ASKER.engines.append(opened)
    return opened


def say(text: str = "") -> None:
    sys.stdout.write(safe(text) + "\n")


def say_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def fail(message: str) -> int:
    """A command refused or failed: Gas Town's one line (cobra's ``Error: ...``), exit 1."""
    sys.stderr.write(f"Error: {safe(message)}\n")
    return 1


def read(command: Command, argv: list[str]) -> argparse.Namespace:
    """``argv`` read as Gas Town reads it (:meth:`Command.parse`); words it ignores are ignored here too, and said (inside a
    run, a warning among its problems: the plugin meant something by them)."""
    parsed = command.parse(argv)
    if parsed.strays:
        note(Drift(command.tool, command.verb, (), DriftOutcome.IGNORED, reason=f"{parsed.strays} word(s) no flag takes"))
    return parsed.args


def hand_over(tool: str, argv: list[str]) -> int:
    """Run the next real ``tool`` on PATH with ``argv``; without one, exit 127 with one line naming the subcommand.

    Either way, inside a run it is drift (:func:`note`): what the plugin
    asked of Gas Town, gtui did not answer.
    """
    import shutil

    if answered_elsewhere():
        raise HandBack(tool)
    here = Path(sys.argv[0]).resolve().parent
    rest = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part and Path(part).resolve() != here]
    found = shutil.which(tool, path=os.pathsep.join(rest))
    verb = verb_of(tool, argv)
    note(Drift(tool, verb, flag_names(argv), DriftOutcome.HANDED if found else DriftOutcome.UNANSWERED, found))
    if found:
        sys.stdout.flush()
        os.execv(found, [found, *argv])
    sys.stderr.write(f"{tool}: error: gtui does not provide '{tool} {verb}' and no other {tool} is on PATH\n")
    return PASS_THROUGH_EXIT


GROUPS = {
    "gt": frozenset((
        "account", "activity", "agents", "bead", "boot", "callbacks", "checkpoint", "compact", "config", "convoy", "costs", "crew",
        "cycle", "daemon", "deacon", "directive", "dog", "dolt", "escalate", "estop", "formula", "hook", "hooks", "issue", "krc",
        "log", "mail", "mayor", "mol", "mountain", "mq", "namepool", "orphans", "patrol", "plugin", "polecat", "quota", "reaper",
        "refinery", "rig", "role", "scheduler", "session", "shell", "signal", "sling", "start", "synthesis", "tap", "theme", "town",
        "trail", "warrant", "witness", "wl", "worktree",
    )),
    "bd": frozenset((
        "admin", "agent", "audit", "backup", "comments", "config", "dep", "dolt", "epic", "federation", "formula", "gate", "gitlab",
        "hooks", "human", "jira", "kv", "label", "linear", "merge-slot", "migrate", "mol", "repo", "slot", "state", "swarm", "todo",
        "upgrade", "vc", "worktree",
    )),
}
"""The commands whose next word is a subcommand (``gt rig show``, ``bd dep add``): the cobra command groups of Gas Town at
649b832b and of bd 0.59.0.  Any other command's next word is a value (``bd update gt-abc``), never kept as its verb."""
VERB_WORD = re.compile(r"[a-z][a-z0-9-]{0,31}")  # a command's name
SUBCOMMAND_WORD = re.compile(r"(?=.{1,32}$)[a-z]+(-[a-z]+)*")  # a subcommand's: no digit either (a bead id or a hash has one)
MAX_FLAGS, FLAG_CHARS, REASON_CHARS = 16, 64, 160  # what a note keeps of a call, whatever the plugin passed


def verb_of(tool: str, argv: list[str]) -> str:
    """The command a call names, as Gas Town names it: ``rig show``, ``export``; never a value the plugin passed."""
    first = argv[0] if argv else ""
    if not VERB_WORD.fullmatch(first):
        return "(no subcommand)" if not first or first.startswith("-") else "(not a command name)"
    second = argv[1] if len(argv) > 1 else ""
    return f"{first} {second}" if first in GROUPS[tool] and SUBCOMMAND_WORD.fullmatch(second) else first


def flag_names(argv: list[str]) -> tuple[str, ...]:
    """The names of the flags a call gave (never their values): up to ``--``, each cut to a sane length, a bounded few."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    names = sorted({readable(word.split("=", 1)[0])[:FLAG_CHARS] for word in words if word.startswith("-") and word != "-"})
    return tuple(names[:MAX_FLAGS])


def note(drift: Drift) -> None:
    """Inside a run, a call gtui did not answer as asked is said in the run's log and kept on its record, for its problems.

    The plugin may silence the command (``2>/dev/null || true``): the line
    goes into the run's own output instead.  Noting it never fails the call.
    """
    context = run_context()
    if context is None:
        return
    from gtcore.model import drift_words

    _tell_the_run(context.token, f"[gtui: drift: {drift.tool} {drift.verb}{''.join(' ' + flag for flag in drift.flags)}:"
                                 f" {drift_words(drift)}]")
    with contextlib.suppress(GtError):
        engine().note_drift(context.run_ref, context.token, drift)


def _tell_the_run(token: str, line: str) -> None:
    """Write ``line`` into the output of the run holding ``token``, the stream its log is made of.

    The run's first process leads the run's session, and its stdout is the
    pipe gtui reads; it is written to only when that process carries the
    run's token and that stdout is a pipe.
    """
    try:
        leader = os.getsid(_ASKER.pid)
        if not carries(leader, token):
            return
        pipe = os.open(f"/proc/{leader}/fd/1", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(pipe).st_mode):
            os.write(pipe, safe(line).encode() + b"\n")
    except OSError:
        return
    finally:
        os.close(pipe)


def guarded(tool: str, argv: list[str], commands: Commands) -> int:
    """Run the command ``argv`` names (``commands``: a handler by name, or a group of them by name); what none answers is
    handed over.  An error is Gas Town's one line and exit 1, never a traceback; inside a run, a call refused as written
    or failed inside gtui is also kept among the run's problems (the plugin may have silenced the line)."""
    handler, verb = _answered(commands, argv)
    try:
        if handler is None:
            return hand_over(tool, argv)
        return int(handler(argv[len(verb.split()):]))
    except HandBack:
        raise  # the kennel answering it hands it back to the plugin's own process, untouched
    except Refused as exc:
        note(_noted(tool, verb, DriftOutcome.REFUSED, str(exc), exc.flags))
        return fail(str(exc))
    except GtError as exc:
        return fail(str(exc))
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        sys.stderr.write(f"{tool}: interrupted\n")
        return 130
    except Exception as exc:  # the last line of defence: never a traceback, and never a silent loss inside a run
        message = f"internal error (a bug in gtui): {type(exc).__name__}: {brief(exc, 200)}"
        with contextlib.suppress(Exception):
            note(_noted(tool, verb or verb_of(tool, argv), DriftOutcome.FAILED, message))
        return fail(message)


def _answered(commands: Commands, argv: list[str]) -> tuple[Handler | None, str]:
    """The handler of the command ``argv`` names and its verb (``plugin record-run``), or None when gtui does not answer it."""
    found = commands.get(argv[0]) if argv else None
    if isinstance(found, dict):
        handler = found.get(argv[1]) if len(argv) > 1 else None
        return handler, f"{argv[0]} {argv[1]}" if handler else ""
    return found, argv[0] if found else ""


def _noted(tool: str, verb: str, outcome: DriftOutcome, reason: str, flags: tuple[str, ...] = ()) -> Drift:
    """The note of a call gtui answered with an error: its verb, the flags at fault (their names), gtui's reason, cut."""
    names = tuple(readable(name)[:FLAG_CHARS] for name in flags[:MAX_FLAGS])
    return Drift(tool, verb, names, outcome, reason=readable(" ".join(reason.split()))[:REASON_CHARS])
