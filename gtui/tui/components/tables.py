"""The four panes: keyed, diff-updated, sortable, filterable tables that fit their pane.

Every pane is a :class:`KeyedTable` inside a :class:`PaneBox` (the border, the
title, and a filter line docked at its bottom).  The app hands a table
``{key: cells}`` in its natural order and the table adds, removes or updates
only what changed, inside ``batch_update()`` so one refresh is one repaint.
Rows keep their keys whatever the order: a sort or a filter never loses the
selected row.

A pane's keys act on its selected row by posting an :class:`Act` message; the
app decides what that means (and whether it may, in read-only mode).  The
moving, sorting and filtering keys (context ``table`` of :mod:`gtui.tui.keys`)
are the table's own.

Columns are sized to what they hold on every update, and fitted to the pane:
when the pane is too narrow, low-value columns go first (:attr:`Col.drop`),
then long ones are cut (down to :attr:`Col.min`, ending in ``…``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist

from gtui.tui.components.bindings import binding, bindings
from gtui.tui.keys import BY_ID
from gtui.tui.state import Row

CELL_PADDING = 2  # a DataTable cell's padding, left and right
SORT_ARROWS = (" ▲", " ▼")
ARROW = 2  # the cells a sort arrow adds to its column's label
MARKS = "✗!●⚠ "  # what state.py puts before a cell's words: not part of what the cell sorts by
TABLE_ACTIONS = {"cursor_down", "cursor_up", "top", "bottom", "page_down", "page_up", "sort_next", "sort_reverse"}
EMPTY = 2  # the group of empty cells in a sort value
REBUILD_AFTER_REMOVALS = 32  # removing a row costs O(rows): past this many (and a quarter of the rows), rebuilding is cheaper


@dataclass(frozen=True)
class Col:
    """A column: its label (also its key and its filter name), how it gives way when the pane is narrow."""

    label: str
    drop: int = 0  # 0: always shown; otherwise dropped when the pane is too narrow, the highest first
    min: int | None = None  # cut down to this width (its cells end in …) before anything else is dropped; None: never cut
    aliases: tuple[str, ...] = ()  # more names for ``column:value`` filters
    hide_empty: bool = False  # not shown at all while every cell is empty (a town with no Gas City orders has no kinds)


def filter_name(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def fit_columns(columns: Sequence[Col], labels: Sequence[int], content: Sequence[int], available: int,
                keep: frozenset[int] = frozenset(), sorted_by: int | None = None) -> tuple[tuple[int, ...], dict[int, int]]:
    """Which columns to show, and how wide, for the table to fit ``available`` cells.

    ``labels`` and ``content`` are each column's label width (without a sort arrow) and
    widest cell, over every row the pane holds (a filter hides rows, never columns).
    Which columns show depends on the width only, never on the sort: room for one
    arrow is kept whichever column has it.  Columns that hold nothing go first, then
    the droppable ones by rank (never those in ``keep``); a column with a ``min`` is
    cut (the widest first) once no more need go.  ``available <= 0`` (not laid out yet)
    shows every column at its full width.
    """
    shown = [index for index in range(len(columns)) if content[index] or not columns[index].hide_empty]
    full = {index: max(labels[index] + (ARROW if index == sorted_by else 0), content[index]) for index in shown}
    if available <= 0:
        return tuple(shown), full
    droppable = sorted((index for index in shown if columns[index].drop and index not in keep),
                       key=lambda index: (content[index] > 0, -columns[index].drop))

    def floor(index: int, width: int) -> int:
        least = columns[index].min
        return min(width, least) if least else width

    plain = {index: max(labels[index], content[index]) for index in shown}
    while droppable and sum(floor(index, plain[index]) + CELL_PADDING for index in shown) + ARROW > available:
        shown.remove(droppable.pop(0))
    widths = {index: full[index] for index in shown}
    excess = sum(width + CELL_PADDING for width in widths.values()) - available
    while excess > 0:
        cuttable = [index for index in shown if widths[index] > floor(index, full[index])]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda index: widths[index] - floor(index, full[index]))
        widths[widest] -= 1
        excess -= 1
    return tuple(shown), widths


def _natural(plain: str) -> tuple[tuple[int, Any], ...]:
    """Text as people sort it: numbers as numbers (``run-9`` before ``run-10``)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", plain) if part)


def sort_value(cell: Text) -> tuple[int, float, tuple[tuple[int, Any], ...]]:
    """What a cell sorts by: its own sort key (a time, a count, a severity), else its words; empty cells last."""
    key = getattr(cell, "sort_key", None)
    if key is not None:
        return (0, float(key), ())
    plain = cell.plain.lstrip(MARKS).strip().lower()
    if plain in ("", "-", "…"):
        return (EMPTY, 0.0, ())
    return (1, 0.0, _natural(plain))


def compile_filter(needle: str, columns: Sequence[Col], default: Sequence[int]) -> Callable[[Row], bool] | None:
    """A row test for a filter: words match the ``default`` columns, ``column:value`` that column; all must match.

    Case-insensitive substrings.  A column is named by its label (``rig``, ``last run`` as
    ``lastrun`` or ``last-run``), an alias, or a prefix naming one column only (``res:fail``).
    A ``word:`` that names no column is matched as it is (an escalation's subject may hold a colon).
    """
    names: dict[str, int] = {}
    for index, column in enumerate(columns):
        for name in (column.label, *column.aliases):
            names.setdefault(filter_name(name), index)
    tests: list[tuple[tuple[int, ...], str]] = []
    for term in needle.split():
        name, colon, value = term.partition(":")
        named = _column_named(filter_name(name), names) if colon and name else None
        tests.append(((named,), value.lower()) if named is not None else (tuple(default), term.lower()))
    if not tests:
        return None

    def match(cells: Row) -> bool:
        return all(any(value in cells[index].plain.lower() for index in where) for where, value in tests)

    return match


def _column_named(name: str, names: dict[str, int]) -> int | None:
    if name in names:
        return names[name]
    found = {index for known, index in names.items() if known.startswith(name)}
    return found.pop() if len(found) == 1 else None


def same_cell(before: Text, after: Text) -> bool:
    """Text equality ignores the base style, and a cell's sort key counts too."""
    return before == after and before.style == after.style and getattr(before, "sort_key", None) == getattr(after, "sort_key", None)


class Act(Message):
    """A pane asks the app to do ``action`` to the row ``key``."""

    def __init__(self, pane: str, action: str, key: str | None) -> None:
        super().__init__()
        self.pane = pane
        self.action = action
        self.key = key


class KeyedTable(DataTable[Text], inherit_bindings=False):
    """A DataTable fed whole row sets and updated by diff, sorted and filtered by the operator."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("table")
    ALLOW_MAXIMIZE = True
    PANE = ""
    TITLE = ""
    COLUMNS: ClassVar[tuple[Col, ...]] = ()
    FILTER_COLUMNS: ClassVar[tuple[int, ...]] = (0,)  # what a plain filter word matches

    class ContentChanged(Message):
        """The rows, the filter line or the natural width changed: the panes may share the screen anew."""

        def __init__(self, origin: object) -> None:
            super().__init__()
            self.origin = origin

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id or self.PANE, cursor_type="row", zebra_stripes=False, show_row_labels=False)
        self._rows: dict[str, Row] = {}  # every row, in the app's order
        self._shown: dict[str, Row] = {}  # what the table holds, in its order
        self._widths: dict[str, tuple[int, ...]] = {}  # each row's cell widths (every row: a filter hides no column)
        self._columns_shown: tuple[int, ...] = ()
        self._match: Callable[[Row], bool] | None = None
        self._content_seen: tuple[int, int] = (-1, -1)
        self._subtitle = ""
        self.filter_text = ""
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.natural_width = 0  # every column at full width, padding included

    # -- feeding ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._sync({})

    def apply(self, rows: dict[str, Row]) -> None:
        """Show ``rows`` (filtered, and in their order unless sorted), touching only what changed."""
        rows = self._kept(rows)
        self._measure(rows)
        self._rows = rows
        self._sync(self._visible(rows))
        self._update_subtitle()

    def _kept(self, rows: dict[str, Row]) -> dict[str, Row]:
        """``rows``, with every cell equal to the one held already given as that one (a row all equal, as that row).

        Each collect builds every row afresh; the table holds the cells it was given
        first.  Kept this way, the pane holds one copy of each cell, not the table's
        and an equal one here, and an unchanged row is the same row to :meth:`_sync`.
        """
        known = self._rows
        kept: dict[str, Row] = {}
        for key, cells in rows.items():
            old = known.get(key)
            if old is not None and old is not cells and len(old) == len(cells):
                mixed = tuple(before if same_cell(before, after) else after for before, after in zip(old, cells, strict=True))
                cells = old if all(cell is before for cell, before in zip(mixed, old, strict=True)) else mixed
            kept[key] = cells
        return kept

    def _measure(self, rows: dict[str, Row]) -> None:
        """Keep each row's cell widths, measuring only the rows that are new or changed."""
        known = self._rows
        for key, cells in rows.items():
            if known.get(key) is not cells or key not in self._widths:
                self._widths[key] = tuple(cell.cell_len for cell in cells)
        if len(self._widths) != len(rows):
            for key in [key for key in self._widths if key not in rows]:
                del self._widths[key]

    def _visible(self, rows: dict[str, Row]) -> dict[str, Row]:
        match = self._match
        items = [(key, cells) for key, cells in rows.items() if match is None or match(cells)]
        if self.sort_column is None:
            return dict(items)
        column = self.sort_column
        keyed = [(sort_value(cells[column]), key, cells) for key, cells in items]
        filled = sorted((item for item in keyed if item[0][0] != EMPTY), key=lambda item: item[0], reverse=self.sort_reverse)
        empty = [item for item in keyed if item[0][0] == EMPTY]  # last either way, in the pane's own order
        return {key: cells for _, key, cells in (*filled, *empty)}

    def _sync(self, visible: dict[str, Row]) -> None:
        """Make the table hold ``visible`` in its order, with columns that fit, keeping the selected row selected."""
        selected = self.selected_key()
        line = self.cursor_row - round(self.scroll_y)  # where the selected row is on screen: it stays there
        counted = self._update_count
        changed: dict[str, list[int]] = {}
        added: list[str] = []
        for key, cells in visible.items():
            old = self._shown.get(key)
            if old is cells:  # the same row (a resize, a re-sort): nothing to compare
                continue
            if old is None:
                added.append(key)
            else:
                diff = [index for index, (before, after) in enumerate(zip(old, cells, strict=True)) if not same_cell(before, after)]
                if not diff:
                    continue
                changed[key] = diff
        removed = [key for key in self._shown if key not in visible]
        columns, widths = self._fit()
        rebuild = (columns != self._columns_shown or not self.columns
                   or len(removed) > max(REBUILD_AFTER_REMOVALS, len(self._shown) // 4))
        with self.app.batch_update():
            if rebuild:
                self._rebuild(visible, columns, widths)
            else:
                self._patch(visible, removed, changed, added)
                self._set_widths(widths)
            self._shown = visible
            if selected is not None and selected in visible:
                index = self.get_row_index(selected)
                if index != self.cursor_row:
                    self.move_cursor(row=index, animate=False)
                    if 0 <= line < self._rows_in_view():
                        self.call_after_refresh(self._keep_on_line, selected, line)
        if self._update_count != counted:
            self._drop_stale_renders()
        content = (len(visible), self.natural_width)
        if content != self._content_seen:
            self._content_seen = content
            self.post_message(self.ContentChanged(self))

    def _drop_stale_renders(self) -> None:
        """DataTable's render caches are keyed by its update count: once that moved, nothing asks for what they hold,
        yet it stays until 1,000 lines' or 10,000 cells' worth pushes it out (a pane changed every few seconds would
        hold that much, for good)."""
        for cache in (self._row_render_cache, self._cell_render_cache, self._row_renderable_cache, self._line_cache):
            cache.clear()

    def _keep_on_line(self, key: str, line: int) -> None:
        """Rows came or went above the selected one: scroll so it is on the same screen line as before (it never jumps)."""
        if self.selected_key() == key:
            self.scroll_to(y=max(0, self.cursor_row - line), animate=False, immediate=True)

    def _rebuild(self, visible: dict[str, Row], columns: tuple[int, ...], widths: dict[int, int]) -> None:
        self.clear(columns=True)
        self._columns_shown = columns
        for index in columns:
            self.add_column(self._label(index), key=self.COLUMNS[index].label, width=widths[index])
        for key, cells in visible.items():
            self.add_row(*(cells[index] for index in columns), key=key)

    def _patch(self, visible: dict[str, Row], removed: list[str], changed: dict[str, list[int]], added: list[str]) -> None:
        for key in removed:
            self.remove_row(key)
        shown = set(self._columns_shown)
        for key, indexes in changed.items():
            cells = visible[key]
            for index in indexes:
                if index in shown:
                    self.update_cell(key, self.COLUMNS[index].label, cells[index])
        for key in added:
            cells = visible[key]
            self.add_row(*(cells[index] for index in self._columns_shown), key=key)
        order = list(visible)
        if [key for key in self._shown if key in visible] + added != order:
            self._reorder(order)

    def _reorder(self, order: list[str]) -> None:
        """Put the rows in ``order`` without rebuilding: DataTable.sort by each row's rank (its first cell's identity)."""
        first = ColumnKey(self.COLUMNS[self._columns_shown[0]].label)
        rank = {id(self.get_cell(key, first)): index for index, key in enumerate(order)}
        self.sort(first, key=lambda cell: rank[id(cell)])

    def _label(self, index: int) -> Text:
        arrow = SORT_ARROWS[self.sort_reverse] if index == self.sort_column else ""
        return Text(self.COLUMNS[index].label + arrow)

    # -- widths -------------------------------------------------------------------------------

    def _fit(self) -> tuple[tuple[int, ...], dict[int, int]]:
        count = len(self.COLUMNS)
        content = [max(column) for column in zip(*self._widths.values(), strict=True)] if self._widths else [0] * count
        labels = [len(column.label) for column in self.COLUMNS]
        self.natural_width = sum(max(label, widest) + CELL_PADDING for label, widest in zip(labels, content, strict=True)) + ARROW
        available = self.scrollable_content_region.width if self.is_mounted and self.size.width else 0
        return fit_columns(self.COLUMNS, labels, content, available, self.kept_columns(), self.sort_column)

    def kept_columns(self) -> frozenset[int]:
        """Columns never dropped for width, whatever their rank (the plugins pane's rig, in a town with rigs)."""
        return frozenset()

    def _set_widths(self, widths: dict[int, int]) -> None:
        """Size the shown columns (DataTable has no public way to resize a column: its Column objects are set here)."""
        changed = False
        for index in self._columns_shown:
            column = self.columns[ColumnKey(self.COLUMNS[index].label)]
            label = self._label(index)
            if column.auto_width or column.width != widths[index] or column.label != label:
                column.auto_width, column.width, column.label = False, widths[index], label
                changed = True
        if changed:
            self._update_count += 1  # the render caches are keyed by it
            self._require_update_dimensions = True  # the virtual width follows the columns
            self.check_idle()
            self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._sync(self._shown)
        self._update_subtitle()

    # -- filter and sort ----------------------------------------------------------------------

    def set_filter(self, needle: str) -> None:
        self.filter_text = needle.strip()
        self._match = compile_filter(self.filter_text, self.COLUMNS, self.FILTER_COLUMNS)
        self.apply(self._rows)

    def set_sort(self, column: int | None, reverse: bool = False) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self.apply(self._rows)

    def action_sort_next(self) -> None:
        """Sort by the next shown column; after the last, back to the pane's own order."""
        shown = list(self._columns_shown) or list(range(len(self.COLUMNS)))
        if self.sort_column is None:
            self.set_sort(shown[0])
        elif self.sort_column in shown and shown.index(self.sort_column) + 1 < len(shown):
            self.set_sort(shown[shown.index(self.sort_column) + 1], self.sort_reverse)
        else:
            self.set_sort(None)

    def action_sort_reverse(self) -> None:
        if self.sort_column is None:
            self.set_sort(self._columns_shown[0] if self._columns_shown else 0, reverse=True)
        else:
            self.set_sort(self.sort_column, not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's label sorts by it; a second click reverses."""
        event.stop()
        index = next((index for index, column in enumerate(self.COLUMNS) if column.label == event.column_key.value), None)
        if index is None:
            return
        self.set_sort(index, not self.sort_reverse if index == self.sort_column else False)

    def action_clear_filter(self) -> None:
        box = self.box
        if box is not None:
            box.close_filter(clear=True)
        else:
            self.set_filter("")

    # -- moving -------------------------------------------------------------------------------

    def action_top(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_bottom(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def _half_page(self) -> int:
        return max(1, (self.scrollable_content_region.height - 1) // 2)

    def action_page_down(self) -> None:
        if self.row_count:
            self.move_cursor(row=min(self.row_count - 1, self.cursor_row + self._half_page()), animate=False)

    def action_page_up(self) -> None:
        if self.row_count:
            self.move_cursor(row=max(0, self.cursor_row - self._half_page()), animate=False)

    # -- what the pane says -------------------------------------------------------------------

    @property
    def box(self) -> PaneBox | None:
        return self.parent if isinstance(self.parent, PaneBox) else None

    @property
    def subtitle(self) -> str:
        """The pane's bottom line as plain text (``filter: hel (1/3)``, ``+4 more``)."""
        return self._subtitle

    def _update_subtitle(self) -> None:
        """As ``Text``: a str border subtitle is parsed as markup, and a typed ``[/b]`` would crash the app."""
        subtitle = "  ".join(self._subtitle_parts())
        if subtitle == self._subtitle:
            return
        self._subtitle = subtitle
        target = self.box or self
        target.border_subtitle = Text(subtitle)

    def _subtitle_parts(self) -> list[str]:
        parts = [f"filter: {self.filter_text} ({len(self._shown)}/{len(self._rows)})"] if self.filter_text else []
        above, below = self.rows_above(), self.rows_below()
        if above:
            parts.append(f"+{above} above")
        if below:
            parts.append(f"+{below} below")
        return parts

    def _rows_in_view(self) -> int:
        """How many rows the pane shows at once (0 before it is laid out)."""
        return max(0, self.scrollable_content_region.height - (1 if self.show_header else 0))

    def rows_above(self) -> int:
        """How many rows are above the pane's first line."""
        return min(self.row_count, round(self.scroll_y)) if self._rows_in_view() else 0

    def rows_below(self) -> int:
        """How many rows are under the pane's last line (0 before it is laid out)."""
        height = self._rows_in_view()
        if height <= 0:
            return 0
        return max(0, self.row_count - round(self.scroll_y) - height)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._update_subtitle()

    def cells_of(self, key: str) -> Row:
        """Every cell of a shown row, the columns a narrow pane leaves out included."""
        return self._shown[key]

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):
            return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Moving and sorting are the table's; clearing needs a filter; the app decides the rest (read-only, ...)."""
        if action == "clear_filter":
            return bool(self.filter_text)
        if action in TABLE_ACTIONS:
            return True
        return self.app.check_action(action, parameters)

    def action_act(self, action: str) -> None:
        self.post_message(Act(self.PANE, action, self.selected_key()))


class FilterInput(Input):
    """The filter line at the bottom of a pane: filters as it is typed, ⏎ keeps it, esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [binding(BY_ID["table.clear_filter"])]
    DEFAULT_CSS = """
    FilterInput { dock: bottom; display: none; }
    """

    def action_clear_filter(self) -> None:
        box = self.parent
        if isinstance(box, PaneBox):
            box.close_filter(clear=True)


class PaneBox(Vertical):
    """A pane: its border and title, the table, and the filter line."""

    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    PaneBox { height: 1fr; }
    """

    def __init__(self, table: KeyedTable) -> None:
        super().__init__(id=f"{table.PANE}-pane", classes="pane")
        self.table = table
        self.border_title = table.TITLE

    def compose(self) -> ComposeResult:
        yield self.table
        names = ", ".join(column.label for column in self.table.COLUMNS)
        yield FilterInput(placeholder=f"filter (column:value for {names})", compact=True, select_on_focus=False,
                          id=f"{self.table.PANE}-filter")

    @property
    def filter_input(self) -> FilterInput:
        return self.query_one(FilterInput)

    def open_filter(self) -> None:
        field = self.filter_input
        field.value = self.table.filter_text
        field.cursor_position = len(field.value)
        field.cursor_blink = False
        field.display = True
        field.focus()
        self.post_message(KeyedTable.ContentChanged(self))

    def close_filter(self, clear: bool) -> None:
        if clear:
            self.table.set_filter("")
        field = self.filter_input
        field.display = False
        self.table.focus()
        self.post_message(KeyedTable.ContentChanged(self))

    def on_keyed_table_content_changed(self, message: KeyedTable.ContentChanged) -> None:
        """Passed on as the box's own: Textual stops a bubbling message at its sender, and when the filter line's
        handler here made the table change, the sender is this box (the panes above would never hear of it)."""
        if message.origin is self:  # the box's own goes up as it is
            return
        message.stop()
        self.post_message(KeyedTable.ContentChanged(self))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.display:
            self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.set_filter(event.value)
        self.close_filter(clear=False)


class PluginsPane(KeyedTable):
    PANE = "plugins"
    TITLE = "1 Plugins"
    COLUMNS = (Col("plugin", aliases=("name",)), Col("rig", drop=6), Col("gate"), Col("enabled", drop=5), Col("last run", drop=2),
               Col("result", min=10), Col("runs", drop=4), Col("fails", drop=3, aliases=("fail%", "failures")), Col("state", min=30),
               Col("kind", drop=7, hide_empty=True))  # plugin or order: shown in a town that has Gas City orders
    BINDINGS: ClassVar[list[BindingType]] = bindings("plugins")
    RIG = 1

    def kept_columns(self) -> frozenset[int]:
        """``rig`` stays at every width in a town with rigs (in one without, every row says ``town`` and it goes first)."""
        rigs = any(cells[self.RIG].plain not in ("", "town") for cells in self._rows.values())
        return frozenset({self.RIG}) if rigs else frozenset()


class DogsPane(KeyedTable):
    PANE = "dogs"
    TITLE = "2 Dogs"
    COLUMNS = (Col("dog"), Col("state"), Col("plugin", min=8), Col("run", drop=2), Col("elapsed", drop=1, min=7))
    FILTER_COLUMNS = (0, 2)
    BINDINGS: ClassVar[list[BindingType]] = bindings("dogs")


class FeedPane(KeyedTable):
    """The wisp feed: newest at the bottom (unless sorted), follows unless the operator moved up."""

    PANE = "feed"
    TITLE = "3 Feed"
    COLUMNS = (Col("time"), Col("plugin", min=8), Col("run", drop=1), Col("event", min=20))
    FILTER_COLUMNS = (1,)
    MAX_ROWS = 1000
    BINDINGS: ClassVar[list[BindingType]] = bindings("feed")

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
        if following and self.sort_column is None:
            self.unseen = 0
            self.move_cursor(row=self.row_count - 1, animate=False)
            self.scroll_end(animate=False, immediate=True)
        elif not following:
            self.unseen += len(fresh)
        self._update_subtitle()

    def is_following(self) -> bool:
        return self.cursor_row >= self.row_count - 1 or self.scroll_y >= self.max_scroll_y

    def on_resize(self, event: events.Resize) -> None:
        """A feed that followed the newest row still shows it after the pane changed height."""
        following = self.sort_column is None and self.is_following()
        super().on_resize(event)
        if following:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        if self.unseen and new >= self.max_scroll_y:
            self.unseen = 0
        super().watch_scroll_y(old, new)

    def _subtitle_parts(self) -> list[str]:
        return ([f"paused, {self.unseen} new"] if self.unseen else []) + super()._subtitle_parts()


class EscalationsPane(KeyedTable):
    """The escalation queue, worst first: it shows its top when it opens and when one as bad as the worst arrives."""

    PANE = "escalations"
    TITLE = "4 Escalations"
    COLUMNS = (Col("id"), Col("severity"), Col("status", drop=2, aliases=("state",)), Col("age", drop=3), Col("count", drop=4),
               Col("notes", drop=1, min=5), Col("subject", min=16))
    FILTER_COLUMNS = (6,)
    BINDINGS: ClassVar[list[BindingType]] = bindings("escalations")

    def show_worst(self) -> None:
        """Scroll to the top once the rows are placed; the selection stays on its row (it never jumps)."""
        self.call_after_refresh(self.scroll_to, y=0, animate=False, immediate=True)


PANES: tuple[type[KeyedTable], ...] = (PluginsPane, DogsPane, FeedPane, EscalationsPane)
