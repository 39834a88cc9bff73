"""Is a tmux agent session alive?  Gas Town's ``gt session health``, reading what it reads.

Three levels, as Gas Town's ``CheckSessionHealth``: the session exists
(``has-session -t =NAME``); an agent process runs in it; and, with a
maximum inactivity, tmux saw activity in it recently.  The agent's process
names come from the session's environment: ``GT_PROCESS_NAMES``, else the
built-in preset of ``GT_AGENT``, else node and claude (``agent`` only counts
for cursor).  A pane matches when its command is one of the names, or a
process under it is (a shell's child; an agent whose argv[0] is its
version); ``GT_PANE_ID``, when the session declares it, is the only pane
looked at.  Anything tmux or /proc cannot answer counts as not alive, as in
Gas Town.  The tmux server is the town's: ``GT_TMUX_SOCKET`` when it names
one, else the socket Gas Town derives from the town's directory.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

HEALTHY, SESSION_DEAD, AGENT_DEAD, AGENT_HUNG = "healthy", "session-dead", "agent-dead", "agent-hung"
DEFAULT_NAMES = ("node", "claude")
PRESETS = {  # Gas Town's built-in agent presets and the process names each runs as
    "claude": ("node", "claude"), "gemini": ("gemini",), "codex": ("codex",), "kiro": ("kiro-cli",),
    "cursor": ("cursor-agent", "agent"), "auggie": ("auggie",), "amp": ("amp",), "opencode": ("opencode", "node", "bun"),
    "copilot": ("copilot",), "pi": ("pi", "node", "bun"), "omp": ("omp", "node", "bun"), "vibe": ("vibe",),
    "groq-compound": ("node", "claude"),
}
SHELLS = ("bash", "zsh", "sh", "fish", "tcsh", "ksh", "pwsh", "powershell")
MAX_DEPTH = 10  # how deep under a pane a process is looked for
TMUX_TIMEOUT = 5.0


class SessionHealth(Record):
    """One session's liveness, as ``gt session health --json`` prints it."""

    session: str
    status: str
    max_inactivity: float

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "status": self.status, "healthy": self.status == HEALTHY,
                "zombie": self.status in (AGENT_DEAD, AGENT_HUNG), "max_inactivity_seconds": int(self.max_inactivity)}


class _Unanswered(Exception):
    """tmux could not say (not: said no)."""


def socket_name(town_root: Path, environ: Mapping[str, str]) -> str:
    """The town's tmux socket: ``GT_TMUX_SOCKET`` unless unset, ``default`` or ``auto``; else Gas Town's name for the town
    (its directory's name, lowercased, runs of anything but letters, digits and ``-`` as one ``-``, and 6 hex digits of
    the SHA-256 of its real path)."""
    named = environ.get("GT_TMUX_SOCKET", "")
    if named not in ("", "default", "auto"):
        return named
    from gtcore.core.digests import sha256_hex

    base = re.sub(r"[^a-z0-9-]+", "-", town_root.name.lower()).strip("-") or "default"
    return f"{base}-{sha256_hex(os.path.realpath(town_root).encode())[:6]}"


def session_health(session: str, max_inactivity: float, socket: str, now: float) -> SessionHealth:
    """``session`` on the tmux server ``socket``: healthy, session-dead, agent-dead or agent-hung (idle past a positive
    ``max_inactivity`` seconds)."""
    tmux = _Tmux(socket)
    if tmux.out("has-session", "-t", f"={session}") is None:
        return SessionHealth(session, SESSION_DEAD, max_inactivity)
    try:
        alive = _agent_alive(tmux, session)
    except _Unanswered:
        alive = False
    if not alive:
        return SessionHealth(session, AGENT_DEAD, max_inactivity)
    if max_inactivity > 0:
        activity = tmux.out("display-message", "-t", session, "-p", "#{session_activity}") or ""
        if activity.isdigit() and int(activity) and now - int(activity) > max_inactivity:
            return SessionHealth(session, AGENT_HUNG, max_inactivity)
    return SessionHealth(session, HEALTHY, max_inactivity)


class _Tmux:
    """``tmux -u -L SOCKET ...``, as Gas Town calls it."""

    def __init__(self, socket: str) -> None:
        self.argv = ["tmux", "-u", "-L", socket]

    def call(self, *args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run([*self.argv, *args], capture_output=True, text=True, errors="replace", timeout=TMUX_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None

    def out(self, *args: str) -> str | None:
        """What tmux printed, stripped; None when it failed."""
        done = self.call(*args)
        return done.stdout.strip() if done is not None and done.returncode == 0 else None

    def answer(self, *args: str) -> str:
        """What tmux printed; a failure cannot be told from a dead agent: :class:`_Unanswered`."""
        answer = self.out(*args)
        if answer is None:
            raise _Unanswered(" ".join(args))
        return answer

    def needed(self, *args: str) -> str:
        """What tmux printed, which must not be empty (a pane with no command or pid is no pane)."""
        answer = self.answer(*args)
        if not answer:
            raise _Unanswered(" ".join(args))
        return answer

    def environment(self, session: str, key: str) -> str:
        """The session's ``key`` ("" when it has none, as Gas Town's optional lookup reads a missing variable)."""
        done = self.call("show-environment", "-t", session, key)
        if done is None:
            raise _Unanswered(key)
        if done.returncode != 0:
            if "unknown variable" in done.stderr:
                return ""
            raise _Unanswered(key)
        for line in done.stdout.splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name == key:
                return value
        return ""  # "-KEY": removed from the session's environment


def _agent_alive(tmux: _Tmux, session: str) -> bool:
    declared = tmux.environment(session, "GT_PROCESS_NAMES")
    agent = tmux.environment(session, "GT_AGENT")
    names = declared.split(",") if declared else list(PRESETS.get(agent, DEFAULT_NAMES))
    cursor = agent == "cursor" or "cursor-agent" in (name.strip() for name in declared.split(","))
    if not cursor:
        names = [name for name in names if name != "agent"]  # too generic a name unless the session says it is cursor's
    if not names:
        return False
    pane = tmux.environment(session, "GT_PANE_ID")
    if pane:  # the pane the session declared, and only it (its pid is asked for only when its command does not say)
        command = tmux.answer("display-message", "-t", pane, "-p", "#{pane_current_command}")
        return command in names or _runs_agent(command, tmux.answer("display-message", "-t", pane, "-p", "#{pane_pid}"), names)
    command = tmux.needed("display-message", "-t", f"{session}:^", "-p", "#{pane_current_command}")
    if command in names or _runs_agent(command, tmux.needed("display-message", "-t", f"{session}:^", "-p", "#{pane_pid}"), names):
        return True
    panes = tmux.needed("list-panes", "-s", "-t", session, "-F", "#{pane_current_command}\t#{pane_pid}")
    return any(_runs_agent(command, pid, names) for command, tab, pid in (line.partition("\t") for line in panes.splitlines()) if tab)


def _runs_agent(command: str, pid: str, names: list[str]) -> bool:
    """A pane runs the agent: its command is one of ``names``, or (a shell's, or any) process under ``pid`` is."""
    if command in names:
        return True
    if not pid.strip().isdigit():
        return False
    from gtcore.dogs.processes import process_tree

    children, comm = process_tree()
    root = int(pid)
    wanted = {name.strip() for name in names if name.strip()}
    if command not in SHELLS and comm.get(root) in wanted:
        return True  # an agent whose argv[0] is its version: its executable's name still says what it is
    return _below(root, wanted, children, comm)


def _below(root: int, wanted: set[str], children: dict[int, list[int]], comm: dict[int, str]) -> bool:
    """Whether a process under ``root`` (at most :data:`MAX_DEPTH` levels down) has one of the ``wanted`` names."""
    seen, level = {root}, [root]
    for _ in range(MAX_DEPTH + 1):
        level = [child for pid in level for child in children.get(pid, ()) if child not in seen]
        if any(comm.get(child) in wanted for child in level):
            return True
        seen.update(level)
        if not level:
            return False
    return False
