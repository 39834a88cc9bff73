"""The run log viewer: the log of one run, followed live while it runs, searched with ``/``, wrapped with ``w``.

A thread worker tails the file (the UI never reads files) and posts lines in
batches.  The widget keeps at most ``MAX_LINES``: a run that floods output
cannot flood memory here either.  A run with no log file says why, in the
engine's words (:meth:`~gtcore.engine.Engine.run_log`: never started, ran on
another host, file removed), or shows the ledger's copy of another host's log.

The panes' moving keys scroll it (:mod:`gtui.tui.components.scrolling`); ``/``
opens a search line at the bottom, ``n``/``N`` go to the next and previous
line holding it (round the end), and escape clears a search before it leaves.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from gtcore.core.errors import GtError
from gtcore.model import TYPE_CHECKING, clean
from gtui.tui.components.bindings import bindings
from gtui.tui.components.log_lines import LogLines
from gtui.tui.components.scrolling import ScrollKeys
from gtui.tui.screens.details import relative, run_facts

if TYPE_CHECKING:
    from gtcore.engine import Engine
    from gtcore.model import Bead

MAX_LINES = 5000
POLL_SECONDS = 0.25


class LogScreen(ScrollKeys, Screen[None]):
    """Shows ``<town>/.gtui/runs/<run>.log``; follows it until the run ends."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("log", "scroll")
    DEFAULT_CSS = """
    #log-search { dock: bottom; display: none; height: 1; border: none; background: $boost; }
    """

    def __init__(self, engine: Engine, run: Bead) -> None:
        super().__init__()
        self.engine, self.run = engine, run
        self.path = engine.log_path(run)
        self.facts = Text("")  # the run's line (or why it has no log), before what the search and wrap say
        self.found = ""  # what the search says: "match 2/7 for 'refused'", "no match for 'x'"

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((f" {self.run.plugin} {self.run.ref} ", "bold reverse"), " ", (clean(self.shown_path()), "dim")),
                     id="log-title")
        yield LogLines(MAX_LINES, id="log-lines")
        yield Input(placeholder="search the log (enter keeps it, escape clears it)", compact=True, id="log-search")
        yield Static(Text("", style="dim"), id="log-state")
        yield Footer()

    @property
    def log_lines(self) -> LogLines:
        return self.query_one(LogLines)

    def scroll_target(self) -> Widget:
        return self.log_lines

    def shown_path(self) -> str:
        """The log's path relative to the town, as the details screen shows files: short, and the same on every machine."""
        return relative(self.path, str(self.engine.town.root))

    def on_mount(self) -> None:
        self.log_lines.focus()
        self.follow()

    # -- reading ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True)
    def follow(self) -> None:
        """Read what is there, then what arrives, until the run is closed and read to the end."""
        worker = get_current_worker()
        position, partial = 0, b""
        while not worker.is_cancelled:
            try:
                size = os.path.getsize(self.path)
            except OSError:
                size = -1
            reset = 0 <= size < position  # the log was trimmed to its tail: start over
            if reset:
                position, partial = 0, b""
            lines: list[str] = []
            if size > position:
                with open(self.path, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read(size - position)
                position += len(chunk)
                raw = (partial + chunk).split(b"\n")
                partial = raw.pop()
                lines = [clean(line.decode("utf-8", "replace")) for line in raw]
            running = self._still_running()
            if not running and size == position and partial:
                lines.append(clean(partial.decode("utf-8", "replace")))
                partial = b""
            if size < 0 and not running:
                self._no_file()
                return
            self.app.call_from_thread(self._show, lines, reset, running)
            if not running and size == position:
                return
            time.sleep(POLL_SECONDS)

    def _no_file(self) -> None:
        """No log file here and the run is over: the ledger's copy (another host's run), else the engine's words on why."""
        try:
            kept = self.engine.run_log(self.run)
        except GtError as exc:
            self.app.call_from_thread(self._say_no_log, str(exc))
            return
        self.app.call_from_thread(self._show, [clean(line) for line in kept.splitlines()], False, False)

    def _show(self, lines: list[str], reset: bool, running: bool) -> None:
        log = self.log_lines
        if reset:
            log.clear()
        log.write_lines(lines)
        if lines and log.needle:
            self._say_found()
        if running:
            self.facts = Text.assemble(("following ", "bold"), "(run in flight) ", (run_facts(self.run, time.time()).plain, "dim"))
        else:
            self.facts = run_facts(self.run, time.time())
        self._paint_state()

    def _say_no_log(self, why: str) -> None:
        """Where the log would be, why there is none (in the engine's words, as ``gtui plugin log`` says it)."""
        self.log_lines.set_wrap(True)  # words to read whole, not a log to scroll sideways
        self.log_lines.write_lines([clean(why)])
        self.facts = run_facts(self.run, time.time())
        self._paint_state()

    def _still_running(self) -> bool:
        try:
            self.run = self.engine.run(self.run.id)
        except GtError:
            return False
        return self.run.status == "running"

    def _paint_state(self) -> None:
        """The search's and the wrap's word first (a narrow screen cuts the line's end), then the run's facts."""
        notes = [part for part in (self.found, "wrapped" if self.log_lines.wrap else "") if part]
        state = Text(" · ".join(notes) + "   ", "bold yellow") if notes else Text()
        state.append_text(self.facts)
        self.query_one("#log-state", Static).update(state)

    # -- search and wrap ----------------------------------------------------------------------

    def action_search(self) -> None:
        field = self.query_one("#log-search", Input)
        field.value = self.log_lines.needle
        field.display = True
        field.cursor_blink = False
        field.focus()

    @on(Input.Changed, "#log-search")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.log_lines.search(event.value)
        self._say_found()

    @on(Input.Submitted, "#log-search")
    def _kept(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_search()
        if self.log_lines.needle:
            self.action_next_match()

    def clear_search(self) -> None:
        self.log_lines.search("")
        self._say_found()
        self._close_search()

    def _close_search(self) -> None:
        field = self.query_one("#log-search", Input)
        field.display = False
        self.log_lines.focus()

    def action_next_match(self) -> None:
        self.log_lines.jump(1)
        self._say_found()

    def action_previous_match(self) -> None:
        self.log_lines.jump(-1)
        self._say_found()

    def _say_found(self) -> None:
        log = self.log_lines
        if not log.needle:
            self.found = ""
        elif not log.matches:
            self.found = f"no match for {log.needle!r}"
        elif log.current is None:
            self.found = f"{len(log.matches)} lines match {log.needle!r} (n: next, N: previous)"
        else:
            self.found = f"match {log.current + 1}/{len(log.matches)} for {log.needle!r}"
        self._paint_state()

    def action_toggle_wrap(self) -> None:
        self.log_lines.set_wrap(not self.log_lines.wrap)
        self._paint_state()

    def action_back(self) -> None:
        """Escape or q: a search (or the search line) is cleared first, then the viewer closes."""
        if self.log_lines.needle or self.query_one("#log-search", Input).display:
            self.clear_search()
            return
        self.app.pop_screen()
