"""Helpers for the control room's tests: towns on disk, a fixed clock, bounded waits, the screen as text.

Nothing here is mocked: the towns hold real plugin files and real ``run.sh`` scripts, the
ledger is the real SQLite file, and the app runs headless through Textual's Pilot.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from enginekit import add_plugin, make_town
from kennelkit import start_kennel
from textual.pilot import Pilot

from gtcore.escalation.escalations import Escalation, Escalations
from gtcore.model import Bead
from gtcore.storage import open_ledger
from gtcore.storage.contract import Ledger
from gtcore.storage.testing import bead_rows
from gtcore.town.layout import Town
from gtui.tui.app import GtuiApp
from gtui.tui.components.tables import KeyedTable

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "town"
SIZE = (160, 48)
FIXED = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC).timestamp()  # a Tuesday noon, UTC
SETTINGS = 'dogs = 2\nkill_grace = "1s"\n'


def fixed_clock() -> float:
    """The snapshot tests' clock: always :data:`FIXED`."""
    return FIXED


# -- towns ------------------------------------------------------------------------------------


def control_town(root: Path, settings: str = SETTINGS) -> Path:
    """A town for the key tests: only manual gates, so no patrol runs anything by itself.

    - ``hello`` prints two lines and succeeds;
    - ``broken`` prints a line and exits 3;
    - ``dormant`` is disabled in its plugin.md (only ``f`` runs it).
    """
    make_town(root, settings)
    add_plugin(root, "hello", gate='type = "manual"', top='description = "Say hello"',
               run_sh='echo "hello from $GT_PLUGIN"\necho "second line"\n')
    add_plugin(root, "broken", gate='type = "manual"', run_sh='echo "about to fail"\nexit 3\n')
    add_plugin(root, "dormant", gate='type = "manual"', top="enabled = false", run_sh='echo "forced awake"\n')
    return root


def demo_copy(target: Path) -> Path:
    """A copy of examples/town (without its state) with its forge repository set up."""
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns(".gtui"))
    subprocess.run(["bash", str(target / "setup-demo.sh"), str(target)], check=True, capture_output=True, timeout=60)
    return target


def ledger_of(root: Path) -> Ledger:
    return open_ledger(root / ".gtui" / "ledger.db")


def escalations_of(root: Path) -> Escalations:
    return Escalations(Town(root), ledger_of(root))


def raise_escalation(root: Path, subject: str, severity: str = "high", *, now: float | None = None, **extra: Any) -> Escalation:
    """Raise an escalation the way the CLI does (deliveries included)."""
    escalation, _ = escalations_of(root).raise_(subject, severity, now=time.time() if now is None else now, **extra)
    return escalation


def record_run(root: Path, plugin: str, result: str, *, started: float, duration: float, rig: str = "town",
               log: str | None = None, reason: str | None = None, **extra: Any) -> Bead:
    """Write one finished run wisp with explicit times (and its log file, when given); ``extra`` goes into its data
    (``log_summary="..."``: the last log line the runner sums a silent failure up with)."""
    ledger = ledger_of(root)
    run = ledger.claim_run(plugin, rig, data={"dog": "rex", "timeout_s": 600.0}, now=started)
    data: dict[str, Any] = {"dog": "rex", "duration_s": duration, "exit_code": 0 if result == "success" else 1, **extra}
    if reason:
        data["reason"] = reason
    if log is not None:
        path = root / ".gtui" / "runs" / f"{run.ref}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log, encoding="utf-8")
        data["log"] = str(path)
    return ledger.close_run(run.id, result, data=data, now=started + duration)


def ledger_rows(root: Path) -> list[tuple[Any, ...]]:
    """Every bead's id, status, result and update time: equal lists mean nothing was written."""
    return bead_rows(Town(root).ledger_path)


def kill_pid_file(path: Path) -> None:
    """Clean-up: SIGKILL the process group of a pid a run.sh wrote, if it is still there."""
    with contextlib.suppress(OSError, ValueError):
        os.killpg(int(path.read_text().strip()), signal.SIGKILL)


# -- the app ----------------------------------------------------------------------------------


def app_for(root: Path, *, kennel: bool | None = None, **options: Any) -> GtuiApp:
    """The control room on ``root``; a live one (or ``kennel=True``) gets a kennel in this process to run what it queues."""
    if kennel if kennel is not None else options.get("live", True):
        start_kennel(root)
    return GtuiApp(Town(root.resolve()), **options)


async def wait_until(pilot: Pilot[Any], probe: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``probe`` between short pauses of the app until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def started(pilot: Pilot[Any]) -> GtuiApp:
    """Wait until the engine runs and the first snapshot is on screen."""
    app = pilot.app
    assert isinstance(app, GtuiApp)
    await wait_until(pilot, lambda: app.engine is not None and app.snapshot is not None, 10.0, "the first snapshot")
    await pilot.pause()
    return app


def screen_text(app: GtuiApp) -> str:
    """What the terminal shows now, as plain text (modals over their background included)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def row_keys(app: GtuiApp, pane: str) -> list[str]:
    table = app.pane(pane)
    return [str(row.key.value) for row in table.ordered_rows]


def cells(app: GtuiApp, pane: str, key: str) -> list[str]:
    """The plain text of each cell of one row (every column, the ones a narrow pane leaves out included)."""
    return [cell.plain for cell in app.pane(pane).cells_of(key)]


def shown_cells(app: GtuiApp, pane: str, key: str) -> list[str]:
    """The plain text of the cells of one row that the table shows (its columns as fitted to the pane)."""
    return [cell.plain for cell in app.pane(pane).get_row(key)]


def column_labels(app: GtuiApp, pane: str) -> list[str]:
    """The column labels the pane shows, in order (a sort arrow included)."""
    return [column.label.plain for column in app.pane(pane).ordered_columns]


def log_ended(app: GtuiApp) -> bool:
    """The log viewer read its run to the end: its last line says how the run ended (``failure · exit 1 · ...``)."""
    from gtui.tui.screens.log_viewer import LogScreen

    shown = screen_text(app)
    return isinstance(app.screen, LogScreen) and "following" not in shown and re.search(r" · (exit -?\d+|killed by)", shown) is not None


def row_text(app: GtuiApp, pane: str, key: str) -> str:
    """The plain text of one row, cells joined by `` | ``."""
    return " | ".join(cells(app, pane, key))


def pane_text(app: GtuiApp, pane: str) -> str:
    return "\n".join(row_text(app, pane, key) for key in row_keys(app, pane))


async def select(pilot: Pilot[Any], pane: str, key: str) -> KeyedTable:
    """Focus ``pane`` with its number key and move its cursor to the row ``key`` with the arrow keys."""
    app = pilot.app
    assert isinstance(app, GtuiApp)
    number = {"plugins": "1", "dogs": "2", "feed": "3", "escalations": "4"}[pane]
    await pilot.press(number)
    table = app.pane(pane)
    await wait_until(pilot, lambda: key in row_keys(app, pane), 5.0, f"row {key} in {pane}")
    for _ in range(5):  # a snapshot may move the row while the keys go in (a run taking its dog's row): walk again
        target = row_keys(app, pane).index(key)
        await pilot.press("home")
        for _ in range(target):
            await pilot.press("down")
        if table.selected_key() == key:
            return table
        await pilot.pause(0.1)
    raise AssertionError(f"could not select {key} in {pane}: {table.selected_key()} is selected")


def notes(app: GtuiApp) -> list[tuple[str, str, str]]:
    """The toasts raised so far: (title, message, severity)."""
    return [(note.title, note.message, note.severity) for note in app._notifications]
