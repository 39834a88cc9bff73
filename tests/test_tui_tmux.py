"""End to end in a real terminal: ``gtui`` in tmux on a copy of the demo town, driven by keys.

The control room runs as the operator runs it (``python -m gtui --town T`` in a 160x48 tmux
pane); the test types keys with ``tmux send-keys`` and reads the screen with
``tmux capture-pane -p``. It runs a plugin with ``r`` and sees the result in the feed,
acknowledges an escalation with ``a``, and quits with ``q``. Its tmux server has a socket of
its own, and is killed whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from enginekit import add_plugin, gtui_argv, gtui_env, ledger, make_town, read_pid, wait_for
from tuikit import ROOT, demo_copy, escalations_of

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SESSION = "gtui"


def tmux_env() -> dict[str, str]:
    """The tmux server's (and so gtui's) environment: with a stale COLUMNS and LINES exported, on purpose.

    Under pytest they say 80x24; gtui must draw at the pane's real size (160x48) all the same.
    """
    env = {key: value for key, value in gtui_env().items() if key != "NO_COLOR"}
    env.update(COLUMNS="80", LINES="24")
    return env


class Tmux:
    """One tmux server on a private socket, holding one 160x48 session."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10, env=tmux_env())
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def keys(self, *keys: str) -> None:
        """Press keys one at a time (tmux key names: Enter, Escape, Up, Down...)."""
        for key in keys:
            self("send-keys", "-t", SESSION, key)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", SESSION)

    def peek(self) -> str:
        """The screen, or "" once the session has ended."""
        try:
            return self.screen()
        except AssertionError:
            return ""

    def wait(self, probe: Callable[[str], object], timeout: float = 10.0, what: str = "the screen") -> str:
        """Poll the screen until ``probe(screen)`` is truthy; fail with the last screen after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if probe(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; the screen:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux(f"gtui-test-{os.getpid()}")
    try:
        yield server
    finally:
        subprocess.run(["tmux", "-L", server.socket, "kill-session", "-t", SESSION], capture_output=True, timeout=10)
        subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True, timeout=10)
        socket = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / server.socket
        socket.unlink(missing_ok=True)  # a server that ended with its session leaves its socket file behind


def first_cells(screen: str, title: str) -> list[str]:
    """The first cell of each row of the pane titled ``title`` (``1 Plugins``...), as captured."""
    lines = screen.splitlines()
    top = next((number for number, line in enumerate(lines) if f"╭─ {title} " in line), None)
    if top is None:
        return []
    left = lines[top].index(f"╭─ {title} ")
    cells = []
    for line in lines[top + 2:]:  # top + 1 holds the column headers
        inside = line[left + 1:].split("│", 1)[0].strip()
        if line[left:left + 1] != "│" or not inside:
            break
        cells.append(inside.split()[0])
    return cells


def first_word(screen: str) -> str:
    words = screen.split(maxsplit=1)
    return words[0] if words else ""


def select_row(tmux: Tmux, number: str, title: str, key: str) -> None:
    """Focus a pane by its number and move to the row whose first cell is ``key``; checked in its details (enter).

    The main screen starts with the header's "gtui"; a details screen with the plugin's name or
    the escalation's id. Rows may move while the patrol works (a new escalation goes on top):
    a wrong row is tried again.
    """
    for _ in range(3):
        rows = first_cells(tmux.wait(lambda screen: key in first_cells(screen, title), 10, f"{key} in {title}"), title)
        tmux.keys(number, *["Up"] * (len(rows) + 1), *["Down"] * rows.index(key), "Enter")
        details = tmux.wait(lambda screen: first_word(screen) not in ("", "gtui"), 5, f"the details of the row for {key}")
        tmux.keys("Escape")
        tmux.wait(lambda screen: first_word(screen) == "gtui", 5, "the main screen again")
        if first_word(details) == key:
            return
    raise AssertionError(f"could not select {key} in {title}")


def test_run_acknowledge_and_quit_in_tmux(tmp_path: Path, tmux: Tmux) -> None:
    town = demo_copy(tmp_path / "town")
    raised = subprocess.run(gtui_argv(town, "escalate", "tmux test: disk full", "--severity", "high", "--json"),
                            capture_output=True, text=True, env=gtui_env(), timeout=30)
    assert raised.returncode == 0, raised.stderr
    ref = json.loads(raised.stdout)["id"]

    status = tmp_path / "gtui.status"
    command = (f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m gtui --town {shlex.quote(str(town))}; "
               f"echo $? > {shlex.quote(str(status))}.new && mv {shlex.quote(str(status))}.new {shlex.quote(str(status))}")
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", command)
    tmux.wait(lambda screen: "1 Plugins" in screen and "word-count" in first_cells(screen, "1 Plugins"), 15, "the control room")

    # Select word-count (its event never comes: only r runs it) and run it.
    select_row(tmux, "1", "1 Plugins", "word-count")
    tmux.keys("r")
    feed_line = re.compile(r"\d\d:\d\d:\d\d +word-count +run-\d+ +success")
    tmux.wait(lambda screen: feed_line.search(screen), 15, "word-count's success in the feed")

    # Acknowledge the escalation raised before gtui started.
    select_row(tmux, "4", "4 Escalations", ref)
    tmux.keys("a")
    deadline = time.monotonic() + 5
    while escalations_of(town).get(ref).status != "acked":
        assert time.monotonic() < deadline, "the acknowledgement never reached the ledger"
        time.sleep(0.1)
    row = re.compile(rf"{ref} +high +acked")
    tmux.wait(lambda screen: row.search(screen), 5, f"{ref} shown as acked")

    # Quit: at once, or after confirming if a patrol's run is still in flight. The shell around gtui
    # writes its exit status (tmux itself may leave the exited process unreaped, without a status).
    tmux.keys("q")
    deadline = time.monotonic() + 5
    while not status.exists():
        screen = tmux.peek()
        if "Quit anyway?" in screen:
            tmux.keys("y")
        assert time.monotonic() < deadline, f"gtui did not quit; the screen:\n{screen}"
        time.sleep(0.1)
    assert status.read_text().strip() == "0"  # a crash would exit 1


def test_a_runs_log_fills_live_and_the_run_outlives_a_closed_terminal(tmp_path: Path, tmux: Tmux) -> None:
    """The log of a run in flight fills line by line, on disk and in the viewer; closing the terminal (killing the tmux
    session sends gtui SIGHUP) closes the control room, and the run goes on in its kennel to its end."""
    town = make_town(tmp_path / "town")
    ticks = 'echo $$ > leader.pid\nfor i in $(seq 1 40); do echo "tick $i"; sleep 0.2; done\n'
    plugin = add_plugin(town, "ticker", 'type = "manual"', ticks, execution='timeout = "5m"')
    command = f"cd {shlex.quote(str(ROOT))} && exec {shlex.quote(sys.executable)} -m gtui --town {shlex.quote(str(town))}"
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", command)
    tmux.wait(lambda screen: "ticker" in first_cells(screen, "1 Plugins"), 15, "the control room")
    select_row(tmux, "1", "1 Plugins", "ticker")
    tmux.keys("r")
    run = wait_for(lambda: next(iter(ledger(town).runs_in_flight()), None), 15, "the run to be queued")
    read_pid(plugin / "leader.pid")
    log = Path(str(run.data.get("log") or town / ".gtui" / "runs" / f"{run.ref}.log"))

    # On disk: the log grows while the run is still in flight.
    first = wait_for(lambda: log.exists() and log.read_text().count("tick"), 10, "the first lines in the log file")
    wait_for(lambda: log.read_text().count("tick") > first + 3, 10, "more lines in the log file")
    # In the viewer: a later tick shows without leaving the screen.
    tmux.keys("l")
    seen = tmux.wait(lambda screen: re.search(r"tick (\d+)", screen), 10, "ticks in the log viewer")
    earliest = max(int(number) for number in re.findall(r"tick (\d+)", seen))
    tmux.wait(lambda screen: max((int(n) for n in re.findall(r"tick (\d+)", screen)), default=0) >= earliest + 5, 10,
              "the log viewer following the run")
    assert "following" in tmux.screen()

    tmux("kill-session", "-t", SESSION)  # the terminal closes: gtui gets SIGHUP and goes
    assert ledger(town).get(run.id, "wisp").status == "running", "the run is the kennel's, not the control room's"
    closed = wait_for(lambda: (found := ledger(town).get(run.id, "wisp")).status == "closed" and found, 20, "the run's end")
    assert closed.result == "success", closed.data
    assert log.read_text().count("tick") == 40
