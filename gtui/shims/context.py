"""What every plugin-facing command shares: the run it is part of, the engine, output, and handing over.

A run's environment says who is asking: ``GT_RUN_ID`` and ``GTUI_RUN_TOKEN``
(the run), ``GT_PLUGIN``, ``GT_RIG``, ``GT_DOG``, ``BD_ACTOR``, and the town
(``GT_TOWN_ROOT``).  Outside a run the commands still work on the town the
environment or the working directory names, as Gas Town's do.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from gtcore.engine import Engine
from gtcore.errors import GtError
from gtcore.model import TYPE_CHECKING, Town
from gtui.terminal import safe

if TYPE_CHECKING:
    from typing import Any

PASS_THROUGH_EXIT = 127  # what a shell says for a command it cannot find


@dataclass(frozen=True)
class RunContext:
    """The run a command was called from (None outside one)."""

    run_id: str
    token: str
    plugin: str
    rig: str
    dog: str

    @property
    def actor(self) -> str:
        return os.environ.get("BD_ACTOR") or f"deacon/dogs/{self.dog or 'dog'}"


def run_context(environ: dict[str, str] | None = None) -> RunContext | None:
    env = os.environ if environ is None else environ
    run_id, token = env.get("GT_RUN_ID", ""), env.get("GTUI_RUN_TOKEN", "")
    if not run_id or not token:
        return None
    return RunContext(run_id, token, env.get("GT_PLUGIN", ""), env.get("GT_RIG", ""), env.get("GT_DOG", ""))


def actor(context: RunContext | None) -> str:
    return context.actor if context else os.environ.get("BD_ACTOR") or os.environ.get("USER") or "unknown"


def engine() -> Engine:
    """The town's engine for one command: a broken gtui.toml must not cost a plugin its report.  What it queues wakes (or
    starts) the town's kennel."""
    from gtui.dispatching import KENNEL_ARGV

    return Engine.tolerant(Town.locate(), kennel_argv=KENNEL_ARGV)


def say(text: str = "") -> None:
    sys.stdout.write(safe(text) + "\n")


def say_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def fail(tool: str, message: str, code: int = 1) -> int:
    sys.stderr.write(f"{tool}: error: {safe(message)}\n")
    return code


def hand_over(tool: str, argv: list[str]) -> int:
    """Run the next real ``tool`` on PATH with ``argv``; without one, exit 127 with one line naming the subcommand.

    Either way, inside a run it is drift (:func:`note_drift`): what the
    plugin asked of Gas Town, gtui did not answer.
    """
    import shutil

    here = Path(sys.argv[0]).resolve().parent
    rest = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part and Path(part).resolve() != here]
    found = shutil.which(tool, path=os.pathsep.join(rest))
    note_drift(tool, argv, found)
    if found:
        sys.stdout.flush()
        os.execv(found, [found, *argv])
    return fail(tool, f"gtui does not provide '{tool} {verb_of(argv)}' and no other {tool} is on PATH", PASS_THROUGH_EXIT)


def verb_of(argv: list[str]) -> str:
    """The subcommand a call names, as people say it: ``rig show``, ``export``."""
    return " ".join(word for word in argv[:2] if not word.startswith("-")) or "(no subcommand)"


def note_drift(tool: str, argv: list[str], handed_to: str | None) -> None:
    """Inside a run, a verb gtui does not answer is said in the run's log and kept on its record, for its problems.

    The plugin may silence this command (``2>/dev/null || true``): the line
    goes into the run's own output instead.  Only the verb and the flags'
    names are kept, never their values.  Noting it never fails the call.
    """
    context = run_context()
    if context is None:
        return
    flags = sorted({word.split("=", 1)[0] for word in argv if word.startswith("-") and word != "-"})
    drift = {"tool": tool, "verb": verb_of(argv), "flags": flags, "handed_to": handed_to}
    outcome = f"handed to {handed_to}" if handed_to else f"no other {tool} is on PATH (exit {PASS_THROUGH_EXIT})"
    _tell_the_run(context.token, f"[gtui: drift: {tool} {drift['verb']}{''.join(' ' + flag for flag in flags)}"
                                 f" is not answered by gtui: {outcome}]")
    with contextlib.suppress(GtError):
        engine().note_drift(context.run_id, context.token, drift)


def _tell_the_run(token: str, line: str) -> bool:
    """Write ``line`` into the output of the run holding ``token``, the stream its log is made of.

    The run's first process leads the run's session, and its stdout is the
    pipe gtui reads; it is written to only when that process carries the
    run's token and that stdout is a pipe.
    """
    leader = os.getsid(0)
    try:
        with open(f"/proc/{leader}/environ", "rb") as handle:
            if f"GTUI_RUN_TOKEN={token}".encode() not in handle.read().split(b"\0"):
                return False
        pipe = os.open(f"/proc/{leader}/fd/1", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(pipe).st_mode):
            return False
        os.write(pipe, safe(line).encode() + b"\n")
        return True
    except OSError:
        return False
    finally:
        os.close(pipe)


def guarded(tool: str, argv: list[str], handlers: dict[str, Any]) -> int:
    """Dispatch to a handler; a gtui error is one line and exit 1, never a traceback."""
    try:
        handler = handlers.get(argv[0]) if argv else None
        if handler is None:
            return hand_over(tool, argv)
        return int(handler(argv[1:]))
    except GtError as exc:
        return fail(tool, str(exc))
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return fail(tool, "interrupted", 130)
