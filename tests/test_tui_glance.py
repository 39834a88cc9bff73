"""Issue 21 in the control room: the worst first and in sight, the reason at a glance, pauses with a why, habits, layout.

Real towns and ledgers as everywhere (see :mod:`tuikit`); the app is driven through Pilot.
Each test names the guard it holds up: take the guard out and the test goes red.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from enginekit import add_plugin
from textual.widgets._toast import Toast
from tuikit import (
    FIXED,
    app_for,
    cells,
    column_labels,
    control_town,
    fixed_clock,
    kill_pid_file,
    ledger_of,
    notes,
    raise_escalation,
    record_run,
    row_keys,
    row_text,
    screen_text,
    select,
    started,
    wait_until,
)

import gtui.tui.app
from gtcore.town.layout import Town
from gtui.tui.app import screenshot_directories
from gtui.tui.components.log_lines import LogLines
from gtui.tui.components.scrolling import KeyScroll
from gtui.tui.components.tables import Col, fit_columns
from gtui.tui.screens.details import PluginDetailsScreen
from gtui.tui.screens.help import HelpScreen
from gtui.tui.screens.log_viewer import LogScreen
from gtui.tui.state import CellPool, elapsed

pytestmark = pytest.mark.anyio
SEVERITIES = ("critical", "high", "medium", "low")
SMALL = (80, 24)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def crowd_escalations(root: Path, now: float) -> dict[str, list[str]]:
    """16 open escalations, raised a minute apart with the severities interleaved (3 critical, 5 high, 5 medium,
    3 low): their refs by severity, oldest first."""
    plan = ["high", "medium", "critical", "low", "high", "medium", "high", "critical", "medium", "low", "high", "medium",
            "critical", "high", "low", "medium"]
    refs: dict[str, list[str]] = {severity: [] for severity in SEVERITIES}
    for index, severity in enumerate(plan):
        item = raise_escalation(root, f"trouble number {index}", severity, now=now - (len(plan) - index) * 60)
        refs[severity].append(item.ref)
    return refs


def worst_first(refs: dict[str, list[str]]) -> list[str]:
    return [ref for severity in SEVERITIES for ref in refs[severity]]


def in_view(app: gtui.tui.app.GtuiApp, pane: str, key: str) -> bool:
    """The row is on the pane's screen lines (not scrolled out)."""
    table = app.pane(pane)
    index = row_keys(app, pane).index(key)
    return round(table.scroll_y) <= index < round(table.scroll_y) + table._rows_in_view()


# -- 2. worst first, always visible -------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=lambda size: f"{size[0]}x{size[1]}")
async def test_the_criticals_come_first_and_in_sight_with_more_escalations_than_rows(tmp_path: Path, size: tuple[int, int]) -> None:
    """Guard: the order of state.worst_first (severity, then oldest)."""
    town = control_town(tmp_path / "town")
    refs = crowd_escalations(town, time.time())
    app = app_for(town, live=False)
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        table = app.pane("escalations")
        assert row_keys(app, "escalations") == worst_first(refs)
        assert table.scroll_y == 0 and all(in_view(app, "escalations", ref) for ref in refs["critical"])
        hidden = 16 - table._rows_in_view()
        if hidden > 0:
            assert table.subtitle == f"+{hidden} below" and f"+{hidden} below" in screen_text(app)


async def test_a_new_critical_scrolls_the_queue_to_its_top_and_the_selection_stays(tmp_path: Path) -> None:
    """Guard: EscalationsPane.show_worst, called when an escalation as bad as the worst arrives."""
    town = control_town(tmp_path / "town")
    refs = crowd_escalations(town, time.time())
    app = app_for(town)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.press("4", "G")
        table = app.pane("escalations")
        selected = table.selected_key()
        await wait_until(pilot, lambda: table.scroll_y > 0, 3, "the queue scrolled down")
        fresh = raise_escalation(town, "the vault is on fire", "critical")
        await wait_until(pilot, lambda: fresh.ref in row_keys(app, "escalations"), 5, "the new critical")
        await wait_until(pilot, lambda: table.scroll_y == 0, 3, "the queue back at its top")
        assert row_keys(app, "escalations")[:4] == [*refs["critical"], fresh.ref]
        assert table.selected_key() == selected  # the selection never jumps
        assert "+" in table.subtitle and "below" in table.subtitle


async def test_rows_inserted_above_the_selection_leave_it_on_its_screen_line(tmp_path: Path) -> None:
    """Guard: KeyedTable._keep_on_line (a new high lands above the selected medium; the selection neither moves nor slides)."""
    town = control_town(tmp_path / "town")
    refs = crowd_escalations(town, time.time())
    app = app_for(town)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        target = refs["medium"][0]  # the first medium: just under the highs, where a new high goes
        await pilot.press("4", "G")
        table = app.pane("escalations")
        while table.selected_key() != target:
            await pilot.press("k")
        line = table.cursor_row - round(table.scroll_y)
        assert round(table.scroll_y) > 0  # the queue is scrolled: a row inserted above moves what is shown
        fresh = raise_escalation(town, "backups late again", "high")
        await wait_until(pilot, lambda: fresh.ref in row_keys(app, "escalations"), 5, "the new high")
        await pilot.pause(0.2)
        assert row_keys(app, "escalations").index(fresh.ref) < row_keys(app, "escalations").index(target)
        assert table.selected_key() == target
        assert table.cursor_row - round(table.scroll_y) == line


# -- 8. layout ----------------------------------------------------------------------------------


def crowded_town(root: Path) -> Path:
    """A town with more of everything than 80x24 shows: 12 plugins (one in a rig), 16 escalations, 12 finished runs."""
    town = control_town(root, settings="dogs = 8\n")
    for index in range(8):
        add_plugin(town, f"chore-{index}", gate='type = "manual"')
    add_plugin(town, "forge-builder", gate='type = "cooldown"\nduration = "10m"', where="forge/plugins")
    now = time.time()
    crowd_escalations(town, now)
    for index in range(12):
        record_run(town, f"chore-{index % 8}", "success" if index % 3 else "failure", started=now - 3600 + index * 60, duration=2.0)
    return town


async def test_every_pane_says_how_many_rows_are_above_and_below(tmp_path: Path) -> None:
    """Guard: KeyedTable._subtitle_parts (+N above, +N below) on all four panes."""
    app = app_for(crowded_town(tmp_path / "town"), live=False, kennel=True)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.pause(0.3)
        for pane in ("plugins", "dogs", "feed", "escalations"):
            table = app.pane(pane)
            above, below = table.rows_above(), table.rows_below()
            assert above + below > 0, pane  # each holds more than it shows
            words = [part for part in (f"+{above} above" if above else "", f"+{below} below" if below else "") if part]
            assert table.subtitle == "  ".join(words), (pane, table.subtitle)
            assert table.subtitle in screen_text(app), pane
        assert app.pane("feed").rows_above() > 0 and app.pane("feed").rows_below() == 0  # it shows the newest
        await pilot.press("4", "G")
        table = app.pane("escalations")
        while not (table.rows_above() and table.rows_below()):  # up the queue to its middle: rows both ways
            await pilot.press("ctrl+u")
        assert table.subtitle == f"+{table.rows_above()} above  +{table.rows_below()} below"


async def test_at_80x24_the_feed_keeps_four_rows_and_its_newest_across_resizes(tmp_path: Path) -> None:
    """Guards: layout.FLOORS (the feed's four rows) and FeedPane.on_resize (anchored to the newest)."""
    app = app_for(crowded_town(tmp_path / "town"), live=False, kennel=True)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        feed = app.pane("feed")
        newest = row_keys(app, "feed")[-1]
        assert feed._rows_in_view() >= 4 and in_view(app, "feed", newest)
        for size in ((120, 40), SMALL, (100, 30), SMALL):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.2)
            assert feed._rows_in_view() >= 4, size
            await wait_until(pilot, lambda: in_view(app, "feed", newest), 3, f"the newest run in view at {size}")


async def test_the_columns_stay_put_whatever_the_sort_and_filter_and_rig_stays(tmp_path: Path) -> None:
    """Guards: fit_columns keeps room for a sort arrow and measures every row (not the filtered ones); rig is kept."""
    app = app_for(crowded_town(tmp_path / "town"), live=False, kennel=True)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        plain = [label.rstrip(" ▲▼") for label in column_labels(app, "plugins")]
        assert plain[:2] == ["plugin", "rig"], plain
        await pilot.press("1")
        for _ in range(len(plain) + 1):
            await pilot.press("s")
            await pilot.pause(0.05)
            assert [label.rstrip(" ▲▼") for label in column_labels(app, "plugins")] == plain
            await pilot.press("S")
            await pilot.pause(0.05)
            assert [label.rstrip(" ▲▼") for label in column_labels(app, "plugins")] == plain
        await pilot.press("slash", *"forge")
        await wait_until(pilot, lambda: app.pane("plugins").filter_text == "forge", 3, "the filter")
        assert [label.rstrip(" ▲▼") for label in column_labels(app, "plugins")] == plain


async def test_a_collect_that_changes_nothing_leaves_the_plugins_pane_holding_the_cells_it_had(tmp_path: Path) -> None:
    """Guards: CellPool and KeyedTable._kept (issue 22, memory): every collect builds the rows afresh, and the pane
    holds one copy of each cell (the table's), not the table's and an equal new one."""
    app = app_for(control_town(tmp_path / "town"), clock=fixed_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: app.patrol_state.next_at is not None, 10, "the start-up patrol")
        pane = app.pane("plugins")
        held = {key: pane.cells_of(key) for key in row_keys(app, "plugins")}
        assert set(held) == {"hello", "broken", "dormant"}
        for key, kept in held.items():  # the table's cells are the pane's, the very objects
            assert all(any(shown is cell for cell in kept) for shown in pane.get_row(key)), key
        before = app.snapshot
        app.request_refresh()
        await wait_until(pilot, lambda: app.snapshot is not before, 5, "another collect")
        for key, kept in held.items():
            assert pane.cells_of(key) is kept, key
            assert all(any(shown is cell for cell in kept) for shown in pane.get_row(key)), key


def test_which_columns_show_depends_on_the_width_alone_never_on_the_sort() -> None:
    """Guard: the room fit_columns keeps for a sort arrow (labels wider than their cells are where an arrow tips it)."""
    columns = (Col("name"), Col("state", drop=1), Col("notes", drop=2))
    for available in range(10, 40):
        unsorted, _ = fit_columns(columns, (6, 6, 6), (3, 3, 3), available)
        for sorted_by in range(3):
            shown, widths = fit_columns(columns, (6, 6, 6), (3, 3, 3), available, sorted_by=sorted_by)
            assert shown == unsorted, (available, sorted_by)
            assert sum(width + 2 for width in widths.values()) <= available or shown == (0,), (available, sorted_by)  # it fits


def test_a_cell_pool_gives_one_cell_for_equal_asks_and_keeps_the_last_builds_only() -> None:
    """Guard: CellPool (issue 22, memory): equal cells are one object within a build and into the next; older ones go."""
    pool = CellPool()
    enabled = pool("enabled", "green")
    assert pool("enabled", "green") is enabled and pool("enabled") is not enabled and pool("3", sort=3) is not pool("3")
    pool.turn()
    assert pool("enabled", "green") is enabled  # asked again in the next build: the same cell
    pool.turn()
    pool.turn()  # a build that did not ask for it: let go
    again = pool("enabled", "green")
    assert again is not enabled and again == enabled and again.style == enabled.style


def test_a_run_past_its_timeout_is_marked() -> None:
    """Guard: the ⚠ of state.elapsed (and its red)."""
    over = elapsed(FIXED - 10.0, 8.0, FIXED)
    assert over.plain == "⚠ 10s / 8s" and "red" in str(over.style)
    assert elapsed(FIXED - 3.0, 8.0, FIXED).plain == "3s / 8s"


async def test_elapsed_times_tick_every_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: the app's 1 s _tick_elapsed (the collector's idle refresh is put far away, so only the tick can do it)."""
    monkeypatch.setattr(gtui.tui.app, "IDLE_REFRESH_SECONDS", 3600.0)
    town = control_town(tmp_path / "town")
    pid_file = tmp_path / "sleepy.pid"
    add_plugin(town, "sleepy", gate='type = "manual"', run_sh=f'echo $$ > "{pid_file}"\nsleep 30\n')
    offset = [0.0]
    app = app_for(town, clock=lambda: time.time() + offset[0])
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await started(pilot)
            await select(pilot, "plugins", "sleepy")
            await pilot.press("r")
            await wait_until(pilot, lambda: pid_file.exists(), 5, "the run in flight")
            run = ledger_of(town).runs("sleepy")[0]
            key = f"run:{run.ref}"
            await wait_until(pilot, lambda: key in row_keys(app, "dogs") and "working" in row_text(app, "dogs", key), 5, "the run")
            offset[0] = 3 * 3600.0  # three hours on: past its timeout too
            await wait_until(pilot, lambda: cells(app, "dogs", key)[4].startswith("⚠ 3h"), 3, "the elapsed cell ticking")
            await pilot.press("q")
    finally:
        kill_pid_file(pid_file)


# -- 3. the reason at a glance ------------------------------------------------------------------


async def test_a_failed_runs_reason_and_its_last_log_line_are_in_the_feed_details_and_log(tmp_path: Path) -> None:
    """Guard: state.reason_words (summary marked as taken from the log, then the reason)."""
    town = control_town(tmp_path / "town")
    record_run(town, "broken", "failure", started=time.time() - 60, duration=1.0, reason="exited 1",
               log="checking the vault\nrsync: connection refused\n", log_summary="rsync: connection refused")
    app = app_for(town, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        said = "failure in 1s: rsync: connection refused (its last log line) · exited 1"
        run = ledger_of(town).runs("broken")[0]
        assert said in row_text(app, "feed", f"{run.id}:failure")
        await select(pilot, "plugins", "broken")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen) and app.screen.latest is not None, 5, "details")
        assert "rsync: connection refused (its last log line) · exited 1" in screen_text(app)
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.log_lines.line_count == 2, 5, "the log")
        await wait_until(pilot, lambda: "(its last log line) · exited 1" in screen_text(app), 3, "the reason under the log")


async def test_a_skipped_agent_run_says_why_it_has_no_log(tmp_path: Path) -> None:
    """Guard: LogScreen._no_file (the engine's words on a missing log, instead of an empty viewer)."""
    town = control_town(tmp_path / "town")
    add_plugin(town, "triage", gate='type = "manual"', run_sh=None)
    record_run(town, "triage", "skipped", started=time.time() - 60, duration=0.0, reason="no agent_command is set in gtui.toml")
    app = app_for(town, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        run = ledger_of(town).runs("triage")[0]
        assert "skipped in 0s: no agent_command is set in gtui.toml" in row_text(app, "feed", f"{run.id}:skipped")
        await select(pilot, "plugins", "triage")
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), 3, "the log viewer")
        await wait_until(pilot, lambda: "has no log: it ended skipped without starting anything" in screen_text(app), 3,
                         "why there is no log")
        assert "no agent_command is set in gtui.toml" in screen_text(app)


# -- 4. pauses ----------------------------------------------------------------------------------


async def test_the_details_say_who_paused_a_plugin_when_and_why(tmp_path: Path) -> None:
    """Guard: the Paused line of PluginDetailsScreen.show."""
    town = control_town(tmp_path / "town")
    ledger_of(town).set_paused("hello", True, reason="disk swap", by="ann@build-box", now=FIXED - 120)
    app = app_for(town, live=False, clock=fixed_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        assert "paused 2m ago by ann@build-box: disk swap" in row_text(app, "plugins", "hello")
        await select(pilot, "plugins", "hello")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Paused: paused 2m ago by ann@build-box: disk swap" in screen_text(app), 5, "the pause")


# -- 7. habits ----------------------------------------------------------------------------------


def long_log_town(root: Path) -> Path:
    town = control_town(root)
    lines = [f"line {index}" + (" needle" if index in (50, 150) else "") for index in range(200)]
    lines[10] = "wide " + "x" * 300
    record_run(town, "hello", "success", started=time.time() - 60, duration=1.0, log="\n".join(lines) + "\n")
    return town


async def test_the_log_viewer_scrolls_with_the_pane_keys_searches_and_wraps(tmp_path: Path) -> None:
    """Guards: the scroll keys on LogScreen, LogLines.search/jump, the no-match word, LogLines.set_wrap."""
    app = app_for(long_log_town(tmp_path / "town"), live=False)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.log_lines.line_count == 200, 5, "the log")
        log = app.screen.query_one(LogLines)
        await pilot.press("g")
        assert log.scroll_y == 0
        await pilot.press("G")
        assert log.scroll_y == log.max_scroll_y > 0
        await pilot.press("g", "j", "j")
        assert log.scroll_y == 2
        await pilot.press("k")
        assert log.scroll_y == 1
        await pilot.press("ctrl+d")
        half = max(1, log.scrollable_content_region.height // 2)
        assert log.scroll_y == 1 + half
        await pilot.press("ctrl+u")
        assert log.scroll_y == 1
        await pilot.press("slash", *"NEEDLE", "enter")
        await wait_until(pilot, lambda: "match 1/2 for 'NEEDLE'" in screen_text(app), 3, "the first match")
        assert in_log_view(log, 50)
        await pilot.press("n")
        assert "match 2/2 for 'NEEDLE'" in screen_text(app) and in_log_view(log, 150)
        await pilot.press("n")
        assert "match 1/2 for 'NEEDLE'" in screen_text(app)
        await pilot.press("N")
        assert "match 2/2 for 'NEEDLE'" in screen_text(app)
        await pilot.press("slash", *"zzz", "enter")
        await wait_until(pilot, lambda: "no match for 'zzz'" in screen_text(app), 3, "no match")
        await pilot.press("escape")  # clears the search, stays
        assert isinstance(app.screen, LogScreen) and "no match" not in screen_text(app) and not log.needle
        assert log.virtual_size.width > log.scrollable_content_region.width  # the wide line is cut
        await pilot.press("w")
        assert log.wrap and log.virtual_size.width <= log.scrollable_content_region.width and "wrapped" in screen_text(app)
        assert log.virtual_size.height > 200
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, LogScreen), 3, "back on the main screen")


def in_log_view(log: LogLines, line: int) -> bool:
    return log.scroll_y <= log._row_of(line) < log.scroll_y + log.scrollable_content_region.height


async def test_help_scrolls_with_the_pane_keys_and_lists_the_screenshot(tmp_path: Path) -> None:
    """Guard: the scroll keys on HelpScreen."""
    app = app_for(control_town(tmp_path / "town"), live=False)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 3, "help")
        scroll = app.screen.query_one(KeyScroll)
        await pilot.press("j", "j")
        assert scroll.scroll_y == 2
        await pilot.press("G")
        assert scroll.scroll_y == scroll.max_scroll_y > 2
        await pilot.press("g")
        assert scroll.scroll_y == 0
        seen = screen_text(app)
        while scroll.scroll_y < scroll.max_scroll_y:  # half a page at a time, reading as it goes
            at = scroll.scroll_y
            await pilot.press("ctrl+d")
            assert scroll.scroll_y > at
            seen += screen_text(app)
        assert "Save a screenshot" in seen and "ctrl+s" in seen


async def test_ctrl_c_quits_like_q(tmp_path: Path) -> None:
    """Guard: ctrl+c among quit's keys (Textual's own ctrl+c only toasted "[b]ctrl+q[/b]")."""
    app = app_for(control_town(tmp_path / "town"), live=False)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.return_code is not None, 3, "the app to exit")
    assert app.return_code == 0 and not [note for note in notes(app) if "ctrl+q" in note[1]]


async def test_the_screenshot_goes_into_the_towns_gtui_directory_and_says_where(tmp_path: Path) -> None:
    """Guard: action_screenshot's own place (Textual's saved to ~/Downloads, silently failing when it is missing)."""
    town = control_town(tmp_path / "town")
    app = app_for(town, live=False, clock=fixed_clock)
    async with app.run_test(size=SMALL) as pilot:
        await started(pilot)
        await pilot.press("question_mark")  # on any screen
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 3, "help")
        await pilot.press("ctrl+s")
        target = town.resolve() / ".gtui" / "gtui-20260310-120000.svg"
        await wait_until(pilot, lambda: ("Screenshot", f"saved in {target}", "information") in notes(app), 5, "the word on where")
        assert target.read_text().startswith("<svg")


def test_a_town_without_its_gtui_directory_gets_the_screenshot_in_the_working_directory(tmp_path: Path,
                                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    assert screenshot_directories(Town(bare), None) == [tmp_path]
    (bare / ".gtui").mkdir()
    assert screenshot_directories(Town(bare), None) == [bare / ".gtui", tmp_path]


# -- 9. details in words, toasts clear of the feed ----------------------------------------------


async def test_details_speak_words_never_python_values(tmp_path: Path) -> None:
    """Guard: details.in_words (yes/no, empty fields left out)."""
    town = control_town(tmp_path / "town")
    app = app_for(town, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "dormant")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen), 3, "details")
        shown = screen_text(app)
        assert not re.search(r"\b(True|False|None)\b", shown), shown
        assert re.search(r"enabled\s+no\b", shown) and not re.search(r"tracking\.labels\s+-", shown)


async def test_toasts_leave_the_feeds_event_column_in_sight(tmp_path: Path) -> None:
    """Guard: the ToastRack and Toast rules of app.tcss."""
    app = app_for(control_town(tmp_path / "town"), live=False)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await started(pilot)
        app.notify("a long toast that would have covered the bottom right of the screen, where the feed says what runs did")
        await wait_until(pilot, lambda: list(app.screen.query(Toast)), 3, "the toast")
        await pilot.pause(0.1)
        feed = app.query_one("#feed-pane").region
        for toast in app.screen.query(Toast):
            assert not toast.region.overlaps(feed), (toast.region, feed)
