"""The footer: Textual's, with help and quit first so a narrow terminal cuts other keys, never those two."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer

from gtui.tui.components.bindings import FOOTER_FIRST
from gtui.tui.keys import BY_ID, KEYS, PANES

FIRST_ACTIONS = tuple(BY_ID[key_id].action for key_id in FOOTER_FIRST)


def _place(action: str) -> tuple[int, int, int]:
    """Help and quit first; then a pane's keys, then the app's; each in the order of the key table (a remapped key keeps its place)."""
    if action in FIRST_ACTIONS:
        return (FIRST_ACTIONS.index(action), 0, 0)
    found = [(index, key) for index, key in enumerate(KEYS) if key.action == action]
    in_pane = any(key.context in PANES for _, key in found)
    return (len(FIRST_ACTIONS), 0 if in_pane else 1, min((index for index, _ in found), default=len(KEYS)))


class GtuiFooter(Footer):
    """A Footer whose keys of :data:`FOOTER_FIRST` lead (a footer too long for the terminal is cut on the right)."""

    def compose(self) -> ComposeResult:
        keys = list(super().compose())  # FooterKeys only: no binding of gtui is in a group
        yield from sorted(keys, key=lambda widget: _place(str(getattr(widget, "action", ""))))
