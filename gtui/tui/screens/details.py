"""Detail screens: a plugin in full, an escalation in full.

Their data is gathered in a thread worker (ledger reads, a log tail) and
rendered when it arrives; the screen shows "loading" meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Sparkline, Static

from gtcore.model import TYPE_CHECKING, age, clean, format_duration, parse_ref, run_problems
from gtui.cli.render import pause_words, words
from gtui.tui.components.bindings import bindings
from gtui.tui.components.scrolling import KeyScroll, ScrollKeys
from gtui.tui.state import reason_words
from gtui.tui.styles import RESULT_STYLE, SEVERITY_STYLE

if TYPE_CHECKING:
    from gtcore.engine import Engine
    from gtcore.model import Bead, Escalation, EscalationSettings, GateDecision, Pause, Plugin, PluginStats

GATE_WORDS = {
    "cooldown": "runs by itself when no run (of any result, running included) started within {duration}",
    "cron": "runs by itself when a slot of '{schedule}' ({timezone}) has passed since the last run; missed slots catch up with one run",
    "condition": "runs by itself when `{check}` exits 0 within {check_timeout}; its first output line is the reason",
    "event": "runs by itself when the event '{on}' is emitted after the last run",
    "manual": "never runs by itself: press r (or f) here, or `gtui plugin run`",
}
ORDER_WORDS = {  # a Gas City order's trigger, as gc decides it (docs/gascity.md)
    "cooldown": "due when {duration} has passed since its last run started (never run: at once)",
    "cron": "due when the minute matches '{schedule}' ({timezone}) by Gas City's matcher (all five fields; */N: divisible by N),"
            " or a slot passed since the last run (never run: any slot of the last 25 hours)",
    "condition": "due when `sh -c {check}` exits 0 within {check_timeout}, run in the city or rig root",
    "event": "due when '{on}' events came into .gc/events.jsonl after its cursor (the seq its last run recorded)",
    "manual": "never runs by itself: press r (or f) here, `gtui plugin run`, or `gc order run`",
    "webhook": "fired by Gas City's webhook receiver; gtui runs it only when asked (press r, or `gtui plugin run`)",
}


def explain_gate(plugin: Plugin, decision: GateDecision | None, now: float) -> Text:
    """The gate in words, its state now and when it may open next."""
    gate = plugin.gate
    order = plugin.order is not None
    words = (ORDER_WORDS if order else GATE_WORDS)[gate.type].format(
        duration=gate.duration, schedule=gate.schedule, timezone=gate.timezone or "local time", check=gate.check,
        check_timeout=gate.check_timeout, on=gate.on)
    title = f"{gate.type.capitalize()} trigger (Gas City order {plugin.order.scoped}): " if order else f"{gate.type.capitalize()} gate: "
    line = Text.assemble((title, "bold"), clean(words), ".\n")
    if decision is None:
        return line.append("State: not evaluated yet.", "dim")
    line.append("Now: ", "bold")
    line.append("open" if decision.open else "closed", "green" if decision.open else "yellow")
    line.append(f" — {clean(decision.reason)}")
    if decision.next_open_at:
        when = datetime.fromtimestamp(decision.next_open_at).strftime("%Y-%m-%d %H:%M:%S")
        line.append(f"\nNext open: {when} ({age(decision.next_open_at, now)})")
    return line


def run_facts(run: Bead, now: float) -> Text:
    """A run in one line: result, exit code or signal, time taken against the timeout, and the plugin's own word on it."""
    timeout = run.data.get("timeout_s")
    limit = f" of {format_duration(timeout)} timeout" if isinstance(timeout, int | float) else ""
    if run.status == "running":
        spent = now - run.data.get("started_at", run.created_at)
        over = " · ⚠ past its timeout" if isinstance(timeout, int | float) and spent > timeout else ""
        return Text(clean(f"running on {run.data.get('dog', '?')} · {format_duration(spent)}{limit}{over}"), style="cyan")
    line = Text(clean(run.result or "?"), style=RESULT_STYLE.get(run.result or "", "bold"))
    code, signal = run.data.get("exit_code"), run.data.get("signal")
    parts = [f"killed by {signal}" if signal else f"exit {code}" if code is not None else ""]
    duration = run.data.get("duration_s")
    if isinstance(duration, int | float):
        parts.append(f"took {format_duration(duration)}{limit}")
    if run.data.get("reported_result"):
        parts.append(f"reported {run.data['reported_result']}")
    parts.append(reason_words(run))
    line.append(clean("".join(f" · {part}" for part in parts if part)))
    return line


def problem_lines(run: Bead) -> Text:
    """What the run asked of Gas Town that gtui did not answer as asked, one line each (errors red, warnings yellow;
    the engine counts a call made many times once, with how often)."""
    lines = Text()
    for problem in run_problems(run):
        lines.append(f"\n  {problem.level}: ", "bold red" if problem.level == "error" else "bold yellow")
        lines.append(clean(problem.reason))
    return lines


def in_words(value: object) -> str | None:
    """A frontmatter value as people read it: yes and no, lists joined with commas; None when there is nothing to say
    (None, an empty string, list or table), so the row is left out rather than printed as Python."""
    if value is None or value == "" or (isinstance(value, list | tuple | dict) and not value):
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(words(item)) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {words(item)}" for key, item in value.items())
    return str(words(value))


def frontmatter_table(plugin: Plugin, root: str) -> Table:
    table = Table(box=box.SIMPLE, show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, object]] = [
        ("name", plugin.name), *([("kind", "Gas City order")] if plugin.order is not None else []), ("description", plugin.description),
        ("version", plugin.version),
        ("rig", plugin.rig + (f" (crew {plugin.crew})" if plugin.crew else "")),
        ("file", relative(str(plugin.path), root)), ("enabled", plugin.enabled),
        *[(f"gate.{key}", value) for key, value in plugin.gate.to_json().items()],
        *[(f"execution.{key}", value) for key, value in plugin.execution.to_json().items() if key != "hosts" or value],  # pinned only
        ("tracking.labels", plugin.tracking.labels), ("tracking.digest", plugin.tracking.digest),
        *([("run.sh", "yes" if plugin.has_run_script else "no")] if plugin.order is None else
          [(f"order.{key}", value) for key, value in plugin.order.to_json().items() if value]),
        *[("shadows", relative(str(path), root)) for path in plugin.shadowed],
        *[("warning", warning) for warning in plugin.warnings],
    ]
    for key, value in rows:
        said = in_words(value)
        if said is not None:
            table.add_row(key, Text(clean(said)))
    return table


def relative(path: str, root: str) -> str:
    return path[len(root) + 1:] if path.startswith(root + "/") else path


def result_strip(runs: list[Bead]) -> Text:
    """Oldest to newest, one coloured block per run."""
    strip = Text()
    for run in reversed(runs):
        strip.append("■", RESULT_STYLE.get(run.result or "", "dim"))
    return strip


@dataclass(frozen=True)
class PluginDetails:
    plugin: Plugin
    decision: GateDecision | None
    stats: PluginStats | None
    runs: list[Bead]
    log: str
    pause: Pause | None


class PluginDetailsScreen(ScrollKeys, Screen[None]):
    """Everything about one plugin: frontmatter, gate in words, instructions, history, log tail."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("details", "scroll")

    def __init__(self, engine: Engine, plugin: Plugin, decision: GateDecision | None, clock: Callable[[], float]) -> None:
        super().__init__()
        self.engine, self.plugin, self.decision, self.clock = engine, plugin, decision, clock
        self.latest: Bead | None = None

    def compose(self) -> ComposeResult:
        with KeyScroll():
            yield Static(Text(f"{self.plugin.name}", style="bold"), id="title")
            yield Static(frontmatter_table(self.plugin, str(self.engine.town.root)), id="frontmatter")
            yield Static(explain_gate(self.plugin, self.decision, self.clock()), id="gate")
            yield Static(Text("Runs: loading…", style="dim"), id="history")
            yield Sparkline([], id="durations")
            yield Static(Text("Instructions", style="bold"))
            yield Markdown(clean(self.plugin.instructions) or "_no instructions_", id="instructions")
            yield Static(Text("Latest log", style="bold"))
            yield Static(Text("loading…", style="dim"), id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        runs = self.engine.runs(self.plugin.name, limit=60)
        details = PluginDetails(self.plugin, self.decision, self.engine.summary().get(self.plugin.name), runs,
                                self.engine.log_tail(runs[0], 8192, 40) if runs else "", self.engine.pauses().get(self.plugin.name))
        self.app.call_from_thread(self.show, details)

    def show(self, details: PluginDetails) -> None:
        self.latest = details.runs[0] if details.runs else None
        stats = details.stats
        summary = Text()
        if details.pause is not None:
            summary.append("Paused: ", "bold yellow")
            summary.append(clean(pause_words(details.pause, self.clock())) + "\n", "yellow")
        summary.append("Runs: ", "bold")
        summary.append(f"{stats.run_count} in all, {stats.failure_count} failed" if stats else "none yet")
        if details.runs:
            summary.append(f"; the last {len(details.runs)}: ")
            summary.append_text(result_strip(details.runs))
            summary.append("  (durations below, oldest first)" if len(details.runs) >= 2 else "", "dim")
        if details.runs:
            summary.append("\nLast run: ", "bold")
            summary.append_text(run_facts(details.runs[0], self.clock()))
            summary.append_text(problem_lines(details.runs[0]))
        self.query_one("#history", Static).update(summary)
        durations = [float(run.data.get("duration_s") or 0.0) for run in reversed(details.runs) if run.status == "closed"]
        sparkline = self.query_one("#durations", Sparkline)
        sparkline.data = durations
        sparkline.display = len(durations) >= 2
        self.query_one("#log", Static).update(Text(clean(details.log) or "no log yet", style="" if details.log else "dim"))

    def action_log(self) -> None:
        from gtui.tui.screens.log_viewer import LogScreen

        if self.latest is None:
            self.notify("no run of this plugin yet", severity="warning")
            return
        self.app.push_screen(LogScreen(self.engine, self.latest))


class EscalationDetailsScreen(ScrollKeys, Screen[None]):
    """An escalation's body, deliveries and history; acknowledge it, close it, or open the log of its run from here."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("escalation", "scroll")

    def __init__(self, escalation: Escalation, settings: EscalationSettings, now: float) -> None:
        super().__init__()
        self.escalation, self.settings, self.now = escalation, settings, now

    def action_ack(self) -> None:
        self.app.escalation_change(self.escalation.ref, "ack", "")  # type: ignore[attr-defined]
        self.app.pop_screen()

    def action_close(self) -> None:
        self.app.pop_screen()
        self.app._escalations_close(self.escalation.ref)  # type: ignore[attr-defined]  # asks for the reason, then closes

    def action_log(self) -> None:
        """The log of the run this escalation is about (a plugin's failure, or the run that raised it)."""
        related = self.escalation.bead.data.get("related") or ""
        if not related.startswith("run-"):
            self.notify("this escalation is not about a run: there is no run log to open", severity="warning")
            return
        self.app.open_run_log(parse_ref(related, "wisp"))  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        item = self.escalation
        data = item.to_json(self.settings, self.now)
        head = Text.assemble((f"{item.ref} ", "bold"), (f" {item.severity} ", SEVERITY_STYLE[item.severity]), " ",
                             (clean(item.subject), "bold"))
        facts = Text(clean(" · ".join(part for part in (
            f"status {item.status}", f"source {item.source}" if item.source else "",
            f"fingerprint {item.fingerprint} ({data['fingerprint_key']})" if item.fingerprint else "", f"count {item.occurrences}",
            f"raised {data['created_at']}", f"re-escalated {item.reescalations}×" if item.reescalations else "",
            "STALE" if data["stale"] else "") if part)), style="dim")
        with KeyScroll():
            yield Static(head)
            yield Static(facts)
            yield Static(Text(clean(item.bead.body) or "(no body)"), id="body")
            yield Static(self._table("Deliveries", ["at", "channel", "ok", "error"],
                                     [[d["at"], d["channel"], "yes" if d["ok"] else "NO", d["error"] or ""] for d in data["deliveries"]]))
            pending = ", ".join(data["pending"])
            if pending:
                yield Static(Text(f"Waiting for delivery: {pending}", style="yellow"))
            yield Static(self._table("History", ["at", "event", "detail"],
                                     [[h["at"], h["event"], h["detail"]] for h in data["history"]]))
        yield Footer()

    @staticmethod
    def _table(title: str, columns: list[str], rows: list[list[object]]) -> Table:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(clean(in_words(cell) or "")) for cell in row))
        return table

