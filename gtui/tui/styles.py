"""Colours shared by the command line and the control room, so a failure looks the same in both."""

from __future__ import annotations

from rich.style import Style
from rich.text import Span, Text

from gtcore.model import Result, Severity

# Keyed by the engine's enums; a record's plain word (a StrEnum's value) finds its entry all the same, hence str keys:
# the records carry plain words (``Bead.result``, ``Escalation.severity``).
RESULT_STYLE: dict[str, str] = {Result.SUCCESS: "green", Result.FAILURE: "bold red", Result.TIMEOUT: "bold red", Result.ABANDONED: "yellow",
                                Result.SKIPPED: "dim", Result.RUNNING: "cyan"}
SEVERITY_STYLE: dict[str, str] = {Severity.LOW: "dim", Severity.MEDIUM: "yellow",
                                  Severity.HIGH: "bold red", Severity.CRITICAL: "bold white on red"}

# The control room's cells: said without colour too (NO_COLOR), by a mark or by bold and reverse.
RESULT_MARK: dict[str, str] = {Result.FAILURE: "✗ ", Result.TIMEOUT: "✗ ", Result.ABANDONED: "! "}
SEVERITY_CELL_STYLE: dict[str, str] = {Severity.LOW: "dim", Severity.MEDIUM: "yellow",
                                       Severity.HIGH: "bold red", Severity.CRITICAL: "bold reverse red"}


def colourless(style: object) -> Style:
    """A style with its colours taken out for NO_COLOR: bold, dim, italic, underline kept; a background becomes reverse.

    Textual's own NO_COLOR filter turns colours into greys by brightness, and red text on a dark
    background comes out as a dim grey: what should be loudest would be hardest to read.
    """
    parsed = style if isinstance(style, Style) else Style.parse(str(style or "none"))
    return Style(bold=parsed.bold, dim=parsed.dim, italic=parsed.italic, underline=parsed.underline, strike=parsed.strike,
                 reverse=True if parsed.reverse or parsed.bgcolor is not None else None)


def colourless_text(text: Text) -> Text:
    """``text`` (changed in place, and returned) with the colours of its style and spans taken out."""
    text.style = colourless(text.style)
    text.spans = [Span(span.start, span.end, colourless(span.style)) for span in text.spans]
    return text
