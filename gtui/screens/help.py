"""The help screen: every key, by pane, as remapped by the town's keymap."""

from __future__ import annotations

from typing import ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static


def key_display(binding: Binding, keymap: dict[str, str]) -> str:
    """The keys as the footer writes them (``?``, ``/``, not ``question_mark``), after the town's keymap."""
    keys = keymap.get(binding.id or "", binding.key)
    return ", ".join(format_key(key.strip()) for key in keys.split(","))


def keys_table(title: str, bindings: list[Binding], keymap: dict[str, str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE, show_header=False)
    table.add_column(style="bold cyan", min_width=10)
    table.add_column()
    table.add_column(style="dim")
    for binding in bindings:
        table.add_row(Text(key_display(binding, keymap)), Text(binding.description), Text(binding.id or ""))
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
            for title, bindings in self.groups:
                yield Static(keys_table(title, bindings, self.keymap))
            yield Static(Text("Remap any key in <town>/settings/gtui.toml under [keymap]: binding id = \"keys\". "
                              "ctrl+p opens the command palette with every action.", style="dim"))
