"""The help screen: every key of :data:`gtui.tui.keys.KEYS`, by where it works, with the keys in effect and its binding id.

The keys shown are the ones in effect: the defaults, with what the town's
``[keymap]`` remaps (only the entries :func:`gtui.tui.keys.check_keymap` lets
through).  Binding ids are shown in full at any width: on a narrow screen the
groups stack in one column and the descriptions wrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Grid
from textual.screen import ModalScreen
from textual.widgets import Static

from gtui.tui.components.bindings import bindings, key_display, keys_in_context
from gtui.tui.components.scrolling import KeyScroll, ScrollKeys
from gtui.tui.keys import KEYS, PANES, effective

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Everywhere", ("app",)),
    ("In every pane", ("table",)),
    *((pane.capitalize(), (pane,)) for pane in PANES),
    ("Plugin details", ("details",)),
    ("Escalation details", ("escalation",)),
    ("Run log", ("log",)),
    ("Scrolling the log, help and details", ("scroll",)),
    ("Dialogs and help", ("confirm", "ask", "help")),
)
EXTRA: dict[str, list[tuple[str, str]]] = {  # keys that are not bindings of gtui (Textual's own): no id, not remapped
    "Everywhere": [("tab", "Next pane"), ("ctrl+p", "Every action, by name")],
    "In every pane": [("⏎", "In the filter line: keep the filter")],
}
ID_WIDTH = max(len(key.id) for key in KEYS)
TWO_COLUMNS_FROM = 140  # screen columns: narrower, the groups stack


def keys_table(title: str, contexts: tuple[str, ...], keys: dict[str, str], extra: Sequence[tuple[str, str]] = ()) -> Table:
    """One group: what to press, what it does (wrapped when narrow), the binding id to remap it (never cut)."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE, show_header=False, padding=(0, 1),
                  expand=True)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    table.add_column(style="dim", no_wrap=True, min_width=ID_WIDTH)
    for context in contexts:
        for key in keys_in_context(context):
            table.add_row(Text(key_display(keys[key.id])), Text(key.description), Text(key.id))
    for pressed, description in extra:
        table.add_row(Text(pressed), Text(description), Text(""))
    return table


class HelpScreen(ScrollKeys, ModalScreen[None]):
    """A modal listing the keys; any of escape, q or ? closes it, the panes' moving keys scroll it."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("help", "scroll")

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.keys = effective(keymap)

    def compose(self) -> ComposeResult:
        with KeyScroll(classes="dialog help"):
            yield Static(Text("gtui keys", style="bold"))
            with Grid(classes="help-grid"):
                for title, contexts in GROUPS:
                    yield Static(keys_table(title, contexts, self.keys, EXTRA.get(title, [])))
            yield Static(Text("Remap any key in <town>/settings/gtui.toml under [keymap]: binding id = \"keys\".", style="dim"))

    def on_mount(self) -> None:
        self._columns(self.app.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._columns(event.size.width)

    def _columns(self, width: int) -> None:
        self.query_one(".help-grid", Grid).styles.grid_size_columns = 2 if width >= TWO_COLUMNS_FROM else 1
