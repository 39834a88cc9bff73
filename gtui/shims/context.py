"""What every plugin-facing command shares: the run it is part of, the engine, output, and handing over.

A run's environment says who is asking: ``GT_RUN_ID`` and ``GTUI_RUN_TOKEN``
(the run), ``GT_PLUGIN``, ``GT_RIG``, ``GT_DOG``, ``BD_ACTOR``, and the town
(``GT_TOWN_ROOT``).  Outside a run the commands still work on the town the
environment or the working directory names, as Gas Town's do.
"""

from __future__ import annotations

import json
import os
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
    """Run the next real ``tool`` on PATH with ``argv``; without one, exit 127 with one line naming the subcommand."""
    import shutil

    here = Path(sys.argv[0]).resolve().parent
    rest = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part and Path(part).resolve() != here]
    found = shutil.which(tool, path=os.pathsep.join(rest))
    if found:
        sys.stdout.flush()
        os.execv(found, [found, *argv])
    words = " ".join(word for word in argv[:2] if not word.startswith("-")) or "(no subcommand)"
    return fail(tool, f"gtui does not provide '{tool} {words}' and no other {tool} is on PATH", PASS_THROUGH_EXIT)


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
