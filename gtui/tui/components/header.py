"""The header: which town, what the patrol is doing, what needs a person."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from gtcore.model import TYPE_CHECKING, EscalationStatus, Severity, clean
from gtui.tui.styles import SEVERITY_STYLE

if TYPE_CHECKING:
    from gtcore.model import Escalation


@dataclass(frozen=True)
class PatrolState:
    """What the header says about the patrol."""

    running: bool = False
    next_at: float | None = None
    paused_reason: str | None = None


def header_text(town: str, patrol: PatrolState, escalations: tuple[Escalation, ...], errors: dict[str, str], now: float,
                notices: tuple[str, ...] = ()) -> Text:
    """Calm when all is well, loud when something needs a person."""
    line = Text.assemble((" gtui ", "bold reverse"), " ", ("town ", "dim"), (clean(town), "bold"), "   ", ("patrol ", "dim"))
    if patrol.paused_reason:
        line.append(f"paused ({patrol.paused_reason})", "yellow")
    elif patrol.running:
        line.append("running", "bold cyan")
    elif patrol.next_at is not None:
        line.append(f"next in {max(0, round(patrol.next_at - now))}s", "green")
    else:
        line.append("starting", "dim")
    line.append("   ")
    open_ones = Counter(item.severity for item in escalations if item.status == EscalationStatus.OPEN)
    if open_ones:
        line.append("escalations ", "dim")
        for severity in reversed(Severity):
            if open_ones[severity]:
                line.append(f" {open_ones[severity]} {severity} ", SEVERITY_STYLE[severity])
                line.append(" ")
    else:
        line.append("no open escalations", "green")
    for source, message in errors.items():
        line.append("\n")
        line.append(f" {source} failing: {clean(message)} ", "bold white on red")
    for notice in notices:
        line.append("\n")
        line.append(f" {clean(notice)} ", "black on yellow")
    return line


class TownHeader(Static):
    """A one-line (more when sources fail) header docked at the top."""

    DEFAULT_CSS = """
    TownHeader { dock: top; height: auto; background: $panel; }
    """
