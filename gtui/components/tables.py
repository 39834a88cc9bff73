"""The four panes: keyed, diff-updated tables.

Every pane is a :class:`KeyedTable`: the app hands it ``{key: cells}`` and the
table adds, removes or updates only what changed, inside ``batch_update()`` so
one refresh is one repaint.  A pane's keys act on its selected row by posting
an :class:`Act` message; the app decides what that means (and whether it may,
in read-only mode).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from gtui.state import Row


class Act(Message):
    """A pane asks the app to do ``action`` to the row ``key``."""

    def __init__(self, pane: str, action: str, key: str | None) -> None:
        super().__init__()
        self.pane = pane
        self.action = action
        self.key = key


class KeyedTable(DataTable[Text]):
    """A DataTable fed whole row sets and updated by diff, with a text filter."""

    ALLOW_MAXIMIZE = True
    PANE = ""
    TITLE = ""
    COLUMNS: ClassVar[tuple[tuple[str, int | None], ...]] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id or self.PANE, cursor_type="row", zebra_stripes=False, show_row_labels=False)
        self.border_title = self.TITLE
        self._shown: dict[str, Row] = {}
        self._rows: dict[str, Row] = {}
        self.filter_text = ""

    def on_mount(self) -> None:
        for label, width in self.COLUMNS:
            self.add_column(label, key=label, width=width)

    def apply(self, rows: dict[str, Row]) -> None:
        """Show ``rows`` (in their order), touching only what changed."""
        self._rows = rows
        needle = self.filter_text.lower()
        visible = {key: cells for key, cells in rows.items() if not needle or needle in " ".join(c.plain for c in cells).lower()}
        with self.app.batch_update():
            # Patching appends new rows at the bottom: right for the feed, wrong for a new row that belongs
            # higher up (a critical escalation, a plugin file added, a filter cleared).  Those rebuild.
            kept = [key for key in self._shown if key in visible]
            if kept + [key for key in visible if key not in self._shown] != list(visible):
                self._rebuild(visible)
            else:
                self._patch(visible)
        self._shown = visible
        self._update_subtitle()

    def _rebuild(self, visible: dict[str, Row]) -> None:
        selected = self.selected_key()
        self.clear()
        for key, cells in visible.items():
            self.add_row(*cells, key=key)
        if selected in visible:
            self.move_cursor(row=list(visible).index(selected), animate=False)

    def _patch(self, visible: dict[str, Row]) -> None:
        for key in [key for key in self._shown if key not in visible]:
            self.remove_row(key)
        columns = [label for label, _ in self.COLUMNS]
        for key, cells in visible.items():
            old = self._shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                continue
            for column, before, after in zip(columns, old, cells, strict=True):
                if before != after or before.style != after.style:  # Text equality ignores the base style
                    self.update_cell(key, column, after)

    def set_filter(self, needle: str) -> None:
        self.filter_text = needle
        self.apply(self._rows)

    def _update_subtitle(self) -> None:
        """As ``Text``: a str border subtitle is parsed as markup, and a typed ``[/b]`` would crash the app."""
        self.border_subtitle = Text("  ".join(self._subtitle_parts()))

    def _subtitle_parts(self) -> list[str]:
        return [f"filter: {self.filter_text} ({len(self._shown)}/{len(self._rows)})"] if self.filter_text else []

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):
            return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The app decides: its read-only check covers pane keys too, so they show (and are) disabled."""
        return self.app.check_action(action, parameters)

    def action_act(self, action: str) -> None:
        self.post_message(Act(self.PANE, action, self.selected_key()))


class PluginsPane(KeyedTable):
    PANE = "plugins"
    TITLE = "1 Plugins"
    COLUMNS = (("plugin", None), ("rig", None), ("gate", None), ("enabled", None), ("last run", None), ("result", None),
               ("runs", None), ("fail", None), ("state", None))
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "act('run')", "Run", id="plugins.run"),
        Binding("f", "act('force_run')", "Force run", id="plugins.force_run"),
        Binding("space", "act('toggle_pause')", "Pause/resume", id="plugins.pause"),
        Binding("enter", "act('details')", "Details", id="plugins.details"),
        Binding("l", "act('log')", "Log", id="plugins.log"),
    ]


class DogsPane(KeyedTable):
    PANE = "dogs"
    TITLE = "2 Dogs"
    COLUMNS = (("dog", None), ("state", None), ("plugin", None), ("run", None), ("elapsed / timeout", None))
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "act('details')", "Details", id="dogs.details"),
        Binding("l", "act('log')", "Log", id="dogs.log"),
    ]


class FeedPane(KeyedTable):
    """The wisp feed: newest at the bottom, follows unless the operator scrolled up."""

    PANE = "feed"
    TITLE = "3 Feed"
    COLUMNS = (("time", None), ("plugin", None), ("run", None), ("event", None))
    MAX_ROWS = 1000
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "act('details')", "Details", id="feed.details"),
        Binding("l", "act('log')", "Log", id="feed.log"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.unseen = 0

    def append(self, entries: list[tuple[str, Row]]) -> None:
        """Add rows at the bottom (keeping at most MAX_ROWS) and follow, or count them."""
        fresh = [(key, cells) for key, cells in entries if key not in self._rows]
        if not fresh:
            return
        following = self.is_following()
        rows = dict(self._rows)
        rows.update(fresh)
        if len(rows) > self.MAX_ROWS:
            rows = dict(list(rows.items())[-self.MAX_ROWS:])
        self.apply(rows)
        if following:
            self.unseen = 0
            self.move_cursor(row=self.row_count - 1, animate=False)
            self.scroll_end(animate=False, immediate=True)
        else:
            self.unseen += len(fresh)
        self._update_subtitle()

    def is_following(self) -> bool:
        return self.cursor_row >= self.row_count - 1 or self.scroll_y >= self.max_scroll_y

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.unseen and new >= self.max_scroll_y:
            self.unseen = 0
            self._update_subtitle()

    def _subtitle_parts(self) -> list[str]:
        return ([f"paused, {self.unseen} new"] if self.unseen else []) + super()._subtitle_parts()


class EscalationsPane(KeyedTable):
    PANE = "escalations"
    TITLE = "4 Escalations"
    COLUMNS = (("id", None), ("severity", None), ("status", None), ("age", None), ("count", None), ("notes", None),
               ("subject", None))
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "act('ack')", "Acknowledge", id="escalations.ack"),
        Binding("x", "act('close')", "Close", id="escalations.close"),
        Binding("enter", "act('details')", "Details", id="escalations.details"),
    ]


PANES: tuple[type[KeyedTable], ...] = (PluginsPane, DogsPane, FeedPane, EscalationsPane)
LAYOUT_ORDER: tuple[type[KeyedTable], ...] = (PluginsPane, EscalationsPane, DogsPane, FeedPane)  # grid order, row by row
