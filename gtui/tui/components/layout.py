"""How the four panes share the screen: by what they hold, not by fixed fractions.

Plugins across the top, escalations and dogs side by side, the feed across the
bottom.  Each pane gets the height its rows need, up to a share of the screen
(:data:`SHARES`); what is left goes to whoever still has rows to show, and the
feed takes the rest.  The dogs pane is as wide as its columns want (up to
:data:`DOGS_WIDTH_SHARE` of the screen), the escalations the rest of the row.
A maximized pane fills the screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from gtui.tui.components.tables import DogsPane, EscalationsPane, FeedPane, KeyedTable, PaneBox, PluginsPane

CHROME = 3  # a pane's border (2) and its column labels (1)
FLOOR = CHROME + 1  # the least a pane gets: one row
FEED_ROWS = 4  # the feed keeps four rows at any size: the newest runs are what a glance is for
SHARES = (0.5, 0.3, 0.2)  # plugins, the escalations-and-dogs row, feed: what each may take before the others have theirs
FLOORS = (FLOOR, FLOOR, CHROME + FEED_ROWS)
DOGS_WIDTH_SHARE = 0.45
DOGS_MIN_WIDTH = 24


def share_heights(total: int, needs: Sequence[int], shares: Sequence[float] = SHARES, floors: Sequence[int] = FLOORS) -> list[int]:
    """Heights for stacked panes that need ``needs`` lines, summing to ``total`` (the last takes what is left).

    Each first gets up to its share of ``total`` (at least its floor, never more than
    it needs; the last always its floor); what remains goes to those that need more,
    in order; the last pane gets the rest.  When that leaves the last below its floor,
    the others give way (the one with most above its own floor first); when even the
    floors do not fit, the first panes give way.
    """
    heights = [min(need, max(floor, int(total * share))) for need, share, floor in zip(needs, shares, floors, strict=True)]
    heights[-1] = max(heights[-1], floors[-1])
    spare = total - sum(heights)
    for index, need in enumerate(needs):
        if spare <= 0:
            break
        grow = min(spare, need - heights[index])
        if grow > 0:
            heights[index] += grow
            spare -= grow
    heights[-1] += max(0, spare)
    while sum(heights) > total:
        over = [index for index in range(len(heights) - 1) if heights[index] > floors[index]]
        if not over:
            break
        giver = max(over, key=lambda index: heights[index] - floors[index])
        heights[giver] -= 1
    index = 0
    while sum(heights) > total and index < len(heights):  # a very small terminal
        heights[index] = max(1, heights[index] - (sum(heights) - total))
        index += 1
    return heights


class Panes(Vertical):
    """The main screen's panes, fitted to the screen whenever it or what they hold changes."""

    def compose(self) -> ComposeResult:
        yield PaneBox(PluginsPane())
        with Horizontal(id="middle"):
            yield PaneBox(EscalationsPane())
            yield PaneBox(DogsPane())
        yield PaneBox(FeedPane())

    def on_mount(self) -> None:
        self.watch(self.screen, "maximized", lambda _: self.fit(), init=False)

    def on_resize(self) -> None:
        self.fit()

    def on_keyed_table_content_changed(self, message: KeyedTable.ContentChanged) -> None:
        message.stop()
        self.fit()

    def fit(self) -> None:
        if not self.is_mounted:
            return
        plugins, escalations, dogs, feed = (self.query_one(f"#{name}-pane", PaneBox) for name in ("plugins", "escalations", "dogs", "feed"))
        middle = self.query_one("#middle", Horizontal)
        maximized = self.screen.maximized
        if maximized is not None:
            for box in (plugins, escalations, dogs, feed):
                if box is maximized:
                    box.styles.height, box.styles.width = "1fr", "1fr"
            return

        def need(*boxes: PaneBox) -> int:
            return max(box.table.row_count + CHROME + (1 if box.filter_input.display else 0) for box in boxes)

        total = self.size.height
        if total > 0:
            top, row, _ = share_heights(total, [need(plugins), need(escalations, dogs), need(feed)])
            _set(plugins, "height", top)  # the feed, and the panes of the middle row, are 1fr (app.tcss)
            _set(middle, "height", row)
        width = self.size.width
        if width > 0:
            wanted = dogs.table.natural_width + 2 + 1  # border, scrollbar gutter
            _set(dogs, "width", max(min(DOGS_MIN_WIDTH, width // 2), min(wanted, int(width * DOGS_WIDTH_SHARE))))


def _set(widget: PaneBox | Horizontal, dimension: str, cells: int) -> None:
    """Set a height or width only when it changes: every set is a relayout."""
    current = getattr(widget.styles, dimension)
    if current is None or current.unit.name != "CELLS" or int(current.value) != cells:
        setattr(widget.styles, dimension, cells)
