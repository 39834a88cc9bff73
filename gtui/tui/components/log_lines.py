"""A run's log as the viewer shows it: lines that follow the end, wrap on demand, and light up what was searched.

Textual's ``Log`` neither wraps nor highlights a search, so this is a small
line-API widget of its own: it keeps the lines (at most ``max_lines``), maps
screen rows to pieces of lines when wrapped, and renders only the rows on
screen.  A search is case-insensitive and literal (a log holds ``[``, ``*``
and ``(`` more often than a person wants a pattern).
"""

from __future__ import annotations

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

MATCH_STYLE = Style.parse("black on yellow")
CURRENT_STYLE = Style.parse("bold black on bright_green")


class LogLines(ScrollView, can_focus=True, inherit_bindings=False):
    """The lines of one log; the screen's keys scroll, search and wrap it."""

    DEFAULT_CSS = """
    LogLines { background: $surface; color: $foreground; }
    """

    def __init__(self, max_lines: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: list[str] = []
        self.wrap = False
        self.needle = ""
        self.matches: list[int] = []  # the indexes of the lines holding the needle
        self._matched: set[int] = set()
        self.current: int | None = None  # which of ``matches`` n and N are on
        self._pieces: list[tuple[int, int, int]] = []  # when wrapped: each screen row's (line, start, end)
        self._pieces_width = -1
        self._widest = 0

    @property
    def line_count(self) -> int:
        return len(self.lines)

    # -- content ------------------------------------------------------------------------------

    def write_lines(self, lines: list[str]) -> None:
        """Add lines at the end; a view at the end (or never moved) follows them."""
        if not lines:
            return
        following = self.scroll_y >= self.max_scroll_y
        added = [line.expandtabs() for line in lines]
        self.lines.extend(added)
        if len(self.lines) > self.max_lines:
            del self.lines[: len(self.lines) - self.max_lines]
        self._widest = max(self._widest, *(cell_len(line) for line in added))
        self._find()
        self._layout_rows()
        if following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def clear(self) -> None:
        self.lines.clear()
        self._widest = 0
        self._find()
        self._layout_rows()

    def set_wrap(self, wrap: bool) -> None:
        """Wrap long lines at the pane's width (no sideways scrolling), or cut them (scroll sideways with the arrows)."""
        top = self._line_at(round(self.scroll_y))
        self.wrap = wrap
        self._layout_rows()
        self.scroll_to(x=0, y=self._row_of(top), animate=False, immediate=True)

    def search(self, needle: str) -> int:
        """Light up ``needle`` (case-insensitive) everywhere; returns how many lines hold it."""
        self.needle = needle
        self._find()
        self.refresh()
        return len(self.matches)

    def jump(self, step: int) -> int | None:
        """Move to the next (``step=1``) or previous (``-1``) line holding the needle, round the end; its line index."""
        if not self.matches:
            return None
        if self.current is None:
            top = self._line_at(round(self.scroll_y))
            after = [index for index, line in enumerate(self.matches) if line >= top]
            self.current = (after[0] if after else 0) if step > 0 else ((after[0] - 1) if after else -1) % len(self.matches)
        else:
            self.current = (self.current + step) % len(self.matches)
        line = self.matches[self.current]
        row = self._row_of(line)
        if not self.scrollable_content_region.height or not (self.scroll_y <= row < self.scroll_y + self.scrollable_content_region.height):
            self.scroll_to(y=max(0, row - self.scrollable_content_region.height // 3), animate=False, immediate=True)
        self.refresh()
        return line

    def _find(self) -> None:
        needle = self.needle.lower()
        self.matches = [index for index, line in enumerate(self.lines) if needle in line.lower()] if needle else []
        self._matched = set(self.matches)
        self.current = None

    # -- rows ---------------------------------------------------------------------------------

    def on_resize(self) -> None:
        if self.wrap:
            self._layout_rows()

    def _width(self) -> int:
        return self.scrollable_content_region.width

    def _layout_rows(self) -> None:
        """Map screen rows to lines (one each, or pieces of them when wrapped) and size the scrollable area."""
        width = self._width()
        if self.wrap and width > 0:
            self._pieces = []
            for index, line in enumerate(self.lines):
                start = 0
                for piece in chop_cells(line, width) or [""]:
                    self._pieces.append((index, start, start + len(piece)))
                    start += len(piece)
            self._pieces_width = width
            self.virtual_size = Size(width, len(self._pieces))
        else:
            self.virtual_size = Size(self._widest, len(self.lines))
        self.refresh()

    def _row_of(self, line: int) -> int:
        """The first screen row of line ``line``."""
        if not self.wrap:
            return line
        return next((row for row, (index, _, _) in enumerate(self._pieces) if index == line), 0)

    def _line_at(self, row: int) -> int:
        if not self.wrap:
            return row
        return self._pieces[row][0] if 0 <= row < len(self._pieces) else 0

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row, width, base = scroll_y + y, self.size.width, self.rich_style
        if self.wrap:
            if row >= len(self._pieces):
                return Strip.blank(width, base)
            index, start, end = self._pieces[row]
        else:
            if row >= len(self.lines):
                return Strip.blank(width, base)
            index, start, end = row, 0, len(self.lines[row])
        segments = self._segments(index, start, end, base)
        strip = Strip(segments)
        return strip.crop_extend(0 if self.wrap else scroll_x, (0 if self.wrap else scroll_x) + width, base)

    def _segments(self, index: int, start: int, end: int, base: Style) -> list[Segment]:
        """Line ``index`` from ``start`` to ``end``, its matches of the needle lit (the current one brighter)."""
        line = self.lines[index]
        if index not in self._matched:
            return [Segment(line[start:end], base)]
        lit = base + (CURRENT_STYLE if self.current is not None and self.matches[self.current] == index else MATCH_STYLE)
        segments: list[Segment] = []
        lower, needle, at = line.lower(), self.needle.lower(), start
        found = lower.find(needle, max(0, start - len(needle) + 1))
        while at < end:
            if found < 0 or found >= end:
                segments.append(Segment(line[at:end], base))
                break
            lit_from, lit_to = max(at, found), min(end, found + len(needle))
            if lit_from > at:
                segments.append(Segment(line[at:lit_from], base))
            if lit_to > lit_from:
                segments.append(Segment(line[lit_from:lit_to], lit))
            at = max(at, lit_to)
            found = lower.find(needle, found + len(needle))
        return segments
