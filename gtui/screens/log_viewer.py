"""The run log viewer: the log of one run, followed live while it runs.

A thread worker tails the file (the UI never reads files) and posts lines in
batches.  The widget keeps at most ``MAX_LINES``: a run that floods output
cannot flood memory here either.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Footer, Log, Static
from textual.worker import get_current_worker

from gtcore.errors import GtError
from gtcore.model import TYPE_CHECKING
from gtui.components.bindings import bindings
from gtui.safety import clean
from gtui.screens.details import relative, run_facts

if TYPE_CHECKING:
    from gtcore.engine import Engine
    from gtcore.model import Bead

MAX_LINES = 5000
POLL_SECONDS = 0.25


class LogScreen(Screen[None]):
    """Shows ``<town>/.gtui/runs/<run>.log``; follows it until the run ends."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("log")

    def __init__(self, engine: Engine, run: Bead) -> None:
        super().__init__()
        self.engine, self.run = engine, run
        self.path = engine.log_path(run)

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((f" {self.run.plugin} {self.run.ref} ", "bold reverse"), " ", (clean(self.shown_path()), "dim")),
                     id="log-title")
        yield Log(max_lines=MAX_LINES, id="log-lines", auto_scroll=True)
        yield Static(Text("", style="dim"), id="log-state")
        yield Footer()

    def shown_path(self) -> str:
        """The log's path relative to the town, as the details screen shows files: short, and the same on every machine."""
        return relative(self.path, str(self.engine.town.root))

    def on_mount(self) -> None:
        self.follow()

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
            self.app.call_from_thread(self._show, lines, reset, running, size)
            if not running and size == position:
                return
            time.sleep(POLL_SECONDS)

    def _show(self, lines: list[str], reset: bool, running: bool, size: int) -> None:
        log = self.query_one(Log)
        if reset:
            log.clear()
        if lines:
            log.write_lines(lines)
        if running:
            state = Text.assemble(("following ", "bold"), "(run in flight) ", (run_facts(self.run, time.time()).plain, "dim"))
        elif size < 0:
            state = Text("no log file", style="dim")
        else:
            state = run_facts(self.run, time.time())
        self.query_one("#log-state", Static).update(state)

    def _still_running(self) -> bool:
        try:
            self.run = self.engine.run(self.run.id)
        except GtError:
            return False
        return self.run.status == "running"
