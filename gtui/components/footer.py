"""The footer: Textual's, with help and quit first so a narrow terminal cuts other keys, never those two."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer

from gtui.components.bindings import FOOTER_FIRST
from gtui.keys import BY_ID

FIRST_ACTIONS = tuple(BY_ID[key_id].action for key_id in FOOTER_FIRST)


class GtuiFooter(Footer):
    """A Footer whose keys of :data:`FOOTER_FIRST` lead (a footer too long for the terminal is cut on the right)."""

    def compose(self) -> ComposeResult:
        keys = list(super().compose())  # FooterKeys only: no binding of gtui is in a group

        def place(widget: object) -> int:
            action = getattr(widget, "action", None)
            return FIRST_ACTIONS.index(action) if action in FIRST_ACTIONS else len(FIRST_ACTIONS)

        yield from sorted(keys, key=place)
