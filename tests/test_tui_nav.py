"""The control room's keys, layout and words, driven headless with Textual's Pilot.

Bindings come from the one table (``gtui.tui.keys.KEYS``) and a town's ``[keymap]`` only through its
check; every pane moves, sorts and filters the same way (k9s and lazygit habits); tables fit
their panes at any terminal size and say what colour says when ``NO_COLOR`` is set; read-only
keys say why they do nothing; settings apply live; and the words fit the control room.
Real towns on disk, the real ledger, bounded polling waits: nothing is mocked.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from enginekit import add_plugin
from rich.style import Style
from textual.app import App as TextualApp
from textual.command import CommandPalette
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList
from tuikit import (
    SIZE,
    app_for,
    cells,
    column_labels,
    control_town,
    escalations_of,
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

from gtcore.core.events import PatrolFinished
from gtcore.model import Town
from gtui.tui.app import READ_ONLY, GtuiApp, action_name
from gtui.tui.components.footer import GtuiFooter
from gtui.tui.components.tables import PANES, FilterInput
from gtui.tui.keys import BY_ID, KEYS
from gtui.tui.screens.help import HelpScreen
from gtui.tui.screens.modals import AskScreen, ConfirmScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def town(tmp_path: Path) -> Path:
    return control_town(tmp_path / "town")


def header_lines(app: GtuiApp) -> list[str]:
    """The header's lines (the first line, and one per failing source or notice)."""
    return str(app.query_one("#header").render()).splitlines()


def settings_file(root: Path) -> Path:
    return root / "settings" / "gtui.toml"


def ran(root: Path, plugin: str) -> list[str | None]:
    return [run.result if run.status == "closed" else None for run in reversed(ledger_of(root).runs(plugin, limit=None))]


def many_plugins(root: Path, count: int) -> list[str]:
    names = [f"p{index:02d}" for index in range(count)]
    for name in names:
        add_plugin(root, name, gate='type = "manual"', run_sh="echo ran\n")
    return names


# -- 1. bindings from the table, the keymap only through its check ------------------------------


def test_every_binding_of_the_control_room_comes_from_the_key_table() -> None:
    """The app, each pane, the filter line, help and the dialogs: each binding is a KEYS entry, keys and action as written there."""
    from gtui.tui.app import GtuiApp as App
    from gtui.tui.screens.modals import AskScreen as Ask
    from gtui.tui.screens.modals import ConfirmScreen as Confirm

    owners: dict[str, tuple[type[Any], set[str]]] = {
        "app": (App, {"app"}),
        "help": (HelpScreen, {"help", "scroll"}),
        "confirm": (Confirm, {"confirm"}),
        "ask": (Ask, {"ask"}),
        **{pane.PANE: (pane, {"table", pane.PANE}) for pane in PANES},
    }
    textual = {(binding.key, binding.action) for base in (TextualApp, ModalScreen)
               for bindings in base._merge_bindings().key_to_bindings.values() for binding in bindings}
    for name, (owner, contexts) in owners.items():
        merged = owner._merge_bindings()
        found = [binding for bindings in merged.key_to_bindings.values() for binding in bindings]
        ours = [binding for binding in found if binding.id is not None]
        others = [binding for binding in found if binding.id is None]
        if owner in PANES:  # a pane has nothing else (DataTable's own keys are not inherited: home scrolled sideways)
            assert not others, (name, others)
        else:  # the app and its screens keep Textual's own (ctrl+q, ctrl+p, tab), nothing of gtui's own making
            assert {(binding.key, binding.action) for binding in others} <= textual, (name, others)
        for binding in ours:
            key = BY_ID[binding.id]
            assert key.context in contexts and binding.action == key.action and binding.key in key.keys.split(","), (name, binding)
        assert {binding.id for binding in ours} == {key.id for key in KEYS if key.context in contexts}, name
    field = FilterInput._merge_bindings()
    assert "table.clear_filter" in {binding.id for bindings in field.key_to_bindings.values() for binding in bindings}


def test_every_pane_key_has_its_entry_in_the_apps_action_table_and_the_table_nothing_else(tmp_path: Path) -> None:
    """A pane's key posts (pane, action); the app's table says what that does: a key without an entry would do nothing."""
    app = GtuiApp(Town(tmp_path))
    asked = {(key.context, action_name(key.action)) for key in KEYS if key.context in {pane.PANE for pane in PANES}}
    assert asked == set(app.pane_actions)
    assert all(callable(handler) and getattr(handler, "__self__", None) is app for handler in app.pane_actions.values())


async def test_a_keymap_is_applied_only_through_its_check_and_its_problems_stay_in_the_header(tmp_path: Path) -> None:
    """An unknown id and a remap onto quit's key are not applied: lasting header lines, not toasts. The rest is applied."""
    settings = 'dogs = 2\n\n[keymap]\n"plugins.rn" = "R"\n"plugins.run" = "q"\n"plugins.log" = "L"\n'
    town = control_town(tmp_path / "town", settings=settings)
    record_run(town, "hello", "success", started=time.time() - 60, duration=0.5, log="hello\n")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: any("keymap.plugins.rn" in line for line in header_lines(app)), 3, "the unknown id in the header")
        lines = header_lines(app)
        assert any("keymap.plugins.run" in line and "must always work" in line for line in lines), lines
        assert not [note for note in notes(app) if "keymap" in note[1]]  # a header line, not a passing toast
        await select(pilot, "plugins", "hello")
        await pilot.press("L")  # applied
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "LogScreen", 3, "the log from the remapped key")
        await pilot.press("escape")
        await pilot.press("r")  # plugins.run keeps r: its remap onto q was refused
        await wait_until(pilot, lambda: ran(town, "hello") == ["success", "success"], 10, "the run from r")
        await pilot.pause(1.0)
        assert app.return_code is None and any("keymap.plugins.rn" in line for line in header_lines(app))  # still there


async def test_removing_a_remap_from_gtui_toml_gives_the_default_key_back_live(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings='dogs = 2\n\n[keymap]\n"plugins.run" = "R"\n"nope" = "x"\n')
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("r")
        await pilot.pause(0.3)
        assert ran(town, "hello") == []
        assert any("keymap.nope" in line for line in header_lines(app))
        settings_file(town).write_text("dogs = 2\n")
        await wait_until(pilot, lambda: app.engine is not None and app.engine.settings.keymap == {}, 3, "the settings read again")
        await wait_until(pilot, lambda: not any("keymap" in line for line in header_lines(app)), 3, "the keymap line to go")
        await pilot.press("r")
        await wait_until(pilot, lambda: ran(town, "hello") == ["success"], 10, "the run from r, given back")
        await pilot.press("R")
        await pilot.pause(0.3)
        assert ran(town, "hello") == ["success"]


async def test_help_lists_the_keys_in_effect_and_every_binding_id_in_full_at_80_columns(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings='dogs = 2\n\n[keymap]\n"plugins.run" = "R"\n')
    app = app_for(town, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 3, "help")
        await pilot.pause()
        scroll = app.screen.query_one(VerticalScroll)
        seen: list[str] = []
        for _ in range(40):  # page through the whole help
            seen.append(screen_text(app))
            if scroll.scroll_y >= scroll.max_scroll_y:
                break
            scroll.scroll_to(y=scroll.scroll_y + 10, animate=False)
            await pilot.pause()
        shown = "\n".join(seen)
        words = set(re.findall(r"[a-z_]+(?:\.[a-z_]+)+", shown))
        missing = [key.id for key in KEYS if "." in key.id and key.id not in words]
        assert not missing, missing
        assert "…" not in shown
        for plain in ("patrol", "digest", "filter", "maximize", "help", "quit"):
            assert re.search(rf" {plain} ", shown), plain
        assert re.search(r" R +Run +plugins\.run ", shown)  # the key in effect, not the default
        assert re.search(r" j, ↓ +Down +table\.down ", shown) and re.search(r" g, home +Top +table\.top ", shown)


# -- 2. moving and sorting in every pane ------------------------------------------------------


async def test_j_k_g_G_home_end_and_half_pages_move_the_cursor(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    many_plugins(town, 40)
    first, second, third = (raise_escalation(town, f"subject {index}", "high") for index in range(3))
    app = app_for(town, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        table = app.pane("plugins")
        count = table.row_count
        assert count == 43
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == count - 1
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("end")  # to the bottom, not sideways
        assert table.cursor_row == count - 1 and table.scroll_x == 0
        await pilot.press("home")
        assert table.cursor_row == 0
        half = (table.scrollable_content_region.height - 1) // 2
        assert half >= 2
        await pilot.press("ctrl+d")
        assert table.cursor_row == half
        await pilot.press("ctrl+d", "ctrl+u")
        assert table.cursor_row == half
        await pilot.press("ctrl+u")
        assert table.cursor_row == 0
        await pilot.press("4")  # the same keys in another pane
        queue = app.pane("escalations")
        await pilot.press("G")
        assert queue.selected_key() == row_keys(app, "escalations")[-1]
        await pilot.press("k", "g", "j")
        assert queue.selected_key() == row_keys(app, "escalations")[1]
        assert {first.ref, second.ref, third.ref} == set(row_keys(app, "escalations"))


async def test_s_cycles_the_sort_column_S_reverses_and_the_header_row_shows_it(town: Path) -> None:
    record_run(town, "broken", "failure", started=time.time() - 600, duration=1.0)
    record_run(town, "broken", "failure", started=time.time() - 500, duration=1.0)
    record_run(town, "hello", "success", started=time.time() - 400, duration=1.0)
    add_plugin(town, "alpha", gate='type = "manual"')
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert row_keys(app, "plugins") == ["alpha", "broken", "dormant", "hello"]
        await select(pilot, "plugins", "hello")
        await pilot.press("S")  # reverse: by the first column, descending
        assert column_labels(app, "plugins")[0] == "plugin ▼"
        assert row_keys(app, "plugins") == ["hello", "dormant", "broken", "alpha"]
        assert app.pane("plugins").selected_key() == "hello"  # the selected row stays selected
        await pilot.press("S")
        assert column_labels(app, "plugins")[0] == "plugin ▲" and row_keys(app, "plugins")[0] == "alpha"
        await pilot.press("s")  # the next column
        labels = column_labels(app, "plugins")
        assert labels[0] == "plugin" and labels[1] == "rig ▲"
        runs = labels.index("runs")
        for _ in range(runs - 1):
            await pilot.press("s")
        assert column_labels(app, "plugins")[runs] == "runs ▲"
        assert row_keys(app, "plugins")[-1] == "broken"  # 2 runs: the most
        await pilot.press("S")
        assert column_labels(app, "plugins")[runs] == "runs ▼" and row_keys(app, "plugins")[0] == "broken"
        assert app.pane("plugins").selected_key() == "hello"

        # a click on a column's label sorts by it; a second click reverses
        table = app.pane("plugins")
        result = column_labels(app, "plugins").index("result")
        x = sum(column.get_render_width(table) for column in table.ordered_columns[:result]) + 2
        await pilot.click(table, offset=(x, 0))
        await wait_until(pilot, lambda: column_labels(app, "plugins")[result] == "result ▲", 3, "the sort by result")
        await pilot.click(table, offset=(x, 0))
        await wait_until(pilot, lambda: column_labels(app, "plugins")[result] == "result ▼", 3, "the reversed sort by result")
        assert row_keys(app, "plugins")[:2] == ["hello", "broken"]  # success after failure; reversed, first; the empty ones last
        assert row_keys(app, "plugins")[2:] == ["alpha", "dormant"]
        for _ in range(len(column_labels(app, "plugins"))):  # s past the last column: the pane's own order again
            if not any(label.endswith(("▲", "▼")) for label in column_labels(app, "plugins")):
                break
            await pilot.press("s")
        assert row_keys(app, "plugins") == ["alpha", "broken", "dormant", "hello"]


async def test_a_sorted_pane_keeps_its_order_keys_and_selection_through_live_updates(town: Path) -> None:
    record_run(town, "broken", "failure", started=time.time() - 600, duration=1.0)
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        table = await select(pilot, "plugins", "dormant")
        runs = column_labels(app, "plugins").index("runs")
        for _ in range(runs + 1):
            await pilot.press("s")
        await pilot.press("S")  # by runs, most first
        assert column_labels(app, "plugins")[runs] == "runs ▼"
        assert row_keys(app, "plugins") == ["broken", "dormant", "hello"]
        before = {key: table.get_row_index(key) for key in row_keys(app, "plugins")}
        assert before["dormant"] == table.cursor_row
        for _ in range(2):  # hello runs twice: it climbs over broken, by the diff update (not a rebuild)
            record_run(town, "hello", "success", started=time.time() - 5, duration=0.1)
        await wait_until(pilot, lambda: row_keys(app, "plugins") == ["hello", "broken", "dormant"], 5, "hello on top")
        assert table.selected_key() == "dormant" and cells(app, "plugins", "hello")[runs] == "2"
        assert set(row_keys(app, "plugins")) == {"hello", "broken", "dormant"}


async def test_the_feed_keeps_time_order_unless_sorted(town: Path) -> None:
    now = time.time()
    record_run(town, "hello", "success", started=now - 300, duration=1.0)
    record_run(town, "broken", "failure", started=now - 200, duration=1.0)
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: len(row_keys(app, "feed")) == 2, 3, "the feed")
        plugins = lambda: [cells(app, "feed", key)[1] for key in row_keys(app, "feed")]  # noqa: E731
        assert plugins() == ["hello", "broken"]
        record_run(town, "dormant", "success", started=now - 100, duration=1.0)
        await wait_until(pilot, lambda: plugins() == ["hello", "broken", "dormant"], 3, "the newest at the bottom")
        await pilot.press("3", "s", "s")  # by plugin
        assert column_labels(app, "feed")[1] == "plugin ▲"
        assert plugins() == ["broken", "dormant", "hello"]
        record_run(town, "alpha", "success", started=time.time() - 1, duration=0.5)
        await wait_until(pilot, lambda: len(plugins()) == 4, 3, "a new feed row")
        assert plugins() == ["alpha", "broken", "dormant", "hello"]  # in sort order, not at the bottom
        while any(label.endswith(("▲", "▼")) for label in column_labels(app, "feed")):
            await pilot.press("s")
        assert plugins() == ["hello", "broken", "dormant", "alpha"]  # time order again


# -- 3. the live filter -----------------------------------------------------------------------


async def test_the_filter_matches_the_name_column_and_column_value_terms(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    add_plugin(town, "alpha-sync", gate='type = "manual"', where="alpha/plugins")
    add_plugin(town, "cool", gate='type = "cooldown"\nduration = "1h"')
    record_run(town, "broken", "failure", started=time.time() - 60, duration=1.0)
    record_run(town, "hello", "success", started=time.time() - 50, duration=1.0)
    opened = raise_escalation(town, "hello is late", "high")
    acked = raise_escalation(town, "disk full", "medium")
    escalations_of(town).ack(acked.ref, now=time.time())
    app = app_for(town, live=False, kennel=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        table = app.pane("plugins")

        async def typed(pane: str, needle: str, by_key: bool = False) -> list[str]:
            """The filter line of ``pane`` holding ``needle``: typed key by key, or set at once (an Input.Changed all the same)."""
            field = app.pane(pane).box.filter_input
            if app.focused is not field:
                await pilot.press({"plugins": "1", "dogs": "2", "feed": "3", "escalations": "4"}[pane], "slash")
            if by_key:
                field.value = ""
                await pilot.press(*needle)
            else:
                field.value = needle
            await pilot.pause()
            return row_keys(app, pane)

        assert await typed("plugins", "manual", by_key=True) == []  # a plain word matches the name column only
        assert await typed("plugins", "rig:alpha") == ["alpha-sync"]
        assert await typed("plugins", "result:fail") == ["broken"]
        assert await typed("plugins", "RESULT:FAIL") == ["broken"]  # case-insensitive
        assert await typed("plugins", "state:open") == ["cool"]
        assert await typed("plugins", "gate:manual hel") == ["hello"]  # every term must match
        assert table.subtitle == "filter: gate:manual hel (1/5)"
        await pilot.press("enter")
        assert app.focused is table and row_keys(app, "plugins") == ["hello"]

        assert await typed("escalations", "late") == [opened.ref]  # the subject
        assert await typed("escalations", "state:open") == [opened.ref]  # status, also called state
        assert await typed("escalations", "severity:med") == [acked.ref]
        await pilot.press("escape")
        assert await typed("feed", "broken") == [key for key in row_keys(app, "feed") if cells(app, "feed", key)[1] == "broken"]
        assert len(row_keys(app, "feed")) == 1
        await pilot.press("escape")
        (rex,) = await typed("dogs", "rex")
        assert rex.startswith("idle:") and rex.endswith(":rex")
        middle = app.query_one("#middle")  # the panes share the screen anew as the filter is typed (2 escalations; 1 dog, its filter line)
        await wait_until(pilot, lambda: middle.outer_size.height == max(2, 1 + 1) + 3, 3, "the middle row fitted to the filter")
        assert await typed("dogs", "no such dog") == []
        await pilot.press("escape")
        assert len(row_keys(app, "dogs")) == 1 + 2  # the kennel and its two dogs


async def test_esc_in_the_table_clears_a_filter_even_when_the_pane_is_maximized(town: Path) -> None:
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        table = app.pane("plugins")
        await pilot.press("slash", *"dor", "enter")
        assert row_keys(app, "plugins") == ["dormant"] and app.focused is table
        await pilot.press("z")
        await wait_until(pilot, lambda: app.screen.maximized is table.box, 3, "the maximized pane")
        await pilot.press("escape")  # first: the filter goes
        assert row_keys(app, "plugins") == ["broken", "dormant", "hello"] and app.screen.maximized is table.box
        assert table.subtitle == ""
        await pilot.press("escape")  # then: the pane is restored
        await wait_until(pilot, lambda: app.screen.maximized is None, 3, "the panes restored")
        bindings = app.screen.active_bindings
        assert "escape" not in bindings or bindings["escape"].binding.id != "table.clear_filter" or not bindings["escape"].enabled


# -- 4. tables that fit -----------------------------------------------------------------------


async def test_a_patched_cell_that_grows_widens_its_column(town: Path) -> None:
    add_plugin(town, "reporter", gate='type = "manual"', run_sh=(
        'bd create "reporter: nothing to rebuild today, the forge is quiet" -t chore --ephemeral'
        ' -l type:plugin-run,plugin:reporter,result:skipped --silent\n'))
    app = app_for(town)
    async with app.run_test(size=(250, 40)) as pilot:
        await started(pilot)
        assert cells(app, "plugins", "hello")[5] == "-"
        await select(pilot, "plugins", "hello")
        await pilot.press("r")
        await wait_until(pilot, lambda: cells(app, "plugins", "hello")[5] == "success", 10, "hello's result")
        await select(pilot, "plugins", "reporter")
        await pilot.press("r")
        summary = "skipped · reporter: nothing to rebuild today, the forge is quiet"
        await wait_until(pilot, lambda: cells(app, "plugins", "reporter")[5] == summary, 15, "reporter's summary")
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert re.search(r"hello .* success ", shown) and summary in shown and "succe…" not in shown
        table = app.pane("plugins")
        result = next(column for column in table.ordered_columns if column.key.value == "result")
        assert result.get_render_width(table) >= len(summary) + 2


async def test_at_80x24_the_panes_keep_what_matters_and_the_footer_keeps_help_and_quit(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings="dogs = 3\n")
    add_plugin(town, "forge-builder", gate='type = "cooldown"\nduration = "10m"', where="forge/plugins")
    record_run(town, "broken", "failure", started=time.time() - 60, duration=1.0)
    raise_escalation(town, "the forge's disk is almost full again", "high")
    app = app_for(town, live=False, kennel=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        labels = column_labels(app, "plugins")
        assert {"plugin", "result", "state"} <= set(labels), labels
        for pane in ("plugins", "dogs", "feed", "escalations"):
            table = app.pane(pane)
            assert table.virtual_size.width <= table.scrollable_content_region.width, pane  # no sideways scrolling
        shown = screen_text(app)
        assert "✗ failure" in shown and "forge-builder" in shown
        dogs = app.pane("dogs")
        assert dogs.row_count == 1 + 3  # the kennel and its three dogs
        assert all(name in shown for name in ("kennel", "rex")) and ("fido" in shown or "+1 below" in dogs.subtitle)
        footer = shown.splitlines()[-1]
        assert footer.lstrip().startswith("? Help") and " q Quit " in footer, footer
        await pilot.press("4")
        footer = screen_text(app).splitlines()[-1]
        assert footer.lstrip().startswith("? Help  q Quit"), footer


async def test_a_pane_too_short_for_its_rows_says_how_many_are_above_and_below(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings="dogs = 16\n")
    app = app_for(town, live=False, kennel=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        dogs = app.pane("dogs")
        names = [cells(app, "dogs", key)[0].strip() for key in row_keys(app, "dogs")[1:]]  # after the kennel's row
        assert len(names) == 16
        shown = [name for name in names if re.search(rf"│\s+{name} ", screen_text(app))]
        assert 0 < len(shown) < 16
        assert dogs.subtitle == f"+{16 - len(shown)} below" and f"+{16 - len(shown)} below" in screen_text(app)
        await pilot.press("2", "G")  # at the bottom, nothing is below, and as many rows are above as do not fit
        await wait_until(pilot, lambda: dogs.subtitle == f"+{16 - len(shown)} above", 3, "the count to turn round")
        await pilot.press("g")
        await wait_until(pilot, lambda: dogs.subtitle == f"+{16 - len(shown)} below", 3, "the count back below")


async def test_at_250x70_the_panes_share_the_screen_by_what_they_hold(town: Path) -> None:
    raise_escalation(town, "disk full", "high")
    record_run(town, "hello", "success", started=time.time() - 60, duration=1.0)
    app = app_for(town, live=False, kennel=True)
    async with app.run_test(size=(250, 70)) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        heights = {pane: app.pane(pane).box.outer_size.height for pane in ("plugins", "escalations", "dogs", "feed")}
        assert heights["plugins"] == 3 + 3  # its rows, its labels and its border: no empty rows
        assert heights["escalations"] == heights["dogs"] == 1 + 2 + 3  # the kennel and its two dogs
        assert heights["feed"] == app.query_one("#panes").size.height - heights["plugins"] - heights["dogs"]  # the rest
        assert app.pane("dogs").box.outer_size.width < 125  # as wide as its columns want; the escalations get the rest


async def test_no_color_keeps_failures_invalid_rows_severities_and_open_gates_apart(tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    town = control_town(tmp_path / "town")
    add_plugin(town, "cool", gate='type = "cooldown"\nduration = "1h"')
    bad = town / "plugins" / "bad"
    bad.mkdir()
    (bad / "plugin.md").write_text('+++\nname = "bad"\n+++\n')
    record_run(town, "broken", "failure", started=time.time() - 60, duration=1.0)
    loud = raise_escalation(town, "pager", "critical")
    high = raise_escalation(town, "disk", "high")
    app = app_for(town, live=False)
    assert app.no_color
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert cells(app, "plugins", "broken")[5] == "✗ failure"
        assert cells(app, "plugins", f"invalid:{bad / 'plugin.md'}")[2] == "! invalid"
        assert cells(app, "plugins", "cool")[8].startswith("● open: ")
        feed_key = next(key for key in row_keys(app, "feed") if key.endswith(":failure"))
        assert cells(app, "feed", feed_key)[3].startswith("✗ failure")

        def style(pane: str, key: str, column: int) -> Style:
            cell = app.pane(pane).cells_of(key)[column]
            return Style.parse(str(cell.style))

        assert style("escalations", loud.ref, 1).reverse and style("escalations", high.ref, 1).bold
        assert not style("escalations", high.ref, 1).reverse
        assert style("plugins", "cool", 8).bold and style("plugins", f"invalid:{bad / 'plugin.md'}", 2).bold


# -- 5. read-only honesty ---------------------------------------------------------------------


async def test_read_only_writing_keys_are_shown_disabled_and_say_why_when_pressed(town: Path) -> None:
    item = raise_escalation(town, "disk full", "high")
    app = app_for(town, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        footer = app.query_one(GtuiFooter)
        dim = {key.key for key in footer.query("FooterKey") if key.has_class("-disabled")}
        assert {"r", "f", "space", "p", "d"} <= dim, dim
        for key in ("r", "f", "space", "p", "d"):
            before = len(notes(app))
            await pilot.press(key)
            await wait_until(pilot, lambda before=before: len(notes(app)) > before, 3, f"a word for {key}")
            assert notes(app)[-1][1] == READ_ONLY, key
        await select(pilot, "escalations", item.ref)
        for key in ("a", "x"):
            before = len(notes(app))
            await pilot.press(key)
            await wait_until(pilot, lambda before=before: len(notes(app)) > before, 3, f"a word for {key}")
            assert notes(app)[-1][1] == READ_ONLY
        assert not isinstance(app.screen, AskScreen | ConfirmScreen)
        assert "with --read-only" in READ_ONLY


async def test_p_with_nothing_to_do_says_so(town: Path) -> None:
    app = app_for(town, live=False)  # only manual gates: a patrol has nothing to run
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("p")
        await wait_until(pilot, lambda: ("Patrol", "nothing to do: no gate is open", "information") in notes(app), 10, "the patrol's word")
        add_plugin(town, "cool", gate='type = "cooldown"\nduration = "1h"')
        await pilot.press("p")
        await wait_until(pilot, lambda: ("Patrol", "handed cool to the dogs", "information") in notes(app), 10, "what the patrol ran")


# -- 6. live settings -------------------------------------------------------------------------


async def test_a_changed_patrol_interval_reschedules_the_patrol_timer(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings='dogs = 2\npatrol_interval = "1h"\n')
    app = app_for(town)
    patrols: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert app.engine is not None
        app.engine.bus.subscribe(lambda event: patrols.append(time.monotonic()) if isinstance(event, PatrolFinished) else None)
        await wait_until(pilot, lambda: "next in 3" in header_lines(app)[0], 10, "the start-up patrol done")  # next in 3599s
        settings_file(town).write_text('dogs = 2\npatrol_interval = "1s"\n')
        changed = time.monotonic()
        await wait_until(pilot, lambda: len(patrols) >= 2, 8, "two patrols at the new interval")
        assert patrols[0] > changed
        assert re.search(r"next in [01]s|running", header_lines(app)[0])


async def test_a_broken_gtui_toml_keeps_a_header_line_until_it_is_fixed(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        settings_file(town).write_text("dogs = \n")
        await wait_until(pilot, lambda: any("settings failing" in line for line in header_lines(app)), 3, "the settings line")
        line = next(line for line in header_lines(app) if "settings failing" in line)
        assert "gtui.toml" in line and "last good settings" in line
        await pilot.pause(2.5)  # a toast would be gone by now: the line stays
        assert any("settings failing" in line for line in header_lines(app))
        settings_file(town).write_text("dogs = 2\n")
        await wait_until(pilot, lambda: not any("settings failing" in line for line in header_lines(app)), 3, "the line to go")


# -- 7. a plugin made while a patrol runs -----------------------------------------------------


async def test_a_plugin_file_made_while_a_patrol_runs_shows_within_a_second_and_stays(town: Path) -> None:
    add_plugin(town, "slowcheck", gate='type = "condition"\ncheck = "sleep 2; exit 1"', run_sh="echo ran\n")
    app = app_for(town)  # live: the start-up patrol runs slowcheck's check for 2 s
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: app.patrol_state.running, 3, "the patrol running")
        add_plugin(town, "newcomer", gate='type = "manual"')
        made = time.monotonic()
        await wait_until(pilot, lambda: "newcomer" in row_keys(app, "plugins"), 1.5, "the new plugin")
        assert time.monotonic() - made < 1.5
        await wait_until(pilot, lambda: not app.patrol_state.running, 10, "the patrol done")
        for _ in range(10):  # the patrol's older scan must not hide it again
            await pilot.pause(0.1)
            assert "newcomer" in row_keys(app, "plugins")


# -- 8. the command palette -------------------------------------------------------------------


async def test_the_palette_lists_every_action_of_every_pane_exactly_once(town: Path) -> None:
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), 3, "the command palette")

        def prompts() -> list[str]:
            options = app.screen.query_one(OptionList)
            return [str(options.get_option_at_index(index).prompt).split("\n")[0] for index in range(options.option_count)]

        await wait_until(pilot, lambda: "Patrol now" in prompts(), 3, "the palette's commands")
        listed = prompts()
        wanted = [key.description for key in KEYS if key.context == "app" and not key.id.startswith("focus.")]
        wanted += [f"{key.context}: {key.description}" for key in KEYS if key.context in ("plugins", "dogs", "feed", "escalations")]
        for title in wanted:
            assert listed.count(title) == 1, (title, listed)
        assert listed.count("Quit") == 1 and listed.count("Maximize") == 1
        await pilot.press(*"escalations: ack")
        await wait_until(pilot, lambda: prompts()[:1] == ["escalations: Acknowledge"], 3, "the match")
        await pilot.press("escape")


async def test_a_pane_action_from_the_palette_runs_on_that_panes_selected_row(town: Path) -> None:
    item = raise_escalation(town, "disk full", "high")
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert app.focused is app.pane("plugins")
        await pilot.press("ctrl+p", *"escalations: Acknowledge")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette) and "Acknowledge" in screen_text(app), 3, "the command")
        await pilot.press("enter")
        await wait_until(pilot, lambda: escalations_of(town).get(item.ref).status == "acked", 5, "the acknowledgement")
        assert app.focused is app.pane("escalations")


# -- 9. words ---------------------------------------------------------------------------------


async def test_r_on_a_disabled_plugin_says_to_press_f(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings='dogs = 2\n\n[keymap]\n"plugins.force_run" = "F"\n')
    ledger_of(town).set_paused("hello", True, reason="for the test")
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "dormant")
        await pilot.press("r")
        await wait_until(pilot, lambda: any(title == "Not run" for title, *_ in notes(app)), 3, "the refusal")
        message = next(message for title, message, _ in notes(app) if title == "Not run")
        assert message == "plugin dormant is disabled in plugin.md (enabled = false); press F to run it anyway"
        assert "--force" not in message
        assert "paused" in row_text(app, "plugins", "hello")
        await select(pilot, "plugins", "hello")
        await pilot.press("r")
        await wait_until(pilot, lambda: any("resume" in message for _, message, _ in notes(app)), 3, "the paused refusal")
        message = next(message for _, message, _ in notes(app) if "resume" in message)
        assert message == "plugin hello is paused: for the test; press space to resume it, or F to run it anyway"


async def test_an_empty_close_reason_is_refused_in_the_dialog(town: Path) -> None:
    item = raise_escalation(town, "disk 93% full", "high")
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "escalations", item.ref)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen), 3, "the close dialog")
        await pilot.press("space", "enter")
        await wait_until(pilot, lambda: "a reason is needed" in screen_text(app), 3, "the refusal in the dialog")
        assert isinstance(app.screen, AskScreen) and escalations_of(town).get(item.ref).status == "open"
        await pilot.press("escape")


async def test_a_digest_with_nothing_to_squash_says_nothing_to_digest(town: Path) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 3, "the digest dialog")
        await pilot.press("y")
        await wait_until(pilot, lambda: any(title.startswith("Digest") for title, *_ in notes(app)), 5, "the digest's word")
        assert (f"Digest {yesterday}", f"nothing to digest for {yesterday}", "information") in notes(app)
        assert not any("squashed into no digest" in message for _, message, _ in notes(app))


async def test_space_on_a_row_the_ledger_has_moved_past_says_what_is_so(town: Path) -> None:
    """Not "hello paused" when nothing changed (nor "resumed (it was already resumed)"): what is so."""
    ledger_of(town).set_paused("broken", True, reason="before the app started")
    app = app_for(town, live=False)  # one snapshot: it goes stale on purpose
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        ledger_of(town).set_paused("hello", True, reason="by another hand")
        ledger_of(town).set_paused("broken", False)
        await select(pilot, "plugins", "hello")
        assert "enabled" in row_text(app, "plugins", "hello")  # the screen is behind
        await pilot.press("space")
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen), 3, "the pause dialog")
        await pilot.press("enter")  # no reason: allowed
        await wait_until(pilot, lambda: any("hello" in message for _, message, _ in notes(app)), 5, "the word on hello")
        assert [message for _, message, _ in notes(app) if "hello" in message] == ["hello is paused already"]
        assert "hello" in ledger_of(town).paused()
        await select(pilot, "plugins", "broken")
        assert "paused" in row_text(app, "plugins", "broken")
        await pilot.press("space")
        await wait_until(pilot, lambda: any("broken" in message for _, message, _ in notes(app)), 5, "the word on broken")
        assert [message for _, message, _ in notes(app) if "broken" in message] == ["broken is not paused: nothing to resume"]

