"""The control room driven headless with Textual's Pilot: every key, every modal, live updates.

Each test builds a real town in ``tmp_path`` (plugin files, ``run.sh`` scripts, the SQLite
ledger), starts :class:`~gtui.tui.app.GtuiApp` on it at 160x48 and presses keys. What a key did
is checked on the ledger (the truth) and on the screen (what the operator sees). Waits are
bounded polling loops, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from enginekit import add_plugin, gtui_argv, gtui_env, wait_for
from textual.command import CommandPalette
from textual.widgets import OptionList
from tuikit import (
    SIZE,
    app_for,
    cells,
    control_town,
    escalations_of,
    kill_pid_file,
    ledger_of,
    ledger_rows,
    log_ended,
    notes,
    pane_text,
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
from gtcore.model import GateDecision, GateState
from gtcore.storage.contract import Claim, Close
from gtui.tui.components.log_lines import LogLines
from gtui.tui.screens.details import EscalationDetailsScreen, PluginDetailsScreen
from gtui.tui.screens.help import HelpScreen
from gtui.tui.screens.log_viewer import LogScreen
from gtui.tui.screens.modals import AskScreen, ConfirmScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def town(tmp_path: Path) -> Path:
    return control_town(tmp_path / "town")


def results(root: Path, plugin: str) -> list[str | None]:
    """The results of a plugin's runs on the ledger, oldest first (None while running)."""
    return [run.result if run.status == "closed" else None for run in reversed(ledger_of(root).runs(plugin, limit=None))]


def run_ref(root: Path, plugin: str) -> str:
    """The ref of the plugin's latest run."""
    return ledger_of(root).runs(plugin, limit=1)[0].ref


# -- plugin keys ------------------------------------------------------------------------------


async def test_r_runs_the_selected_plugin_and_the_feed_shows_it(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("r")
        await wait_until(pilot, lambda: results(town, "hello") == ["success"], 10, "hello's run on the ledger")
        run = ledger_of(town).runs("hello")[0]
        feed_key = f"{run.id}:success"
        await wait_until(pilot, lambda: feed_key in row_keys(app, "feed"), 3, "the finished run in the feed")
        assert "hello" in row_text(app, "feed", feed_key) and "success" in row_text(app, "feed", feed_key)
        await wait_until(pilot, lambda: cells(app, "plugins", "hello")[5] == "success", 3, "hello's last result")
        assert cells(app, "plugins", "hello")[5:7] == ["success", "1"]  # result, runs
        assert ("Run", f"hello queued for a dog as {ledger_of(town).runs('hello')[0].ref}") in [
            (title, message) for title, message, _ in notes(app)]


async def test_a_plugins_own_report_shows_in_the_table_and_the_feed(town: Path) -> None:
    """bd create ... -l type:plugin-run,result:skipped: the result is the plugin's, its summary in the table and the feed."""
    add_plugin(town, "reporter", gate='type = "manual"', run_sh=(
        'bd create "reporter: nothing to rebuild" -t chore --ephemeral -l type:plugin-run,plugin:reporter,result:skipped'
        ' -d "Skipped: not safe to rebuild" --silent\n'))
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "reporter")
        await pilot.press("r")
        await wait_until(pilot, lambda: results(town, "reporter") == ["skipped"], 15, "reporter's run on the ledger")
        await wait_until(pilot, lambda: cells(app, "plugins", "reporter")[5] == "skipped · reporter: nothing to rebuild", 3,
                         "the summary in the result cell")
        run = ledger_of(town).runs("reporter")[0]
        await wait_until(pilot, lambda: f"{run.id}:skipped" in row_keys(app, "feed"), 3, "the run in the feed")
        assert "skipped in" in row_text(app, "feed", f"{run.id}:skipped")
        assert "reporter: nothing to rebuild" in row_text(app, "feed", f"{run.id}:skipped")


async def test_a_failed_run_raises_a_toast(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "broken")
        await pilot.press("r")
        await wait_until(pilot, lambda: any(title == "Run failed" for title, *_ in notes(app)), 10, "the failure toast")
        _, message, severity = next(note for note in notes(app) if note[0] == "Run failed")
        assert severity == "error" and message.startswith(f"broken {run_ref(town, 'broken')}: failure in ") and "exited 3" in message
        assert results(town, "broken") == ["failure"]
        assert "failure" in row_text(app, "plugins", "broken")


async def test_f_force_runs_a_disabled_plugin_that_r_refuses(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "dormant")
        assert "disabled" in row_text(app, "plugins", "dormant")
        await pilot.press("r")
        await wait_until(pilot, lambda: any(title == "Not run" for title, *_ in notes(app)), 5, "the refusal")
        assert results(town, "dormant") == []
        await pilot.press("f")
        await wait_until(pilot, lambda: results(town, "dormant") == ["success"], 10, "the forced run")
        assert ("Run (forced)", f"dormant queued for a dog as {ledger_of(town).runs('dormant')[0].ref}") in [
            (title, message) for title, message, _ in notes(app)]


async def test_space_pauses_and_resumes_the_selected_plugin(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("space")  # asks why first: escape leaves it running
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen), 3, "the pause dialog")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, AskScreen), 3, "the dialog gone")
        assert "hello" not in ledger_of(town).paused()
        await pilot.press("space")
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen), 3, "the pause dialog")
        await pilot.press(*"disk swap", "enter")
        await wait_until(pilot, lambda: "hello" in ledger_of(town).paused(), 5, "hello paused on the ledger")
        pause = ledger_of(town).pauses()["hello"]
        assert pause.reason == "disk swap" and "@" in pause.by
        await wait_until(pilot, lambda: "paused" in row_text(app, "plugins", "hello"), 3, "the paused cell")
        assert f"by {pause.by}: disk swap" in row_text(app, "plugins", "hello")  # who and why in the state column
        await pilot.press("r")  # a paused plugin does not run without force
        await wait_until(pilot, lambda: any(title == "Not run" for title, *_ in notes(app)), 5, "the refusal")
        await pilot.press("space")
        await wait_until(pilot, lambda: "hello" not in ledger_of(town).paused(), 5, "hello resumed")
        await wait_until(pilot, lambda: "enabled" in row_text(app, "plugins", "hello"), 3, "the enabled cell")
        assert results(town, "hello") == []


async def test_enter_opens_plugin_details_and_l_the_latest_log(town: Path) -> None:
    record_run(town, "hello", "success", started=time.time() - 60, duration=0.5, log="hello from hello\nsecond line\n")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen), 3, "plugin details")
        await wait_until(pilot, lambda: "1 in all, 0 failed" in screen_text(app), 3, "the run history")
        shown = screen_text(app)
        assert "Say hello" in shown and "Manual gate" in shown and "plugins/hello/plugin.md" in shown
        assert "hello from hello" in shown  # the latest log's tail
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), 3, "the log viewer from details")
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, LogScreen | PluginDetailsScreen), 3, "the main screen")
        assert app.focused is app.pane("plugins")


async def test_the_details_of_a_run_that_got_no_answer_say_which_calls(tmp_path: Path) -> None:
    """A run whose ``gt`` call nothing answered is no green run, and the control room says which call, as ``--once`` does."""
    if shutil.which("gt"):
        pytest.skip(f"a real gt is on PATH ({shutil.which('gt')}): gtui would hand the call to it")
    town = control_town(tmp_path / "town")
    add_plugin(town, "asker", gate='type = "manual"', run_sh="gt rig show gastown --json 2>/dev/null || true\n")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "asker")
        await pilot.press("r")
        await wait_until(pilot, lambda: results(town, "asker") == ["warning"], 10, "asker's run")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen) and "1 in all" in screen_text(app), 5,
                         "the details")
        shown = " ".join(screen_text(app).split())
        assert "got no answer from gtui" in shown  # why it is a warning
        assert "error: called by run-" in shown and "(gt rig show --json): gtui does not answer it" in shown


async def test_l_shows_the_log_lines_of_the_last_run(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("l")
        await wait_until(pilot, lambda: any(title == "" and "has not run yet" in message for title, message, _ in notes(app)),
                         3, "a word that there is no run yet")
        await pilot.press("r")
        await wait_until(pilot, lambda: results(town, "hello") == ["success"], 10, "hello's run")
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), 3, "the log viewer")
        log = app.screen.query_one(LogLines)
        await wait_until(pilot, lambda: log_ended(app), 3, "the end of the log")
        assert list(log.lines) == ["hello from hello", "second line"]
        title = screen_text(app).splitlines()[0]
        assert f"hello {run_ref(town, 'hello')}  .gtui/runs/{run_ref(town, 'hello')}.log" in title  # relative to the town


# -- escalation keys --------------------------------------------------------------------------


async def test_a_acknowledges_the_selected_escalation(town: Path) -> None:
    quiet = raise_escalation(town, "backup is late", "medium")
    loud = raise_escalation(town, "disk 93% full", "high")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert row_keys(app, "escalations") == [loud.ref, quiet.ref]  # most severe first
        await select(pilot, "escalations", loud.ref)
        await pilot.press("a")
        await wait_until(pilot, lambda: escalations_of(town).get(loud.ref).status == "acked", 5, "the acknowledgement")
        await wait_until(pilot, lambda: "acked" in row_text(app, "escalations", loud.ref), 3, "the acked row")
        assert escalations_of(town).get(quiet.ref).status == "open"
        assert "1 medium" in screen_text(app).splitlines()[0]  # the header counts open ones only


async def test_x_asks_for_a_reason_and_closes_escape_cancels(town: Path) -> None:
    item = raise_escalation(town, "disk 93% full", "high")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "escalations", item.ref)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen), 3, "the close modal")
        assert f"Close {item.ref}: why?" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, AskScreen), 3, "the modal to go")
        assert escalations_of(town).get(item.ref).status == "open"

        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen), 3, "the close modal again")
        await pilot.press("enter")  # no reason: refused, the modal stays
        await wait_until(pilot, lambda: any("a reason is needed" in message for _, message, _ in notes(app)), 3, "the refusal")
        assert isinstance(app.screen, AskScreen)
        await pilot.press(*"freed space", "enter")
        await wait_until(pilot, lambda: escalations_of(town).get(item.ref).status == "closed", 5, "the escalation closed")
        closed = escalations_of(town).get(item.ref)
        assert "freed space" in str(closed.bead.data)
        await wait_until(pilot, lambda: item.ref not in row_keys(app, "escalations"), 3, "the row to leave the queue")


async def test_enter_on_the_escalations_pane_opens_escalation_details(town: Path) -> None:
    item = raise_escalation(town, "disk 93% full", "high", body="df says 93% on /srv", fingerprint="disk-guard:srv")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "escalations", item.ref)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EscalationDetailsScreen), 3, "escalation details")
        shown = screen_text(app)
        assert item.ref in shown and "disk 93% full" in shown and "df says 93% on /srv" in shown
        assert "Deliveries" in shown and "History" in shown and "raised" in shown
        assert f"fingerprint {item.fingerprint} (disk-guard:srv)" in shown and item.fingerprint.startswith("escalation-fp:")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, EscalationDetailsScreen), 3, "the main screen")


# -- global keys ------------------------------------------------------------------------------


async def test_d_confirms_before_digesting_n_cancels_y_runs(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    add_plugin(town, "tally", gate='type = "manual"\n[tracking]\ndigest = true', run_sh="echo 1\n")
    yesterday = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
    for hour in range(3):
        record_run(town, "tally", "success", started=yesterday.timestamp() + hour * 3600, duration=1.0)
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 3, "the digest confirm modal")
        assert f"Make the digest of {yesterday.date().isoformat()}?" in screen_text(app)
        assert "their wisps and logs are deleted" in screen_text(app)  # the whole explanation, wrapped
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 3, "the modal to go")
        await pilot.pause(0.2)
        assert ledger_of(town).beads("digest") == [] and len(ledger_of(town).runs("tally")) == 3
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 3, "the digest confirm modal again")
        await pilot.press("y")
        digests = await wait_until(pilot, lambda: ledger_of(town).beads("digest"), 5, "the digest bead")
        assert digests[0].title == f"Plugin Digest {yesterday.date().isoformat()}"
        assert ledger_of(town).runs("tally") == []
        await wait_until(pilot, lambda: any(title.startswith("Digest ") and message.startswith(f"3 runs of {yesterday.date().isoformat()}"
                                                                                              " squashed into ")
                                            for title, message, _ in notes(app)), 3, "the digest toast")
        await pilot.press("d")  # nothing is left of that day: said in words, not "0 run(s) squashed into no digest"
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 3, "the digest confirm modal a third time")
        await pilot.press("y")
        await wait_until(pilot, lambda: (f"Digest {yesterday.date().isoformat()}", f"nothing to digest for {yesterday.date().isoformat()}",
                                         "information") in notes(app), 3, "the empty digest's toast")


async def test_p_patrols_now(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    add_plugin(town, "cool", gate='type = "cooldown"\nduration = "1h"', run_sh='echo "cool ran"\n')
    app = app_for(town, live=False, kennel=True)  # no patrol at start: only p can run the open cooldown gate
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert "open: " in row_text(app, "plugins", "cool")
        await pilot.pause(0.3)
        assert results(town, "cool") == []
        await pilot.press("p")
        await wait_until(pilot, lambda: results(town, "cool") == ["success"], 10, "the patrol's run")
        assert results(town, "hello") == []  # manual gates stay shut
        header = lambda: screen_text(app).splitlines()[0]  # noqa: E731
        await wait_until(pilot, lambda: "paused (not live)" in header(), 5, "the header to leave 'running'")


async def test_slash_filters_the_focused_pane(town: Path) -> None:
    """The filter is a line at the bottom of the focused pane (no modal): typing filters, enter keeps it, esc clears it."""
    first = raise_escalation(town, "disk 93% full", "high")
    second = raise_escalation(town, "backup is late", "medium")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert row_keys(app, "plugins") == ["broken", "dormant", "hello"]
        await pilot.press("slash")
        field = app.pane("plugins").box.filter_input
        await wait_until(pilot, lambda: app.focused is field, 3, "the filter line of the plugins pane")
        assert len(app.screen_stack) == 1  # no modal
        await pilot.press(*"HEL")
        await wait_until(pilot, lambda: row_keys(app, "plugins") == ["hello"], 3, "the plugins filtered as typed")
        assert app.pane("plugins").subtitle == "filter: HEL (1/3)"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.focused is app.pane("plugins") and not field.display, 3, "the focus back on the table")
        assert row_keys(app, "plugins") == ["hello"] and "filter: HEL (1/3)" in screen_text(app)
        assert row_keys(app, "escalations") == [first.ref, second.ref]  # other panes keep every row

        await pilot.press("4", "slash")
        await wait_until(pilot, lambda: app.focused is app.pane("escalations").box.filter_input, 3, "the filter line of escalations")
        await pilot.press(*"backup", "enter")
        await wait_until(pilot, lambda: row_keys(app, "escalations") == [second.ref], 3, "the filtered escalations")
        assert row_keys(app, "plugins") == ["hello"]

        await pilot.press("1", "slash")  # the line starts with the current filter
        await wait_until(pilot, lambda: app.focused is field, 3, "the filter line once more")
        assert field.value == "HEL"
        await pilot.press("escape")  # esc in the line clears the filter
        await wait_until(pilot, lambda: row_keys(app, "plugins") == ["broken", "dormant", "hello"], 3, "every plugin again")
        assert app.pane("plugins").subtitle == "" and app.focused is app.pane("plugins")


async def test_tab_and_number_keys_move_focus_between_panes(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert app.focused is app.pane("plugins")
        seen = []
        for _ in range(4):
            await pilot.press("tab")
            seen.append(app.focused.id if app.focused else None)
        assert sorted(seen) == ["dogs", "escalations", "feed", "plugins"] and seen[-1] == "plugins"
        for key, pane in (("2", "dogs"), ("3", "feed"), ("4", "escalations"), ("1", "plugins")):
            await pilot.press(key)
            assert app.focused is app.pane(pane), key


async def test_question_mark_opens_help(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 3, "the help screen")
        shown = screen_text(app)
        for words in ("gtui keys", "Patrol now", "Force run", "plugins.run", "Pause/resume"):
            assert words in shown, words
        assert re.search(r" / +Filter ", shown) and re.search(r" \? +Help ", shown)  # as the footer writes keys
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen), 3, "help to close")


async def test_z_maximizes_and_restores_the_focused_pane(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("4", "z")
        await wait_until(pilot, lambda: app.screen.maximized is app.pane("escalations").box, 3, "the maximized pane")
        assert "1 Plugins" not in screen_text(app) and "4 Escalations" in screen_text(app)
        await pilot.press("z")
        await wait_until(pilot, lambda: app.screen.maximized is None, 3, "the panes restored")
        assert "1 Plugins" in screen_text(app)


async def test_q_quits(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None, 3, "the app to exit")
    assert app.return_code == 0


async def test_q_with_a_run_in_flight_quits_at_once_and_the_run_ends_in_its_kennel(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    pid_file = tmp_path / "sleepy.pid"
    add_plugin(town, "sleepy", gate='type = "manual"', run_sh=f'echo $$ > "{pid_file}"\nsleep 2\n')
    app = app_for(town)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await select(pilot, "plugins", "sleepy")
            await pilot.press("r")
            await wait_until(pilot, lambda: pid_file.exists(), 5, "the run in flight")
            await wait_until(pilot, lambda: "working" in pane_text(app, "dogs"), 3, "a working dog")
            await pilot.press("q")
            await wait_until(pilot, lambda: app.return_code is not None, 3, "the app to exit")  # no question: nothing is lost
        run = ledger_of(town).runs("sleepy")[0]
        assert run.status == "running", "quitting the control room left the run to its kennel"
        ended = wait_for(lambda: ledger_of(town).get(run.id).status == "closed" and ledger_of(town).get(run.id), 10, "its end")
        assert ended.result == "success"
    finally:
        kill_pid_file(pid_file)


async def test_ctrl_k_stops_the_selected_run_after_asking(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    pid_file = tmp_path / "sleepy.pid"
    add_plugin(town, "sleepy", gate='type = "manual"', run_sh=f'echo $$ > "{pid_file}"\nsleep 30\n')
    app = app_for(town)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await select(pilot, "plugins", "sleepy")
            await pilot.press("r")
            await wait_until(pilot, lambda: pid_file.exists(), 5, "the run in flight")
            run = ledger_of(town).runs("sleepy")[0]
            await select(pilot, "dogs", f"run:{run.ref}")
            await pilot.press("ctrl+k")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 3, "the stop confirm modal")
            assert f"Stop {run.ref} (sleepy)?" in screen_text(app)
            await pilot.press("n")
            await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 3, "the modal to go")
            assert ledger_of(town).get(run.id).status == "running", "no answered no"
            await pilot.press("ctrl+k")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 3, "the stop confirm modal again")
            await pilot.press("y")
            await wait_until(pilot, lambda: ledger_of(town).get(run.id).status == "closed", 10, "the run to be stopped")
        stopped = ledger_of(town).get(run.id)
        assert stopped.result == "abandoned" and "stopped from the control room (ctrl+k)" in stopped.data["reason"]
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)
    finally:
        kill_pid_file(pid_file)


async def test_the_command_palette_lists_the_actions(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), 3, "the command palette")

        def prompts() -> str:
            options = app.screen.query_one(OptionList)
            return "\n".join(str(options.get_option_at_index(index).prompt) for index in range(options.option_count))

        await wait_until(pilot, lambda: "Patrol now" in prompts(), 3, "the palette's commands")
        for command in ("Patrol now", "Digest", "Filter", "Help", "Quit", "plugins: Run", "plugins: Force run"):
            assert command in prompts(), command
        assert "key /" in prompts() and "key r on the selected row" in prompts()
        await pilot.press(*"force")
        await wait_until(pilot, lambda: "plugins: Force run" in prompts() and "Patrol now" not in prompts(), 3, "the matches")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CommandPalette), 3, "the palette to close")


# -- read-only and keymap ---------------------------------------------------------------------


async def test_read_only_disables_every_writing_key(town: Path) -> None:
    item = raise_escalation(town, "disk 93% full", "high")
    before = ledger_rows(town)
    app = app_for(town, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert "paused (read-only)" in screen_text(app).splitlines()[0]
        await select(pilot, "plugins", "dormant")
        disabled = {key for key, active in app.screen.active_bindings.items() if not active.enabled}
        assert {"r", "f", "space", "p", "d"} <= disabled and not {"enter", "l", "slash", "question_mark", "q"} & disabled
        await pilot.press("r", "f", "space", "p", "d")
        await select(pilot, "escalations", item.ref)
        assert {"a", "x"} <= {key for key, active in app.screen.active_bindings.items() if not active.enabled}
        await pilot.press("a", "x")
        await pilot.pause(0.5)
        assert not isinstance(app.screen, AskScreen | ConfirmScreen)
        await pilot.press("enter")  # reading still works
        await wait_until(pilot, lambda: isinstance(app.screen, EscalationDetailsScreen), 3, "escalation details")
        await pilot.press("escape")
        await pilot.pause(0.5)
    assert ledger_rows(town) == before
    assert not (town / ".gtui" / "runs").exists() or not any((town / ".gtui" / "runs").iterdir())


async def test_a_keymap_in_gtui_toml_remaps_a_key(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town", settings='dogs = 2\n\n[keymap]\n"plugins.run" = "R"\n')
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await select(pilot, "plugins", "hello")
        await pilot.press("r")
        await pilot.pause(0.5)
        assert results(town, "hello") == []
        await pilot.press("R")
        await wait_until(pilot, lambda: results(town, "hello") == ["success"], 10, "the run from the remapped key")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 3, "help")
        assert re.search(r" R +Run +plugins\.run ", screen_text(app))


# -- live updates -----------------------------------------------------------------------------


async def test_an_edited_plugin_file_shows_without_restart(town: Path) -> None:
    path = town / "plugins" / "hello" / "plugin.md"
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert " manual " in row_text(app, "plugins", "hello")
        path.write_text(path.read_text().replace('type = "manual"', 'type = "cooldown"\nduration = "2h"')
                        .replace("Say hello", "Say hello twice"))
        await wait_until(pilot, lambda: " cooldown " in row_text(app, "plugins", "hello"), 2.0, "the new gate")
        assert app.snapshot is not None and app.snapshot.plugin_set is not None
        plugin = app.snapshot.plugin_set.get("hello")
        assert plugin is not None and plugin.description == "Say hello twice"

        path.write_text(path.read_text().replace('duration = "2h"', 'duration = "two hours"'))
        bad_key = f"invalid:{path}"
        await wait_until(pilot, lambda: bad_key in row_keys(app, "plugins"), 2.0, "the broken file listed as invalid")
        assert "hello" not in row_keys(app, "plugins")
        assert "invalid" in row_text(app, "plugins", bad_key) and "plugin.md:" in row_text(app, "plugins", bad_key)
        assert row_keys(app, "plugins")[:2] == ["broken", "dormant"]  # the rest stays on screen


async def test_a_patrols_scan_shows_at_once_not_when_the_patrol_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rig made after the start is found by the next patrol, not by the watcher: its plugins show while that patrol still
    waits on a slow condition check (no idle refresh to fall back on here)."""
    monkeypatch.setattr(gtui.tui.app, "IDLE_REFRESH_SECONDS", 600.0)
    town = control_town(tmp_path / "town")
    slow = tmp_path / "slow"  # outside the town: nothing the watcher sees
    add_plugin(town, "slowcheck", gate=f'type = "condition"\ncheck = "test -f {slow} && sleep 4; exit 1"')
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: app.patrol_state.next_at is not None, 10, "the start-up patrol to end")
        slow.touch()
        add_plugin(town, "newcomer", gate='type = "manual"', where="late/plugins")
        await pilot.press("p")
        await wait_until(pilot, lambda: "newcomer" in row_keys(app, "plugins"), 2.5, "the new rig's plugin")
        assert app.patrol_state.running  # the check still sleeps: the row came with the scan, not with the patrol's end
        await wait_until(pilot, lambda: not app.patrol_state.running, 10, "the patrol to end")


async def test_the_first_paint_hook_runs_once_with_the_rows_on_screen(town: Path) -> None:
    """The entry point freezes start-up's objects there: after the first snapshot is shown, and never again."""
    seen: list[list[str]] = []
    app = app_for(town, on_first_paint=lambda: seen.append(row_keys(app, "plugins")))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        first = app.snapshot
        app.request_refresh()
        await wait_until(pilot, lambda: app.snapshot is not first, 5, "a second snapshot")
    assert seen == [["broken", "dormant", "hello"]]


async def test_a_record_written_by_another_process_shows_within_two_seconds(town: Path) -> None:
    quiet = raise_escalation(town, "backup is late", "medium")
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert row_keys(app, "escalations") == [quiet.ref]
        argv = gtui_argv(town, "escalate", "pager from afar", "--severity", "high")
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, env=gtui_env(), timeout=30)
        assert done.returncode == 0, done.stderr
        written = time.monotonic()
        await wait_until(pilot, lambda: len(row_keys(app, "escalations")) == 2, 2.0, "the escalation in the queue")
        assert time.monotonic() - written < 2.0
        key = row_keys(app, "escalations")[0]  # more severe: above the one already shown
        assert row_keys(app, "escalations") == [key, quiet.ref]
        assert "pager from afar" in row_text(app, "escalations", key) and "high" in row_text(app, "escalations", key)
        await wait_until(pilot, lambda: ("Escalation raised", f"{key} pager from afar", "error") in notes(app), 2, "the toast")
        assert "1 high" in screen_text(app).splitlines()[0]


async def test_a_failing_source_says_so_in_the_header(town: Path) -> None:
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert "failing" not in screen_text(app)
        (town / "settings" / "escalation.json").write_text('{"routes": {"high": ["pigeon"]}}')
        await wait_until(pilot, lambda: "escalation settings failing" in screen_text(app), 2.0, "the error line")
        header = next(line for line in screen_text(app).splitlines() if "escalation settings failing" in line)
        assert "escalation.json" in header
        (town / "settings" / "escalation.json").write_text('{"routes": {"high": ["bead"]}}')
        await wait_until(pilot, lambda: "failing" not in screen_text(app), 2.0, "the error line to go")


# -- untrusted text ---------------------------------------------------------------------------

EVIL = "[bold]x[/bold] \x1b[31mred\x1b[0m"


async def test_markup_and_escape_sequences_are_shown_literally_never_interpreted(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    add_plugin(town, "evil", gate='type = "manual"', top='description = "[bold]x[/bold] \\u001b[31mred"',
               body="# [bold]x[/bold]\n", run_sh="printf '[bold]x[/bold] \\033[31mred\\033[0m\\n'\nexit 1\n")
    bad = town / "plugins" / "[red]bad[red]"
    bad.mkdir()
    (bad / "plugin.md").write_text('+++\nname = "[b]Nope"\n+++\n')
    item = raise_escalation(town, EVIL, "high", body=EVIL)
    app = app_for(town)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        main = screen_text(app)
        assert "[red]bad[red]" in main  # the invalid plugin's directory, in the plugins pane
        assert "[bold]x[/bold] red" in row_text(app, "escalations", item.ref)
        await pilot.press("4", "z")  # maximized, the subject has room
        await wait_until(pilot, lambda: app.screen.maximized is not None, 3, "the maximized escalations")
        queue = screen_text(app)
        assert "[bold]x[/bold] red" in queue
        await pilot.press("z")

        await select(pilot, "plugins", "evil")
        await pilot.press("r")
        await wait_until(pilot, lambda: results(town, "evil") == ["failure"], 10, "evil's run")
        await pilot.press("l")
        await wait_until(pilot, lambda: log_ended(app), 5, "the log")
        assert list(app.screen.query_one(LogLines).lines) == ["[bold]x[/bold] red"]
        logged = screen_text(app)
        await pilot.press("escape", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PluginDetailsScreen) and "1 in all" in screen_text(app), 5,
                         "the details")
        details = screen_text(app)
        assert details.count("[bold]x[/bold]") >= 3  # the description, the instructions' heading, the log tail
        await pilot.press("escape")
        await select(pilot, "escalations", item.ref)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EscalationDetailsScreen), 3, "escalation details")
        escalation = screen_text(app)
        assert escalation.count("[bold]x[/bold] red") >= 2  # the subject and the body
        await pilot.press("escape")

        # Raised while the app runs: the toast shows the subject as written (an unmatched [/b] is no crash,
        # a [@click] no action), and so does the filter's subtitle.
        later = raise_escalation(town, "[/bold] and [@click=app.quit]quit[/] \x1b[2J", "critical")
        await wait_until(pilot, lambda: any(later.ref in message for _, message, _ in notes(app)), 3, "the toast")
        await pilot.press("1", "slash", *"[/b]", "enter")
        await wait_until(pilot, lambda: app.pane("plugins").row_count == 0, 3, "the filter")
        app.clear_notifications()  # the toasts sit at the top right, over the plugins pane's subtitle
        await pilot.pause(0.1)
        assert "filter: [/b] (0/" in screen_text(app)
        await pilot.pause(0.2)
        toasts = screen_text(app)
        assert app.return_code is None  # still running
    assert "[/bold] and" in toasts and "[@click=app.quit]quit[/]" in toasts
    for shown in (main, queue, logged, details, escalation, toasts):
        assert "\x1b" not in shown
    assert not any("\x1b" in message for _, message, _ in notes(app))


async def test_failures_before_start_are_not_toasted_and_a_burst_is_one_toast(town: Path) -> None:
    now = time.time()
    record_run(town, "backup", "failure", started=now - 600, duration=1.0)  # old news: in the feed, not a toast
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: any(key.endswith(":failure") for key in row_keys(app, "feed")), 5, "the old failure in the feed")
        assert not [note for note in notes(app) if note[0].startswith("Run")]
        names = ("alpha", "bravo", "charlie", "delta", "echo")
        ledger = ledger_of(town)
        runs = ledger.record_turn([], [Claim(name, "town") for name in names])
        ledger.record_turn([Close(run.id, "failure", {"duration_s": 0.1}) for run in runs], [])  # five failures in one commit
        await wait_until(pilot, lambda: any(note[0] == "Runs failed" for note in notes(app)), 5, "the summary toast")
        failed = [note for note in notes(app) if note[0].startswith("Run")]
        assert len(failed) == 1 and failed[0][1].startswith("5 runs failed: alpha, bravo, charlie, delta, echo")


async def test_the_plugins_pane_says_what_the_cli_says_shadowed_copies_and_failures(tmp_path: Path) -> None:
    town = control_town(tmp_path / "town")
    copy = town / "plugins" / "hello-copy"
    copy.mkdir()
    (copy / "plugin.md").write_text((town / "plugins" / "hello" / "plugin.md").read_text(encoding="utf-8"), encoding="utf-8")
    now = time.time()
    for n, result in enumerate(("failure", "success", "failure", "success")):
        record_run(town, "broken", result, started=now - 600 + n * 60, duration=1.0)
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        hello = await wait_until(pilot, lambda: row_text(app, "plugins", "hello"), 3, "the hello row")
        broken = row_text(app, "plugins", "broken")
    assert hello.split(" | ")[0] == "hello +1 shadowed"
    assert "2 · 50%" in broken.split(" | ")


def test_gate_cells_are_styled_by_state_not_by_words() -> None:
    from gtui.tui.state import gate_cell

    waiting_about_pauses = gate_cell(GateDecision(GateState.WAITING, "waiting for event paused-disabled"), False, time.time())
    assert str(waiting_about_pauses.style) == "", "a word in the reason styles nothing"
    assert str(gate_cell(GateDecision(GateState.PAUSED, "held by the operator"), False, time.time()).style) == "dim"
    assert str(gate_cell(GateDecision(GateState.DISABLED, "off"), False, time.time()).style) == "dim"
    error = gate_cell(GateDecision(GateState.ERROR, "no slot"), False, time.time())
    assert str(error.style) == "bold red" and error.plain.endswith("no slot")
    assert gate_cell(GateDecision(GateState.OPEN, "never run"), False, time.time()).plain.endswith("open: never run")
