"""Snapshots of the control room (pytest-textual-snapshot): the main screen, details, help, log, a modal.

Deterministic by construction: the clock is fixed (``clock=fixed_clock``), the app is not live
(no patrol, no watcher, no timers; the collector runs once), every ledger record is written
with an explicit ``now=``, the town sits at ``<tmp>/town`` (the header shows the directory's
name only, other screens paths relative to the town), and ``TZ=UTC`` (the feed shows local time).

Update after an intended change of the screens with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs in ``tests/__snapshots__/`` before committing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from enginekit import add_plugin, make_town
from textual.pilot import Pilot
from tuikit import FIXED, app_for, escalations_of, fixed_clock, ledger_of, log_ended, record_run, wait_until

from gtui.tui.app import GtuiApp
from gtui.tui.components.log_lines import LogLines
from gtui.tui.screens.details import PluginDetailsScreen
from gtui.tui.screens.help import HelpScreen
from gtui.tui.screens.log_viewer import LogScreen
from gtui.tui.screens.modals import AskScreen, ConfirmScreen

SnapCompare = Callable[..., bool]
MINUTE = 60.0


@pytest.fixture(autouse=True)
def fixed_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC and colours are on (Textual reads NO_COLOR when an app is made); restored after."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("NO_COLOR", raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def still_town(tmp_path: Path) -> Path:
    """A town with a bit of everything, every timestamp relative to :data:`FIXED`."""
    town = make_town(tmp_path / "town", "dogs = 2\n")
    add_plugin(town, "backup", gate='type = "cooldown"\nduration = "1h"', top='description = "Back up the mayor\'s files"',
               execution='timeout = "5m"\nnotify_on_failure = true\nseverity = "high"',
               body="# Backup\n\nCopy `mayor/` to the vault.\n")
    add_plugin(town, "heartbeat", gate='type = "event"\non = "startup"', top='description = "Record that the town came up"')
    add_plugin(town, "triage", gate='type = "manual"', run_sh=None, top='description = "Ask an agent to sort the mail"')
    add_plugin(town, "nightly", gate='type = "cooldown"\nduration = "24h"', top="enabled = false")
    add_plugin(town, "build", gate='type = "cooldown"\nduration = "10m"', where="forge/plugins")
    broken = town / "plugins" / "broken"
    broken.mkdir()
    (broken / "plugin.md").write_text('+++\nname = "broken"\n[gate]\ntype = "cooldown"\nduration = "5 minutes"\n+++\n')

    record_run(town, "backup", "success", started=FIXED - 50 * MINUTE, duration=12.5, log="copied 3 files\n")
    record_run(town, "build", "success", started=FIXED - 40 * MINUTE, duration=3.25, rig="forge")
    record_run(town, "backup", "failure", started=FIXED - 20 * MINUTE, duration=4.0, reason="exited 1",
               log="copying mayor/ to /vault\nrsync: connection refused\nexit 1\n")
    record_run(town, "heartbeat", "success", started=FIXED - 5 * MINUTE, duration=0.2)
    ledger_of(town).set_paused("build", True, reason="forge is being moved", now=FIXED - 2 * MINUTE)
    escalations = escalations_of(town)
    escalations.raise_("backup failed twice", "high", body="rsync: connection refused", source="backup", now=FIXED - 19 * MINUTE)
    escalations.raise_("disk 81% full on forge", "medium", source="disk-report", now=FIXED - 3 * 60 * MINUTE)
    return town


def still_app(tmp_path: Path) -> GtuiApp:
    return app_for(still_town(tmp_path), live=False, clock=fixed_clock)


async def ready(pilot: Pilot[Any]) -> None:
    """The one snapshot the collector takes is on screen."""
    app = pilot.app
    assert isinstance(app, GtuiApp)
    await wait_until(pilot, lambda: app.snapshot is not None, 10, "the snapshot")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 48), (250, 70)], ids=lambda size: f"{size[0]}x{size[1]}")
def test_main_screen(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    """At 80x24 the narrow columns give way; at 250x70 the panes share the height by what they hold."""
    assert snap_compare(still_app(tmp_path), terminal_size=size, run_before=ready)


def test_main_screen_no_color_80x24(snap_compare: SnapCompare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR=1: failures (✗), invalid files (!), open gates (●) and severities (bold, reverse) still stand out."""
    monkeypatch.setenv("NO_COLOR", "1")  # read when the app is made
    assert snap_compare(still_app(tmp_path), terminal_size=(80, 24), run_before=ready)


def test_plugin_details(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def open_details(pilot: Pilot[Any]) -> None:
        await ready(pilot)
        await pilot.press("enter")  # the first row: backup
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen) and app.screen.latest is not None, 5,
                         "the details with their runs")

    assert snap_compare(still_app(tmp_path), terminal_size=(160, 48), run_before=open_details)


def test_help(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), 5, "help")

    assert snap_compare(still_app(tmp_path), terminal_size=(160, 48), run_before=open_help)


def test_log_viewer(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def open_log(pilot: Pilot[Any]) -> None:
        await ready(pilot)
        await pilot.press("l")  # the latest run of backup: the failure
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.query_one(LogLines).line_count == 3, 5,
                         "the log's lines")
        await wait_until(pilot, lambda: log_ended(app), 5, "the log's end")

    assert snap_compare(still_app(tmp_path), terminal_size=(100, 24), run_before=open_log)


def test_digest_confirm_modal(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def open_confirm(pilot: Pilot[Any]) -> None:
        await ready(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), 5, "the confirm modal")

    assert snap_compare(still_app(tmp_path), terminal_size=(100, 30), run_before=open_confirm)


# -- issue 21: the worst first, the reason at a glance, pauses, habits, details in words ----------

SIZES = [(80, 24), (120, 40), (200, 60)]


def sized(sizes: list[tuple[int, int]] = SIZES) -> Any:
    return pytest.mark.parametrize("size", sizes, ids=lambda size: f"{size[0]}x{size[1]}")


def crowded_town(tmp_path: Path) -> Path:
    """The still town with 16 open escalations (3 critical, raised between the others), more runs than 80x24 shows,
    a failure summed up by its last log line, and an agent run skipped for want of an agent_command."""
    town = still_town(tmp_path)
    escalations = escalations_of(town)
    plan = ["low", "critical", "high", "medium", "high", "critical", "low", "medium", "high", "medium", "critical", "high",
            "medium", "low"]
    for index, severity in enumerate(plan):
        escalations.raise_(f"trouble number {index}", severity, source="patrol", now=FIXED - (100 - index * 5) * MINUTE)
    for index in range(6):
        record_run(town, "heartbeat", "success", started=FIXED - (15 - index) * MINUTE, duration=0.1)
    record_run(town, "backup", "failure", started=FIXED - 4 * MINUTE, duration=2.0, reason="exited 1",
               log="copying mayor/ to /vault\nrsync: connection refused\n", log_summary="rsync: connection refused")
    record_run(town, "triage", "skipped", started=FIXED - 1 * MINUTE, duration=0.0, reason="no agent_command is set in gtui.toml")
    return town


def crowded_app(tmp_path: Path) -> GtuiApp:
    return app_for(crowded_town(tmp_path), live=False, clock=fixed_clock)


async def settled(pilot: Pilot[Any]) -> None:
    """The snapshot on screen, and the scrolls it asked for done."""
    await ready(pilot)
    await pilot.pause(0.2)


@sized()
def test_worst_first_and_the_reasons_in_the_feed(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    """The criticals at the top of the queue with "+N below"; the feed's newest rows with "+N above" and every reason."""
    assert snap_compare(crowded_app(tmp_path), terminal_size=size, run_before=settled)


@sized()
def test_log_search(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    async def search(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("l")  # backup's latest run: the failure summed up by its log
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.query_one(LogLines).line_count == 2, 5,
                         "the log's lines")
        await wait_until(pilot, lambda: log_ended(app), 5, "the log's end")
        await pilot.press("slash", *"refused", "enter")
        await pilot.pause(0.1)

    assert snap_compare(crowded_app(tmp_path), terminal_size=size, run_before=search)


@sized()
def test_a_skipped_run_says_why_it_has_no_log(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    async def open_log(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("down", "down", "down", "l")  # triage
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen) and "has no log" in " ".join(app.screen.log_lines.lines), 5,
                         "why")

    assert snap_compare(crowded_app(tmp_path), terminal_size=size, run_before=open_log)


@sized()
def test_pause_asks_why(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    async def ask(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("space", *"vault moves")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, AskScreen), 5, "the pause dialog")

    assert snap_compare(crowded_app(tmp_path), terminal_size=size, run_before=ask)


@sized()
def test_details_of_a_paused_plugin_in_words(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    async def open_details(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("down", "down", "down", "down", "enter")  # build: paused, in the forge rig
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen) and app.screen.latest is not None, 5,
                         "the details with their runs")

    assert snap_compare(crowded_app(tmp_path), terminal_size=size, run_before=open_details)
