"""Helpers for the process-level engine tests: towns on disk, the real ``gtui`` command, /proc probes.

Everything here works with real files, real processes and real signals; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import strategies as st

from gtcore.model import Bead
from gtcore.storage import open_ledger
from gtcore.storage.contract import Ledger, Take

T = TypeVar("T")

REPORT_KEYS = {"schema", "town", "started_at", "finished_at", "health", "escalations", "plugins", "invalid", "abandoned", "problems",
               "finished", "finished_more"}
ENTRY_KEYS = {"name", "kind", "rig", "enabled", "gate", "dispatched", "run", "last_run", "failure_streak", "paused", "next_due"}
GATE_KEYS = {"type", "open", "state", "reason", "next_open_at"}
RUN_KEYS = {"id", "status", "dog", "result", "exit_code", "duration_s", "log", "summary", "reported_result"}
FINISHED_KEYS = {"plugin", "rig", "id", "result", "summary", "summary_from_log", "reason", "started_at", "finished_at", "duration_s",
                 "exit_code", "escalation", "receipt", "problems"}


def make_town(root: Path, settings: str = "dogs = 2\nkill_grace = \"1s\"\n") -> Path:
    """An empty town at ``root`` with ``settings/gtui.toml`` holding ``settings``."""
    (root / "settings").mkdir(parents=True, exist_ok=True)
    (root / "settings" / "gtui.toml").write_text(settings, encoding="utf-8")
    return root


def add_plugin(
    town: Path,
    name: str,
    gate: str = 'type = "cooldown"\nduration = "1h"',
    run_sh: str | None = "echo ran\n",
    *,
    top: str = "",
    execution: str = "",
    body: str = "Do the thing.\n",
    where: str = "plugins",
) -> Path:
    """Write ``<town>/<where>/<name>/plugin.md`` (and ``run.sh`` unless None); returns the plugin dir."""
    directory = town / where / name
    directory.mkdir(parents=True, exist_ok=True)
    frontmatter = f'name = "{name}"\n{top}\n[gate]\n{gate}\n'
    if execution:
        frontmatter += f"[execution]\n{execution}\n"
    (directory / "plugin.md").write_text(f"+++\n{frontmatter}+++\n{body}", encoding="utf-8")
    if run_sh is not None:
        (directory / "run.sh").write_text("set -u\n" + run_sh, encoding="utf-8")
    return directory


def gtui_argv(town: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "gtui", "--town", str(town), *map(str, args)]


def gtui_env() -> dict[str, str]:
    """The test's environment without a GT_TOWN that could point elsewhere (its ledger URL kept), and wide plain output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GT_") or key == "GT_LEDGER_URL"}
    env.update(COLUMNS="400", NO_COLOR="1")
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)  # fails unless stdout is exactly one JSON document


def gtui(town: Path, *args: str | Path, timeout: float = 60, env: dict[str, str] | None = None) -> Result:
    """Run ``python -m gtui --town TOWN ARGS`` to completion (in ``env``, else :func:`gtui_env`); never a traceback."""
    done = subprocess.run(gtui_argv(town, *args), capture_output=True, text=True, env=env or gtui_env(), timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def one_error_line(result: Result, *fragments: str) -> str:
    """Exit 2 with exactly one line on stderr, ``gtui: error: ...``, holding every fragment; returns the line."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("gtui: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def gtui_start(town: Path, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``gtui`` in the background (stdout and stderr piped; in ``env``, else :func:`gtui_env`)."""
    return subprocess.Popen(gtui_argv(town, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or gtui_env())


def wait_for(probe: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def ledger(town: Path) -> Ledger:
    return open_ledger(town / ".gtui" / "ledger.db")


def runs(town: Path, name: str) -> list[Bead]:
    """Every run of ``name`` on the ledger, newest first."""
    return ledger(town).runs(name, limit=None)


def running(town: Path, name: str) -> Bead | None:
    """The run of ``name`` in flight, if any."""
    found = [run for run in ledger(town).runs_in_flight() if run.plugin == name]
    return found[0] if found else None


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z...), or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()[0]


def gone(pid: int) -> bool:
    """True once ``pid`` no longer exists or is only a zombie waiting to be reaped."""
    return proc_state(pid) in (None, "Z")


def kill_group(pgid: int) -> None:
    """Clean-up: SIGKILL a process group we started (directly or through gtui), if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def read_pid(path: Path, timeout: float = 10.0) -> int:
    """A pid a run.sh wrote to ``path`` (waits for the file to be written completely)."""
    text = wait_for(lambda: path.read_text().strip() if path.exists() and path.read_text().endswith("\n") else "", timeout,
                    f"pid file {path}")
    return int(text)


def claim_running(book: Ledger, plugin: str, rig: str = "town", *, data: dict[str, Any] | None = None, now: float | None = None,
                  labels: tuple[str, ...] = (), lease: float = 30.0) -> Bead:
    """A run as a kennel holds it: claimed (queued), then taken with ``data`` (its owner, token...) and a lease of
    ``lease`` seconds on the ledger's clock (negative: one that ran out that long ago)."""
    queued = book.claim_run(plugin, rig, labels=labels, now=now)
    return book.record_turn([], [], [Take(queued.id, data or {}, now, lease)])[0]  # type: ignore[return-value]


def taken(town: Path, name: str) -> Bead | None:
    """The run of ``name`` a kennel has taken (running), if any."""
    run = running(town, name)
    return run if run is not None and run.status == "running" else None


def shuffled_lines(pieces: st.SearchStrategy[list[str]], max_pieces: int, noise: int) -> st.SearchStrategy[list[str]]:
    """Command lines made of ``pieces`` (a command's words, an option with its value) in any order, sometimes with a
    word of noise up to ``noise`` characters long."""

    @st.composite
    def lines(draw: st.DrawFn) -> list[str]:
        chosen = draw(st.lists(pieces, max_size=max_pieces))
        if draw(st.booleans()):
            chosen.append([draw(st.text(max_size=noise))])
        return [word for piece in draw(st.permutations(chosen)) for word in piece]

    return lines()
