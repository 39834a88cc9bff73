"""The panes' moving keys on the screens that scroll (log, help, details): one habit everywhere.

``j``/``k``, ``g``/``G``, ``ctrl+d``/``ctrl+u`` and the arrows (context ``scroll``
of :mod:`gtui.tui.keys`) move a pane's cursor; on a screen that shows one long
thing they scroll it the same way, so a hand that learnt the panes never has
to ask which screen it is on.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widget import Widget


class KeyScroll(VerticalScroll, inherit_bindings=False):
    """A VerticalScroll without keys of its own: its screen's ``scroll`` keys move it, as they move every pane
    (its own ``pagedown`` was a whole page where the panes' is half of one)."""


class ScrollKeys:
    """Actions of the ``scroll`` keys, for a screen mixing this in before its ``Screen`` base."""

    def scroll_target(self) -> Widget:
        """The widget the keys scroll: the screen's :class:`KeyScroll` (the log viewer names its log instead)."""
        return self.query_one(KeyScroll)  # type: ignore[attr-defined]  # a Screen's

    def _half_page(self) -> int:
        return max(1, self.scroll_target().scrollable_content_region.height // 2)

    def action_line_down(self) -> None:
        self.scroll_target().scroll_relative(y=1, animate=False, immediate=True)

    def action_line_up(self) -> None:
        self.scroll_target().scroll_relative(y=-1, animate=False, immediate=True)

    def action_column_left(self) -> None:
        self.scroll_target().scroll_relative(x=-1, animate=False, immediate=True)

    def action_column_right(self) -> None:
        self.scroll_target().scroll_relative(x=1, animate=False, immediate=True)

    def action_to_top(self) -> None:
        self.scroll_target().scroll_home(animate=False, immediate=True, x_axis=False)

    def action_to_bottom(self) -> None:
        self.scroll_target().scroll_end(animate=False, immediate=True, x_axis=False)

    def action_half_page_down(self) -> None:
        self.scroll_target().scroll_relative(y=self._half_page(), animate=False, immediate=True)

    def action_half_page_up(self) -> None:
        self.scroll_target().scroll_relative(y=-self._half_page(), animate=False, immediate=True)
