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

from gtui.app import GtuiApp
from gtui.components.log_lines import LogLines
from gtui.screens.details import PluginDetailsScreen
from gtui.screens.help import HelpScreen
from gtui.screens.log_viewer import LogScreen
from gtui.screens.modals import ConfirmScreen

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
