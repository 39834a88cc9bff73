"""What the control room shows, collected off the UI thread and turned into rows.

:class:`Collector` runs in a thread worker: it reads the engine and the ledger
and returns an immutable :class:`Snapshot`.  The ``*_rows`` functions are pure:
snapshot (and ``now``) in, ``{row key: cells}`` out.  The UI thread only diffs
those rows into its tables, so nothing it does waits on I/O.

A source that fails (ledger, settings, escalation settings) is kept in
``Snapshot.errors`` and its last good data stays on screen, marked as stale
by the header: a failing source says so instead of looking healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.text import Text

from gtcore.core.errors import GtError
from gtcore.model import (
    TYPE_CHECKING,
    EscalationSettings,
    EscalationStatus,
    GateState,
    Result,
    Severity,
    age,
    clean,
    format_duration,
    run_reason,
)
from gtui.cli.render import pause_words
from gtui.tui.styles import RESULT_MARK, RESULT_STYLE, SEVERITY_CELL_STYLE, colourless_text

if TYPE_CHECKING:
    from gtcore.engine import Engine
    from gtcore.model import Bead, Escalation, GateDecision, Pause, Plugin, PluginSet, PluginStats

FEED_OVERLAP = 5.0  # seconds re-read each poll: a slower writer may commit an older timestamp late
SEVERITY_RANK: dict[str, int] = {severity: rank for rank, severity in enumerate(Severity)}  # lowest first, as Severity is
QUIET_GATES = (GateState.DISABLED, GateState.PAUSED)  # a person switched them off: dim, not a state to watch
OPEN_MARK = "● "  # an open gate, a failure, an invalid file: said by a character too, so NO_COLOR loses nothing
ERROR_MARK = "! "
OVER_MARK = "⚠ "  # a run past its timeout


class Cell(Text):
    """A table cell: literal text, and the value a pane sorts it by (``None``: by its text, numbers as numbers)."""

    __slots__ = ("sort_key",)

    def __init__(self, value: str, style: str = "", sort_key: float | None = None) -> None:
        super().__init__(value, style=style, no_wrap=True, overflow="ellipsis")
        self.sort_key = sort_key


Row = tuple[Text, ...]


def text(value: object, style: str = "", sort: float | None = None) -> Cell:
    """A table cell: literal text (never markup), control sequences stripped; ``sort`` orders it when its pane is sorted by it."""
    return Cell(clean("" if value is None else str(value)), style, sort)


MakeCell = Callable[..., Cell]  # text(value, style, sort) or a CellPool


class CellPool:
    """Cells by what they say (text, style, sort key): an equal cell asked for again is the same object.

    The plugins pane's rows are built afresh on every collect, and most of their
    cells say what they said the last time (a rig, a gate, ``enabled``, a state):
    pooled, those are the objects the table holds already, not thousands of equal
    new ones.  The pool keeps the cells of the last build only.  A pooled cell is
    never appended to (a cell that grows is made with :func:`text`); NO_COLOR's
    :func:`colourless_rows` changes one alike every time, so that holds too.
    Used by one thread (the collector's).
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, float | None], Cell] = {}
        self._now: dict[tuple[str, str, float | None], Cell] = {}

    def __call__(self, value: object, style: str = "", sort: float | None = None) -> Cell:
        key = ("" if value is None else str(value), style, sort)
        cell = self._now.get(key)
        if cell is None:
            cell = self._last.get(key) or text(value, style, sort)
            self._now[key] = cell
        return cell

    def turn(self) -> None:
        """A build is done: the cells it used are kept for the next one, the rest let go."""
        self._last, self._now = self._now, {}


def colourless_rows(rows: dict[str, Row]) -> dict[str, Row]:
    """For NO_COLOR: the rows' cells without colours (their marks, bold, dim and reverse say it all)."""
    for cells in rows.values():
        for cell in cells:
            colourless_text(cell)
    return rows


def result_text(result: str | None) -> str:
    """A run's result as a cell says it: failures with a mark that survives NO_COLOR (``✗ failure``)."""
    return f"{RESULT_MARK.get(result or '', '')}{result or ''}"


@dataclass(frozen=True)
class Snapshot:
    """Everything the four panes and the header need, at one moment."""

    taken_at: float
    plugin_set: PluginSet | None = None
    summary: dict[str, PluginStats] = field(default_factory=dict)
    decisions: dict[str, GateDecision] = field(default_factory=dict)
    paused: dict[str, str] = field(default_factory=dict)  # name -> the reason given, as the gates take it
    pauses: dict[str, Pause] = field(default_factory=dict)  # name -> why, who and when
    running: tuple[Bead, ...] = ()  # every run in flight, queued or running, on any host
    kennels: tuple[dict[str, Any], ...] = ()  # the town's kennels (Engine.kennels), each with its dogs
    escalations: tuple[Escalation, ...] = ()
    escalation_settings: EscalationSettings | None = None
    feed: tuple[Bead, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    notices: tuple[str, ...] = ()  # worth a lasting line, not an error (Gas Town's daemon runs plugins too)


class Collector:
    """Reads the engine into snapshots; keeps the feed cursor and last good data."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.plugin_set: PluginSet | None = None
        self.scanned_at = float("-inf")  # time.monotonic() when the scan in plugin_set began: an older scan must not replace it
        self._feed_since = 0.0
        self._last: Snapshot | None = None

    def rescan(self) -> None:
        """Re-read plugin files and the town's own settings (after a file change or a patrol)."""
        began = time.monotonic()
        self.plugin_set = self.engine.plugins()
        self.scanned_at = began

    def collect(self, *, feed_backlog: float = 3600.0) -> Snapshot:
        now = self.clock()
        errors: dict[str, str] = {}
        last = self._last or Snapshot(now)
        if self.plugin_set is None:
            try:
                self.rescan()
            except GtError as exc:
                errors["plugins"] = str(exc)
        plugin_set = self.plugin_set
        try:
            ledger_part = self._ledger_part(now, feed_backlog, plugin_set)
        except GtError as exc:
            errors["ledger"] = str(exc)
            ledger_part = {"summary": last.summary, "paused": last.paused, "pauses": last.pauses, "running": last.running,
                           "escalations": last.escalations, "feed": (), "decisions": last.decisions}
        escalation_settings: EscalationSettings | None  # the last ones when they cannot be read now (none at first)
        try:
            escalation_settings = self.engine.escalation_settings()
        except GtError as exc:
            errors["escalation settings"] = str(exc)
            escalation_settings = last.escalation_settings
        else:
            for problem in escalation_settings.problems:
                if problem.level == "error":  # used, but part of it cannot deliver: a person must hear of it
                    errors.setdefault("escalation settings", str(problem))
        try:
            kennels = tuple(self.engine.kennels(list(ledger_part["running"])))
        except GtError as exc:
            errors.setdefault("ledger", str(exc))
            kennels = last.kennels
        # Read on every collect, not with the plugin scan: the scan may be a patrol's, and
        # mayor/daemon.json changes without any plugin file changing.
        notices = tuple(str(problem) for problem in self.engine.notices())
        snapshot = Snapshot(
            taken_at=now,
            plugin_set=plugin_set,
            kennels=kennels,
            escalation_settings=escalation_settings,
            errors=errors,
            notices=notices,
            **ledger_part,
        )
        self._last = snapshot
        return snapshot

    def _ledger_part(self, now: float, feed_backlog: float, plugin_set: PluginSet | None) -> dict[str, Any]:
        engine = self.engine
        summary = engine.summary()
        pauses = engine.pauses()
        paused = {name: pause.reason for name, pause in pauses.items()}
        running = tuple(engine.runs_in_flight())
        since = self._feed_since - FEED_OVERLAP if self._feed_since else now - feed_backlog
        feed = tuple(engine.runs_changed_since(since))
        if feed:
            self._feed_since = max(self._feed_since, max(run.updated_at for run in feed))
        elif not self._feed_since:
            self._feed_since = now - FEED_OVERLAP
        escalations = tuple(engine.list_escalations(now=now))
        decisions = engine.gate_decisions(plugin_set.plugins, summary, running, paused, now) if plugin_set is not None else {}
        return {"summary": summary, "paused": paused, "pauses": pauses, "running": running, "escalations": escalations,
                "feed": feed, "decisions": decisions}


# -- rows -------------------------------------------------------------------------------------


def plugin_rows(snapshot: Snapshot, now: float, cell: MakeCell = text) -> dict[str, Row]:
    """The plugins pane: one row per plugin (and Gas City order), then one per invalid file (bold, marked ``! invalid``).

    The last column says each row's kind once the town has orders; without
    any it stays empty (and the pane hides it).  ``cell`` makes the cells after
    a plugin's name (a :class:`CellPool`, for the control room's collects).
    """
    rows: dict[str, Row] = {}
    if snapshot.plugin_set is None:
        return rows
    kinds = snapshot.plugin_set.city is not None
    for plugin in snapshot.plugin_set.plugins:
        kind = cell(plugin.kind if kinds else "", "dim")
        try:
            rows[plugin.name] = (*plugin_row(plugin, snapshot, now, cell), kind)
        except Exception as exc:  # a bug showing one plugin costs that row, never the pane
            rows[plugin.name] = (text(plugin.name, "bold red"), text(plugin.rig), text(plugin.gate.type), *(text("") for _ in range(5)),
                                 text(f"{ERROR_MARK}cannot be shown (a bug in gtui): {type(exc).__name__}: {exc}", "bold red"), kind)
    for bad in snapshot.plugin_set.invalid:
        where = f"{bad.path.parent.name}/{bad.path.name}" + (f":{bad.line}" if bad.line else "")
        toml = bad.path.suffix == ".toml"  # a city's order file (or city.toml): named by its file, not its directory
        key = f"invalid:{bad.path}"
        if key in rows:  # one file, several complaints (a pack order in two rigs, city.toml's overrides)
            key += f"#{sum(1 for known in rows if known.startswith(key))}"
        rows[key] = (
            text(bad.path.name if toml else bad.path.parent.name, "bold red"), text(bad.rig, "red"),
            text(f"{ERROR_MARK}invalid", "bold red"), *(text("") for _ in range(5)), text(f"{where}: {bad.error}", "red"),
            text(("order" if toml else "plugin") if kinds else "", "dim"),
        )
    return rows


def plugin_row(plugin: Plugin, snapshot: Snapshot, now: float, cell: MakeCell = text) -> Row:
    stats = snapshot.summary.get(plugin.name)
    name = text(plugin.name, "bold")  # never pooled: the pane orders its rows by their first cells' identity
    if plugin.shadowed:  # the same name elsewhere, hidden by this copy: `gtui plugin list` says so too
        name.append(f" +{len(plugin.shadowed)} shadowed", "dim")
    return (
        name,
        cell(plugin.rig),
        cell(plugin.gate.type),
        enabled_cell(plugin.runs_by_itself, snapshot.paused.get(plugin.name), cell),
        cell(age(stats.last_started_at, now) if stats else "never", sort=stats.last_started_at if stats else 0.0),
        result_cell(stats, cell),
        cell(stats.run_count if stats else 0, sort=stats.run_count if stats else 0),
        failure_rate(stats, cell),
        state_cell(plugin, snapshot, now, cell),
    )


def state_cell(plugin: Plugin, snapshot: Snapshot, now: float, cell: MakeCell = text) -> Text:
    """The state column: a paused plugin's pause (who, when, why: ``paused 2h ago by ann@box: new disk``), else its gate."""
    pause = snapshot.pauses.get(plugin.name)
    if pause is not None and plugin.runs_by_itself:
        return cell(pause_words(pause, now), "yellow")
    return gate_cell(snapshot.decisions.get(plugin.name), plugin.gate.type == "cooldown", now, cell)


def result_cell(stats: PluginStats | None, cell: MakeCell = text) -> Text:
    """The last result, and the plugin's own summary of that run when it gave one ("skipped · not safe to rebuild")."""
    if stats is None:
        return cell("-", "dim")
    if not stats.last_summary:
        return cell(result_text(stats.last_result), RESULT_STYLE.get(stats.last_result, ""))
    said = text(result_text(stats.last_result), RESULT_STYLE.get(stats.last_result, ""))  # appended to: never pooled
    said.append(f" · {clean(stats.last_summary)}", "dim")
    return said


def gate_cell(decision: GateDecision | None, counts_down: bool, now: float, cell: MakeCell = text) -> Text:
    """A gate as the plugins pane shows it, styled by its state; when it may open is added unless ``counts_down``
    says the reason counts down to it already (a cooldown's "opens in 55m")."""
    if decision is None:
        return cell("…", "dim")
    if decision.state is GateState.OPEN:
        return cell(f"{OPEN_MARK}open: {decision.reason}", "bold green")
    if decision.state is GateState.ERROR:
        return cell(f"{ERROR_MARK}{decision.reason}", "bold red")
    when = f" (opens {age(decision.next_open_at, now)})" if decision.next_open_at and not counts_down else ""
    return cell(f"{decision.reason}{when}", "dim" if decision.state in QUIET_GATES else "")


def enabled_cell(enabled: bool, paused: str | None, cell: MakeCell = text) -> Text:
    if not enabled:
        return cell("disabled", "yellow")
    if paused is not None:
        return cell("paused", "yellow")
    return cell("enabled", "green")


def failure_rate(stats: PluginStats | None, cell: MakeCell = text) -> Text:
    """How many runs failed and what share of all runs that is (``3 · 30%``)."""
    if stats is None or not stats.run_count:
        return cell("-", "dim")
    rate = stats.failure_rate
    return cell(f"{stats.failure_count} · {rate:.0%}", "bold red" if rate >= 0.5 else "yellow" if rate > 0 else "green", sort=rate)


def dog_rows(snapshot: Snapshot, now: float) -> dict[str, Row]:
    """The dogs pane: each kennel (host, pid, heartbeat) and its dogs, working or idle; then the runs waiting for a dog.

    A working dog's row is keyed by its run (``run:run-12``), so details, log
    and stop act on the run; a run whose kennel is gone shows too, until a
    patrol closes it.
    """
    rows: dict[str, Row] = {}
    working = {((run.data.get("owner") or {}).get("host"), (run.data.get("owner") or {}).get("pid"), run.data.get("dog")): run
               for run in snapshot.running if run.status == Result.RUNNING}
    if not snapshot.kennels:
        rows["kennel:none"] = (text("no kennel", "dim"), text(""), text("starts with a run", "dim"), text(""), text(""))
    for kennel in snapshot.kennels:
        host, pid = kennel["host"], kennel["pid"]
        beat = f"♥ {format_duration(kennel['beat_age_s'])} ago" if kennel["beat_age_s"] is not None else "♥ now"
        state = ("draining" if kennel["draining"] else "alive") if kennel["alive"] else "gone"
        rows[f"kennel:{host}:{pid}"] = (text(f"kennel {host}", "bold"), text(state, "green" if kennel["alive"] else "bold red"),
                                        text(f"pid {pid}", "dim"), text("patrols" if kennel["patrol"] else "", "dim"), text(beat, "dim"))
        for dog in kennel["dogs"] if kennel["alive"] else ():
            run = working.pop((host, pid, dog.get("name")), None)
            if run is None:
                rows[f"idle:{host}:{pid}:{dog.get('name')}"] = (text(f"  {dog.get('name')}", "bold"), text("idle", "dim"), text(""),
                                                                 text(""), text(""))
            else:
                rows[f"run:{run.ref}"] = _working_row(f"  {dog.get('name')}", run, now)
    for run in working.values():  # its kennel is gone or has not beaten yet
        owner = run.data.get("owner") or {}
        rows[f"run:{run.ref}"] = _working_row(f"{run.data.get('dog', '?')}@{owner.get('host', '?')}", run, now)
    for run in snapshot.running:
        if run.status == Result.QUEUED:
            rows[f"run:{run.ref}"] = (text("queue", "dim"), text("queued", "yellow"), text(run.plugin), text(run.ref),
                                      text(f"waits {format_duration(max(0.0, now - run.created_at))}", "yellow", sort=now - run.created_at))
    return rows


def _working_row(name: str, run: Bead, now: float) -> Row:
    return (text(name, "bold"), text("working", "bold cyan"), text(run.plugin), text(run.ref),
            elapsed(run.data.get("started_at", run.created_at), run.data.get("timeout_s"), now))


def elapsed(started: float | None, timeout: float | None, now: float) -> Text:
    """How long a run has run, against its timeout: yellow past half, red near it, marked ``⚠`` once past it
    (its kennel is stopping it; a mark that stays says the kill is slow)."""
    if started is None:
        return text("")
    spent = max(0.0, now - started)
    share = spent / timeout if timeout else 0.0
    style = "bold red" if share >= 0.9 else "yellow" if share >= 0.5 else ""
    limit = f" / {format_duration(timeout)}" if timeout else ""
    return text(f"{OVER_MARK if share > 1 else ''}{format_duration(spent)}{limit}", style, sort=spent)


def escalation_rows(snapshot: Snapshot, now: float) -> dict[str, Row]:
    """The escalation queue: open and acknowledged, worst first: by severity (critical, high, medium, low), then the
    one waiting longest first (the oldest critical is the most overdue; a new one of the same severity lines up after it)."""
    rows: dict[str, Row] = {}
    settings = snapshot.escalation_settings or EscalationSettings()
    for item in sorted(snapshot.escalations, key=worst_first):
        notes = [note.upper() if note == "stale" else note for note in item.notes(settings, now)]
        rows[item.ref] = (
            text(item.ref, "bold"),
            text(item.severity, SEVERITY_CELL_STYLE[item.severity], sort=SEVERITY_RANK[item.severity]),
            text(item.status, "dim" if item.status == EscalationStatus.ACKED else "bold"),
            text(age(item.bead.created_at, now), sort=now - item.bead.created_at),
            text(f"×{item.occurrences}", sort=item.occurrences),
            text(" · ".join(notes), "bold yellow"),
            text(item.subject),
        )
    return rows


def reason_words(run: Bead) -> str:
    """Why a run ended as it did: its summary (marked when gtui took it from the run's last log line), then its
    reason when that says more (``about to fail (its last log line) · exited 3``); "" when nothing says why."""
    why = run_reason(run) or ""  # the summary, marked by the engine when it came from the log
    reason = str(run.data.get("reason") or "")
    if reason and reason not in why:
        why = f"{why} · {reason}" if why else reason
    return clean(why)


def worst_first(item: Escalation) -> tuple[int, float, int]:
    """The escalation queue's order: most severe first, then oldest first (then by id, so equal times keep one order)."""
    return (-SEVERITY_RANK[item.severity], item.bead.created_at, item.bead.id)


def outcome_words(run: Bead) -> str:
    """How a finished run ended, in words (``failure in 2s: about to fail (its last log line) · exited 3``): the feed's
    event, a failure's toast."""
    duration = run.data.get("duration_s")
    took = f" in {format_duration(duration)}" if isinstance(duration, int | float) else ""
    why = reason_words(run)
    return f"{run.result or ''}{took}" + (f": {why}" if why else "")


def feed_line(run: Bead) -> tuple[tuple[int, str], Row]:
    """One feed row for a run's latest state, keyed so each state shows once."""
    stamp = run.closed_at or run.data.get("started_at") or run.created_at
    clock = datetime.fromtimestamp(stamp).strftime("%H:%M:%S")
    if run.status == Result.QUEUED:
        event = text("queued for a dog", "dim")
    elif run.status == Result.RUNNING:
        event = text(f"started on {run.data.get('dog', '?')}", "cyan")
    else:
        event = text(f"{RESULT_MARK.get(run.result or '', '')}{outcome_words(run)}", RESULT_STYLE.get(run.result or "", ""))
    return (run.id, run.status if run.status != "closed" else str(run.result)), (
        text(clock, "dim", sort=stamp), text(run.plugin, "bold"), text(run.ref, sort=run.id), event)
