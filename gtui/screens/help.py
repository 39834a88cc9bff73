"""The help screen: every key, by pane, as remapped by the town's keymap."""

from __future__ import annotations

from typing import ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static


def key_display(binding: Binding, keymap: dict[str, str]) -> str:
    """The keys as the footer writes them (``?``, ``/``, not ``question_mark``), after the town's keymap."""
    keys = keymap.get(binding.id or "", binding.key)
    return ", ".join(format_key(key.strip()) for key in keys.split(","))


MOVING = [("1 2 3 4", "Plugins, Dogs, Feed, Escalations", "focus.*"), ("tab", "Next pane", ""),
          ("ctrl+p", "Every action, by name", "")]
DIALOGS = [("y", "Yes", "confirm.yes"), ("n, esc", "No", "confirm.no"), ("⏎", "Confirm a reason or filter", ""),
           ("esc, q", "Back from details and logs", "details.back")]


def keys_table(title: str, bindings: list[Binding], keymap: dict[str, str], extra: list[tuple[str, str, str]] = ()) -> Table:
    """One group of keys: what to press, what it does, the binding id to remap it."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE, show_header=False, padding=(0, 1))
    table.add_column(style="bold cyan", min_width=8)
    table.add_column()
    table.add_column(style="dim")
    for binding in bindings:
        table.add_row(Text(key_display(binding, keymap)), Text(binding.description), Text(binding.id or ""))
    for keys, description, binding_id in extra:
        table.add_row(Text(keys), Text(description), Text(binding_id))
    return table


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "app.pop_screen", "Close", id="help.close")]

    def __init__(self, groups: list[tuple[str, list[Binding]]], keymap: dict[str, str]) -> None:
        super().__init__()
        self.groups, self.keymap = groups, keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(Text("gtui keys", style="bold"))
            with Grid(classes="help-grid"):
                (title, everywhere), *panes = self.groups
                shown = [binding for binding in everywhere if not (binding.id or "").startswith("focus.")]
                yield Static(keys_table(title, shown, self.keymap, MOVING))
                for pane_title, bindings in panes:
                    yield Static(keys_table(pane_title, bindings, self.keymap))
                yield Static(keys_table("Dialogs and screens", [], self.keymap, DIALOGS))
            yield Static(Text("Remap any key in <town>/settings/gtui.toml under [keymap]: binding id = \"keys\".", style="dim"))
