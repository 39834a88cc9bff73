"""The control room: a live Textual app over the engine.

Threads and messages:

- a **collector** thread worker wakes every second (or at once when the engine
  reports something, a patrol's fresh scan included), asks the engine whether
  anything changed (:meth:`~gtcore.engine.Engine.changes`), reads a
  :class:`~gtui.tui.state.Snapshot`, builds the rows and posts them; the UI thread
  only diffs them into the tables;
- a **watcher** thread worker (watchfiles) reports edited plugin files and
  settings within a second;
- the **patrol** runs in a thread worker at start and on an interval, and on
  ``p``; every other action that writes (run, pause, acknowledge, close,
  digest) runs in a thread worker too.  The UI thread never waits on I/O or
  a child process.

The app speaks to the engine only through :class:`~gtcore.engine.Engine`'s
methods and the records of :mod:`gtcore.model`; the garbage-collector tuning
is the entry point's (:mod:`gtui.tui.gc_tuning`), reached by ``on_first_paint``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import get_current_worker

from gtcore.core.errors import GtError
from gtcore.core.events import DogChanged, Event, PatrolFinished, PluginSetChanged, RunClaimed, RunFinished
from gtcore.engine import Engine
from gtcore.model import FAILED, TYPE_CHECKING, Severity, clean, utc_day
from gtui.shims.bin import plugin_bin
from gtui.tui.components.bindings import bindings, key_display, keys_in_context
from gtui.tui.components.footer import GtuiFooter
from gtui.tui.components.header import PatrolState, TownHeader, header_text
from gtui.tui.components.layout import Panes
from gtui.tui.components.tables import Act, EscalationsPane, FeedPane, FilterInput, KeyedTable, PluginsPane
from gtui.tui.keys import PANES, check_keymap, effective
from gtui.tui.pane_actions import PaneActions
from gtui.tui.screens.help import HelpScreen
from gtui.tui.screens.modals import ConfirmScreen
from gtui.tui.state import (
    SEVERITY_RANK,
    CellPool,
    Collector,
    Row,
    Snapshot,
    colourless_rows,
    dog_rows,
    escalation_rows,
    feed_line,
    outcome_words,
    plugin_rows,
)
from gtui.tui.styles import colourless_text

if TYPE_CHECKING:
    from gtcore.model import Bead, PatrolReport, PluginSet, Town

WRITES = {"run", "force_run", "toggle_pause", "ack", "close", "digest", "patrol", "stop"}
MAIN_SCREEN_ONLY = {"patrol", "digest", "filter", "maximize", "focus_pane", "help"}
READ_ONLY = "read-only: this control room does not write (started with --read-only)"
TEXTUAL_COMMANDS_GTUI_HAS = {"Quit", "Maximize", "Minimize", "Screenshot"}  # the palette offers gtui's own of these
IDLE_REFRESH_SECONDS = 5.0
MAX_FAILURE_TOASTS = 3
SEVERITY_TOAST: dict[str, SeverityLevel] = {Severity.LOW: "information",
                                             Severity.MEDIUM: "warning", Severity.HIGH: "error", Severity.CRITICAL: "error"}


# -- messages ---------------------------------------------------------------------------------


class EngineReady(Message):
    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine


class EngineFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class SnapshotReady(Message):
    """A snapshot and its rows, built off the UI thread; each feed row comes with the run it shows."""

    def __init__(self, snapshot: Snapshot, rows: dict[str, dict[str, Row]], feed: list[tuple[str, Row, Bead]]) -> None:
        super().__init__()
        self.snapshot, self.rows, self.feed = snapshot, rows, feed


class PatrolDone(Message):
    def __init__(self, error: str | None = None, report: PatrolReport | None = None, asked: bool = False) -> None:
        super().__init__()
        self.error, self.report, self.asked = error, report, asked


class FilesChanged(Message):
    def __init__(self, settings: bool) -> None:
        super().__init__()
        self.settings = settings


class SettingsReloaded(Message):
    """gtui.toml was read again: ``error`` when it cannot be used (the last good settings stay in force)."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


def action_name(action: str) -> str:
    """``act('run')`` -> ``run``; ``patrol`` -> ``patrol``: the name WRITES and the read-only check speak of."""
    if action.startswith("act(") and action.endswith(")"):
        return action[4:-1].strip("'\"")
    return action.split("(", 1)[0]


class GtuiApp(PaneActions, App[None]):
    """The Gas Town control room."""

    CSS_PATH = "app.tcss"
    TITLE = "gtui"
    BINDINGS: ClassVar[list[BindingType]] = bindings("app")

    def __init__(
        self,
        town: Town,
        *,
        read_only: bool = False,
        kennel_argv: tuple[str, ...] | None = None,
        clock: Callable[[], float] = time.time,
        live: bool = True,
        engine: Engine | None = None,
        on_first_paint: Callable[[], object] | None = None,
    ) -> None:
        """``on_first_paint`` is called once, on the UI thread, when the first snapshot is on screen: start-up is over
        then, and what it made stays (the entry point freezes those objects out of the garbage collector's scans)."""
        super().__init__()
        self.town, self.read_only, self.clock, self.live = town, read_only, clock, live
        self.kennel_argv = kennel_argv  # how runs it queues start a kennel when none is alive (the gtui command's; see Engine)
        self.engine: Engine | None = engine
        self.collector: Collector | None = None
        self._cells = CellPool()  # the plugins pane's cells, equal ones shared from collect to collect (the collector's)
        self.snapshot: Snapshot | None = None
        self.patrol_state = PatrolState(paused_reason="read-only" if read_only else None if live else "not live")
        self._wake = threading.Event()
        self._unlisten: Callable[[], None] = lambda: None  # stops hearing the ledger's commits (set once the engine is ready)
        self._rescan = threading.Event()
        self._first_scan = threading.Event()  # set once the start-up patrol scanned the plugins (or no patrol comes)
        self._stop = threading.Event()
        self._engine_error: str | None = None
        self._seen_escalations: dict[str, str] | None = None
        self._seen_feed: set[str] = set()
        self._started_at = clock()  # runs that failed before the app started are in the feed, not toasted
        self._header: Text | None = None
        self._on_first_paint = on_first_paint
        self._settings_error: str | None = None  # gtui.toml cannot be used: a header line until it can
        self._keymap_problems: tuple[str, ...] = ()  # entries of [keymap] not applied: header lines until fixed
        self._patrol_timer: Timer | None = None
        self._patrol_done: tuple[float, float] | None = None  # when the last patrol ended: (time.monotonic(), self.clock())
        self._patrol_started = 0.0  # time.monotonic() when the running patrol began (its scan is no older)
        self._patrol_scan: tuple[PluginSet, float] | None = None  # the patrol's latest scan, and when its patrol began
        self.pane_actions: dict[tuple[str, str], Callable[[str], object]] = {
            ("plugins", "run"): self._plugins_run,
            ("plugins", "force_run"): self._plugins_force_run,
            ("plugins", "toggle_pause"): self._plugins_toggle_pause,
            ("plugins", "details"): self._plugins_details,
            ("plugins", "log"): self._plugins_log,
            ("dogs", "details"): self._feed_details,
            ("dogs", "log"): self._feed_log,
            ("dogs", "stop"): self._stop_run,
            ("feed", "details"): self._feed_details,
            ("feed", "log"): self._feed_log,
            ("feed", "stop"): self._stop_run,
            ("escalations", "ack"): self._escalations_ack,
            ("escalations", "close"): self._escalations_close,
            ("escalations", "details"): self._escalations_details,
        }  # (pane, action of its act() keys) -> what it does to the selected row's key

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TownHeader(id="header")
        yield Panes(id="panes")
        yield GtuiFooter()

    def on_mount(self) -> None:
        self.query_one(PluginsPane).focus()
        self._paint_header()
        self.start_engine()
        if self.live:
            self.set_interval(1.0, self._paint_header)
            self.set_interval(1.0, self._tick_elapsed)

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Toasts carry plugin names, subjects and reasons: never markup, never escape sequences."""
        super().notify(clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False)

    def pane(self, name: str) -> KeyedTable:
        return self.query_one(f"#{name}", KeyedTable)

    # -- engine start -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="engine")
    def start_engine(self) -> None:
        try:
            engine = self.engine or Engine(self.town, readonly=self.read_only, kennel_argv=self.kennel_argv,
                                           plugin_bin=None if self.read_only else partial(plugin_bin, self.town))
            if self.live and not self.read_only:
                engine.emit_event("startup", source="gtui")
        except GtError as exc:
            self.post_message(EngineFailed(str(exc)))
            return
        engine.subscribe(self._on_engine_event)
        self.post_message(EngineReady(engine))

    @on(EngineFailed)
    def _engine_failed(self, message: EngineFailed) -> None:
        self._engine_error = message.error
        self._paint_header()
        if self.live:
            self.set_timer(5.0, self.start_engine)

    @on(EngineReady)
    def _engine_ready(self, message: EngineReady) -> None:
        self.engine = message.engine
        self._engine_error = None
        self.collector = Collector(message.engine, self.clock)
        self._apply_keymap()
        self._wake.set()  # the first collect at once: waiting for the loop's 1 s timeout (or the patrol) delayed the first paint
        self._unlisten = message.engine.listen(self._wake.set)  # another host's commit wakes the collector at once (PostgreSQL)
        if not self.live or self.read_only:
            self._first_scan.set()  # no patrol comes: the collector scans
        self.collect_loop()
        if self.live:
            self.watch_files()
            if not self.read_only:
                self.start_patrol()

    def _apply_keymap(self) -> None:
        """The town's [keymap], checked: what passes is applied over the defaults (never merged onto an older keymap)."""
        keymap = self.engine.settings.keymap if self.engine is not None else {}
        applied, problems = check_keymap(keymap, self.engine.settings.path if self.engine is not None else None)
        self._keymap_problems = tuple(str(problem) for problem in problems)
        self.set_keymap(applied)  # replaces the keymap: a remap taken out of gtui.toml gives its key back
        self._paint_header()

    def effective_keys(self) -> dict[str, str]:
        """Every binding id and the keys it has now (the defaults, with the applied part of the keymap)."""
        return effective(self.engine.settings.keymap if self.engine is not None else {})

    def _on_engine_event(self, event: Event) -> None:
        """Called on a dog's or the patrol's thread: remember the patrol's scan, and wake the collector.

        A patrol's scan is shown as soon as it is made, not when the patrol
        ends (its condition checks may take their whole timeout): it finds
        plugins where the watcher does not look, such as a rig made since
        the control room started.
        """
        if isinstance(event, PluginSetChanged):
            self._patrol_scan = (event.plugins, self._patrol_started)
            self._first_scan.set()
        if isinstance(event, PluginSetChanged | RunClaimed | RunFinished | DogChanged | PatrolFinished):
            self._wake.set()

    def request_refresh(self, rescan: bool = False) -> None:
        if rescan:
            self._rescan.set()
        self._wake.set()

    # -- collector ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="collector")
    def collect_loop(self) -> None:
        """Collect when the ledger changed, the engine spoke, files changed, or every few seconds."""
        worker = get_current_worker()
        assert self.collector is not None and self.engine is not None
        last_version, last_full, adopted = None, float("-inf"), None
        # The start-up patrol reads every plugin file first thing: the first collect shows its scan rather than make a
        # second at the same time (two plugin sets, and two threads parsing, at start-up's peak).
        while not self._first_scan.wait(timeout=0.1):
            if worker.is_cancelled or self._stop.is_set():
                return
        while not worker.is_cancelled and not self._stop.is_set():
            woken = self._wake.wait(timeout=1.0)
            self._wake.clear()
            now = self.clock()
            rescan = self._rescan.is_set()
            try:
                version = self.engine.changes()
            except GtError:
                version = None
            if woken or rescan or version != last_version or time.monotonic() - last_full >= IDLE_REFRESH_SECONDS:
                self._rescan.clear()
                if rescan:
                    self._rescan_plugins()
                elif (scan := self._patrol_scan) is not None and scan[0] is not adopted:
                    adopted = scan[0]
                    if scan[1] > self.collector.scanned_at:  # a patrol's scan newer than the one shown: no second read of every file
                        self.collector.plugin_set, self.collector.scanned_at = scan
                    # else the watcher's rescan (of a file made while the patrol ran) is newer: the patrol's would hide it
                self._collect_once(now)
                last_version, last_full = version, time.monotonic()
            if not self.live:
                return

    def _rescan_plugins(self) -> None:
        assert self.collector is not None
        try:
            self.collector.rescan()
        except GtError:
            self.collector.plugin_set = None

    def _collect_once(self, now: float) -> None:
        assert self.collector is not None
        snapshot = self.collector.collect()
        rows = {
            "plugins": plugin_rows(snapshot, now, self._cells),
            "dogs": dog_rows(snapshot, now),
            "escalations": escalation_rows(snapshot, now),
        }
        self._cells.turn()
        feed = [(f"{key[0]}:{key[1]}", cells, run) for run, (key, cells) in zip(snapshot.feed, map(feed_line, snapshot.feed), strict=True)]
        if self.no_color:  # NO_COLOR: Textual greys colours by brightness, and red came out dim; the cells' marks and bold speak
            for table in rows.values():
                colourless_rows(table)
            colourless_rows({key: cells for key, cells, _ in feed})
        self.post_message(SnapshotReady(snapshot, rows, feed))

    @on(SnapshotReady)
    def _show_snapshot(self, message: SnapshotReady) -> None:
        if not self.is_running:  # shutting down: the collector's last post may find the panes already removed
            return
        previous, self.snapshot = self.snapshot, message.snapshot
        for name, rows in message.rows.items():
            self.pane(name).apply(rows)
        if previous is None and self._on_first_paint is not None:
            self._on_first_paint()
        new_feed = [(key, cells, run) for key, cells, run in message.feed if key not in self._seen_feed]
        self._seen_feed.update(key for key, _, _ in new_feed)
        self.query_one(FeedPane).append([(key, cells) for key, cells, _ in new_feed])
        self._toast_failures([run for _, _, run in new_feed if run.result in FAILED and run.updated_at >= self._started_at])
        self._toast_escalations(message.snapshot)
        self._paint_header()

    def _tick_elapsed(self) -> None:
        """Every second: the dogs pane's elapsed and waiting times, from the last snapshot (the diff touches only those cells)."""
        if self.snapshot is None or not self.snapshot.running or not self.is_running:
            return
        rows = dog_rows(self.snapshot, self.clock())
        self.pane("dogs").apply(colourless_rows(rows) if self.no_color else rows)

    def _toast_failures(self, failed: list[Bead]) -> None:
        """A toast per failed run since the app started; one summary toast when many fail at once."""
        if len(failed) > MAX_FAILURE_TOASTS:
            names = ", ".join(dict.fromkeys(run.plugin or "?" for run in failed))
            self.notify(f"{len(failed)} runs failed: {names}", title="Runs failed", severity="error")
            return
        for run in failed:
            self.notify(f"{run.plugin} {run.ref}: {outcome_words(run)}", title="Run failed", severity="error")

    def _toast_escalations(self, snapshot: Snapshot) -> None:
        """Loud when a person is needed: new and climbing escalations, and a bell for critical ones; the queue shows
        its top when it first has rows, and when one arrives as bad as the worst there was (worst first: it is up there)."""
        severities = {item.ref: item.severity for item in snapshot.escalations}
        seen = self._seen_escalations
        arrived = [item for item in snapshot.escalations if seen is not None and seen.get(item.ref) != item.severity]
        for item in arrived:
            before = seen.get(item.ref) if seen is not None else None
            title = "Escalation raised" if before is None else f"Re-escalated {before} → {item.severity}"
            self.notify(f"{item.ref} {item.subject}", title=title, severity=SEVERITY_TOAST[item.severity])
            if item.severity == Severity.CRITICAL:
                self.bell()
        worst_before = max((SEVERITY_RANK[severity] for severity in (seen or {}).values()), default=-1)
        if (not seen and severities) or any(SEVERITY_RANK[item.severity] >= worst_before for item in arrived):
            self.query_one(EscalationsPane).show_worst()
        self._seen_escalations = severities

    def _paint_header(self) -> None:
        if not self.is_running:  # shutting down (see _show_snapshot)
            return
        errors = dict(self.snapshot.errors) if self.snapshot else {}
        if self._engine_error:
            errors["engine"] = self._engine_error
        if self._settings_error:
            errors["settings"] = f"{self._settings_error} (the last good settings stay in force)"
        escalations = self.snapshot.escalations if self.snapshot else ()
        settings_problems = tuple(str(problem) for problem in self.engine.settings.problems) if self.engine else ()
        notices = (*(self.snapshot.notices if self.snapshot else ()), *self._keymap_problems, *settings_problems)
        text = header_text(self.town.root.name, self.patrol_state, escalations, errors, self.clock(), notices)
        if self.no_color:
            colourless_text(text)
        if text == self._header:
            return
        # A relayout repaints every pane (~50 ms with 1,000 plugins): only lines of another width may change the height.
        resized = self._header is None or _line_widths(text) != _line_widths(self._header)
        self._header = text
        self.query_one(TownHeader).update(text, layout=resized)

    # -- watcher ------------------------------------------------------------------------------

    def watched_paths(self) -> list[Path]:
        paths = [self.town.settings_dir, self.town.root / "mayor"]
        with contextlib.suppress(GtError):
            paths += self.engine.plugin_directories() if self.engine is not None else []
        return [path for path in dict.fromkeys(paths) if path.is_dir()]

    @work(thread=True, exclusive=True, group="watcher")
    def watch_files(self) -> None:
        """Report plugin and settings edits within a second (watchfiles, debounced 200 ms)."""
        from watchfiles import watch

        paths = self.watched_paths()
        if not paths:
            return
        settings_dir = str(self.town.settings_dir)
        for changes in watch(*paths, stop_event=self._stop, debounce=200, step=50, raise_interrupt=False):
            self.post_message(FilesChanged(any(path.startswith(settings_dir) for _, path in changes)))

    @on(FilesChanged)
    def _files_changed(self, message: FilesChanged) -> None:
        if message.settings and self.engine is not None:
            self.reload_settings()
        self.request_refresh(rescan=True)

    @work(thread=True, exclusive=True, group="settings")
    def reload_settings(self) -> None:
        assert self.engine is not None
        try:
            self.engine.reload_settings()
        except GtError as exc:
            self.post_message(SettingsReloaded(str(exc)))
            return
        self.post_message(SettingsReloaded(None))

    @on(SettingsReloaded)
    def _settings_reloaded(self, message: SettingsReloaded) -> None:
        """A broken gtui.toml is a header line until it is fixed; fixed, its keymap and patrol interval apply at once."""
        self._settings_error = message.error
        if message.error is None:
            self._apply_keymap()
            self._reschedule_patrol()
        self._paint_header()

    # -- actions on panes ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Writing actions are disabled in read-only mode; the main screen's keys are hidden on other screens."""
        name = str(parameters[0]) if action == "act" and parameters else action
        if action in MAIN_SCREEN_ONLY and len(self.screen_stack) > 1:
            return False
        if self.read_only and name in WRITES:
            return None
        return True

    def on_key(self, event: events.Key) -> None:
        """A writing key pressed in read-only mode is disabled (the footer shows it dim), and says why."""
        if not self.read_only:
            return
        active = self.screen.active_bindings.get(event.key)
        if active is not None and not active.enabled and action_name(active.binding.action) in WRITES:
            self.notify(READ_ONLY, title="Not done", severity="warning")

    @property
    def escape_to_minimize(self) -> bool:
        """escape leaves a maximized pane, unless it clears a filter first (in the filter line or the table)."""
        focused = self.focused
        if isinstance(focused, FilterInput) or (isinstance(focused, KeyedTable) and focused.filter_text):
            return False
        return super().escape_to_minimize

    @on(Act)
    def _pane_action(self, message: Act) -> None:
        if self.read_only and message.action in WRITES:
            self.notify(READ_ONLY, title="Not done", severity="warning")
            return
        if self.engine is None:
            self.notify("the engine is not running yet", severity="warning")
            return
        if message.key is None:
            return
        handler = self.pane_actions.get((message.pane, message.action))
        if handler is not None:
            handler(message.key)

    # -- global actions -----------------------------------------------------------------------

    def action_patrol(self) -> None:
        """``p``: patrol now, and say what it did."""
        if self.read_only:
            self.notify(READ_ONLY, title="Not done", severity="warning")
            return
        if self.engine is None:
            self.notify("the engine is not running yet", severity="warning")
            return
        if self.patrol_state.running:
            self.notify("a patrol is running already", title="Patrol")
            return
        self.start_patrol(asked=True)

    def start_patrol(self, asked: bool = False) -> None:
        if self.engine is None or self.read_only or self.patrol_state.running:
            return
        if self._patrol_timer is not None:
            self._patrol_timer.stop()
            self._patrol_timer = None
        self.patrol_state = PatrolState(running=True)
        self._paint_header()
        self.patrol(asked)

    @work(thread=True, exclusive=True, group="patrol")
    def patrol(self, asked: bool) -> None:
        assert self.engine is not None
        self._patrol_started = time.monotonic()
        try:
            report, error = self.engine.patrol_once(now=self.clock()), None
        except GtError as exc:
            report, error = None, str(exc)
        finally:
            self._first_scan.set()  # a patrol that failed before its scan: the collector scans for itself
        self.post_message(PatrolDone(error, report, asked))

    @on(PatrolDone)
    def _patrol_finished(self, message: PatrolDone) -> None:
        self._patrol_done = (time.monotonic(), self.clock())
        # Not live, no interval patrol follows; and paint now: without a live collector or header timer
        # the header would say "running" for good.
        self.patrol_state = PatrolState() if self.live else PatrolState(paused_reason="not live")
        self._reschedule_patrol()
        self._paint_header()
        if message.error:
            self.notify(message.error, title="Patrol failed", severity="error")
        elif message.asked and message.report is not None:
            self.notify(patrol_words(message.report), title="Patrol")
        self.request_refresh()

    def _reschedule_patrol(self) -> None:
        """The next patrol is due one interval after the last ended: (re)arm its timer for the interval in force now."""
        if not self.live or self.read_only or self.engine is None or self._patrol_done is None or self.patrol_state.running:
            return
        if self._patrol_timer is not None:
            self._patrol_timer.stop()
        interval = self.engine.settings.patrol_interval.seconds
        done_monotonic, done_clock = self._patrol_done
        delay = max(0.0, done_monotonic + interval - time.monotonic())
        self._patrol_timer = self.set_timer(delay, self.start_patrol, name="patrol")
        self.patrol_state = PatrolState(next_at=done_clock + interval)
        self._paint_header()

    def action_digest(self) -> None:
        if self.engine is None:
            return
        day = utc_day(self.clock()) - timedelta(days=1)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.digest(day)

        self.push_screen(ConfirmScreen(f"Make the digest of {day.isoformat()}?",
                                       "That day's finished runs of digest plugins are squashed into one bead; "
                                       "their wisps and logs are deleted.", yes="Digest"), confirmed)

    @work(thread=True, group="actions")
    def digest(self, day: Any) -> None:
        assert self.engine is not None
        try:
            result = self.engine.make_digest(day, now=self.clock())
        except GtError as exc:
            self.call_from_thread(self.notify, str(exc), title="No digest", severity="error")
            return
        if result.squashed and result.digest is not None:
            words = f"{result.squashed} run{'s' if result.squashed != 1 else ''} of {day.isoformat()} squashed into {result.digest.ref}"
        else:
            words = f"nothing to digest for {day.isoformat()}"
        self.call_from_thread(self.notify, words, title=f"Digest {day.isoformat()}")
        self.request_refresh()

    def action_filter(self) -> None:
        """``/``: the filter line at the bottom of the focused pane (the plugins pane when none is)."""
        focused = self.focused
        if isinstance(focused, FilterInput):
            return
        table = focused if isinstance(focused, KeyedTable) else self.query_one(PluginsPane)
        box = table.box
        if box is not None:
            box.open_filter()

    def action_focus_pane(self, name: str) -> None:
        self.pane(name).focus()

    def action_maximize(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        elif self.focused is not None:
            self.screen.maximize(self.focused)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.engine.settings.keymap if self.engine else {}))

    async def action_quit(self) -> None:
        """Textual's own ``ctrl+q`` quits too, like ``q``."""
        self.action_quit_app()

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """``ctrl+s``: the screen as SVG, drawn here (only the UI thread may), written by a worker, and said where."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.clock()))
        self.save_screenshot_file(self.export_screenshot(), filename or f"gtui-{stamp}.svg", path)

    @work(thread=True, group="actions")
    def save_screenshot_file(self, svg: str, name: str, path: str | None = None) -> None:
        """Into the town's ``.gtui/`` (or ``path``), else the working directory when that cannot be written."""
        failures: list[str] = []
        for directory in screenshot_directories(self.town, path):
            target = directory / name
            try:
                target.write_text(svg, encoding="utf-8")
            except OSError as exc:
                failures.append(f"{directory}: {exc.strerror or exc}")
                continue
            self.call_from_thread(self.notify, f"saved in {target}", title="Screenshot")
            return
        self.call_from_thread(self.notify, "not saved: " + "; ".join(failures), title="Screenshot", severity="error")

    def action_quit_app(self) -> None:
        """Quit at once: the runs in flight are the kennel's, and go on."""
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette offers every action of the app and of every pane, each once, with its key."""
        for command in super().get_system_commands(screen):
            if command.title not in TEXTUAL_COMMANDS_GTUI_HAS:
                yield command
        if screen is not self.screen_stack[0]:  # a details or log screen: the main screen's actions are not there
            return
        keys = self.effective_keys()
        for key in keys_in_context("app"):
            title = f"Go to {key.description}" if key.id.startswith("focus.") else key.description
            yield SystemCommand(title, f"key {key_display(keys[key.id])}", partial(self._run_from_palette, key.action, None))
        for pane in PANES:
            for key in keys_in_context(pane):
                yield SystemCommand(f"{pane}: {key.description}", f"key {key_display(keys[key.id])} on the selected row",
                                    partial(self._run_from_palette, key.action, pane))

    def _run_from_palette(self, action: str, pane: str | None) -> None:
        """Run a palette command: a pane's on its selected row (the pane is focused first); a write says why not in read-only."""
        if self.read_only and action_name(action) in WRITES:
            self.notify(READ_ONLY, title="Not done", severity="warning")
            return
        target: Any = self
        if pane is not None:
            target = self.pane(pane)
            target.focus()
        self.call_later(target.run_action, action)

    def on_unmount(self) -> None:
        self._stop.set()
        self._wake.set()
        self._unlisten()
        if self.engine is not None:
            self.engine.close()  # the runs it queued are the kennel's: they go on, and are recorded there


def screenshot_directories(town: Town, path: str | None) -> list[Path]:
    """Where a screenshot goes, in order of preference: ``path`` when asked, the town's ``.gtui/``, the working directory."""
    preferred = [Path(path)] if path else [town.state_dir]
    return [directory for directory in (*preferred, Path.cwd()) if directory.is_dir()]


def _line_widths(text: Text) -> list[int]:
    return [cell_len(line) for line in text.plain.split("\n")]


def patrol_words(report: PatrolReport) -> str:
    """What a patrol asked for with ``p`` did, in a line: what it handed to the dogs, or that there was nothing to do."""
    dispatched = [item.plugin.name for item in report.plugins if item.dispatched]
    waiting = [item.plugin.name for item in report.plugins if item.decision.open and not item.dispatched]
    if dispatched:
        return f"handed {', '.join(dispatched)} to the dogs" + (f"; {', '.join(waiting)} already queued or running" if waiting else "")
    if waiting:
        return f"nothing new to run: {', '.join(waiting)} already queued or running"
    return "nothing to do: no gate is open"
