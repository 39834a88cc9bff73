"""What the town is, in one read: each plugin's facts (its last run, failure streak, pause, when it is next due), the
open escalations counted, and one health word with its reasons.

``gtui --once --json`` and ``gtui plugin list --json`` say these, so that one read answers the Deacon's two
questions: is the town healthy, and what needs me.  Everything here is computed from what the caller read
already, plus one read of the last runs; the rules of the health word live in :func:`health` alone.
"""

from __future__ import annotations

from enum import StrEnum

from gtcore.core.beads import FAILED, SEVERITIES, Bead, PluginStats, Result
from gtcore.core.errors import Problem
from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gtcore.escalation.escalations import Escalation
    from gtcore.escalation.settings import EscalationSettings
    from gtcore.gates.decisions import GateDecision
    from gtcore.plugins.discovery import InvalidPlugin
    from gtcore.plugins.spec import Plugin
    from gtcore.storage.contract import Ledger, Pause

ENDED_BADLY = FAILED | {Result.ABANDONED}  # the results that make a failure streak
URGENT = ("critical", "high")  # open, unacknowledged escalations of these severities make a town failing


class HealthWord(StrEnum):
    """The town in one word, worst last."""

    OK = "ok"
    DEGRADED = "degraded"  # something is off, nothing is failing: invalid files, warnings, escalations waiting, stale ones
    FAILING = "failing"  # a plugin's last runs failed, an urgent escalation waits, a person cannot be reached, a result is not recorded


class PluginFacts(Record):
    """One plugin as the ledger knows it: its summary, its last run (whole), its pause, and its gate now (when decided)."""

    stats: PluginStats | None
    last_run: Bead | None
    pause: Pause | None
    decision: GateDecision | None

    @property
    def streak(self) -> int:
        return self.stats.failure_streak if self.stats is not None else 0


class EscalationCounts(Record):
    """The escalations not closed, counted: by severity, how many nobody acknowledged, which are stale."""

    open: int
    by_severity: dict[str, int]
    unacknowledged: dict[str, list[str]]  # severity -> refs of the open, unacknowledged ones
    stale: list[str]


class Health(Record):
    word: HealthWord
    reasons: list[str]  # worst first, each one line a person acts on


def plugin_facts(ledger: Ledger, plugins: Iterable[Plugin], summary: Mapping[str, PluginStats], pauses: Mapping[str, Pause],
                 decisions: Mapping[str, GateDecision] | None = None) -> dict[str, PluginFacts]:
    """Every plugin's facts by name; its last run read without its labels (one light read for all of them)."""
    names = [plugin.name for plugin in plugins]
    wanted = [summary[name].last_run_id for name in names if name in summary]
    runs = {run.id: run for run in ledger.bare_runs(wanted)} if wanted else {}
    facts = {}
    for name in names:
        stats = summary.get(name)
        last = runs.get(stats.last_run_id) if stats is not None else None
        facts[name] = PluginFacts(stats, last, pauses.get(name), (decisions or {}).get(name))
    return facts


def escalation_counts(escalations: Iterable[Escalation], settings: EscalationSettings | None, now: float) -> EscalationCounts:
    """The escalations not closed, counted (``settings``: for the stale threshold; None when they cannot be read)."""
    items = [item for item in escalations if item.status != "closed"]
    by_severity = dict.fromkeys(SEVERITIES, 0)
    unacknowledged: dict[str, list[str]] = {severity: [] for severity in SEVERITIES}
    for item in items:
        by_severity[item.severity] = by_severity.get(item.severity, 0) + 1
        if item.status == "open":
            unacknowledged.setdefault(item.severity, []).append(item.ref)
    stale = [item.ref for item in items if settings is not None and item.is_stale(settings, now)]
    return EscalationCounts(len(items), by_severity, unacknowledged, stale)


def health(plugins: Iterable[tuple[Plugin, PluginFacts]], invalid: Iterable[InvalidPlugin], escalations: EscalationCounts,
           problems: Iterable[Problem], abandoned: Iterable[Bead] = (), urgent: Iterable[str] = ()) -> Health:
    """The town's health word and its reasons, worst first.

    failing: a plugin that runs by itself whose last run ended badly (its
    streak); an open, unacknowledged critical or high escalation; ``urgent``
    (a person cannot be reached, a result not recorded).  degraded: invalid
    plugin files, problems, escalations waiting for a person or stale, runs
    abandoned by this patrol, a paused or disabled plugin whose last run failed,
    a failure recorded by a receipt.  ok: none of these.
    """
    failing: list[str] = list(urgent)
    degraded: list[str] = []
    for plugin, facts in plugins:
        if facts.streak:
            aside = _aside(plugin, facts)
            (degraded if aside else failing).append(_streak_words(plugin, facts, aside))
    for severity in URGENT:
        refs = escalations.unacknowledged.get(severity, [])
        if refs:
            failing.append(f"{_count(len(refs), f'{severity} escalation')} not acknowledged: {', '.join(refs)}")
    waiting = [ref for severity, refs in escalations.unacknowledged.items() if severity not in URGENT for ref in refs]
    if waiting:
        degraded.append(f"{_count(len(waiting), 'escalation')} not acknowledged: {', '.join(waiting)}")
    if escalations.stale:
        degraded.append(f"{_count(len(escalations.stale), 'escalation')} stale: {', '.join(escalations.stale)}")
    for bad in invalid:
        degraded.append(f"invalid {'plugin ' + bad.name if bad.name else 'file'}: {bad.location()}: {bad.error}")
    degraded += [str(problem) for problem in problems if problem.reason not in failing]
    for run in abandoned:
        degraded.append(f"{run.ref} of {run.plugin} abandoned: {run.data.get('reason') or 'its owner went away'}")
    word = HealthWord.FAILING if failing else HealthWord.DEGRADED if degraded else HealthWord.OK
    return Health(word, failing + degraded)


def _aside(plugin: Plugin, facts: PluginFacts) -> str:
    """Why a failure streak deserves a look but does not fail the town ("" when it fails it): the plugin is paused,
    disabled or manual (no gate will run it again: nothing fails on its own), or its last run is a receipt (``gt
    plugin record-run`` from elsewhere: a record someone wrote, not a run gtui ran)."""
    receipt = facts.last_run is not None and bool(facts.last_run.data.get("receipt"))
    return ("paused" if facts.pause is not None else "disabled" if not plugin.runs_by_itself
            else "manual" if plugin.gate.type == "manual" else "a receipt" if receipt else "")


def _streak_words(plugin: Plugin, facts: PluginFacts, aside: str) -> str:
    run = facts.last_run
    last = f"{run.ref} {run.result}" if run is not None else (facts.stats.last_result if facts.stats else "?")
    why = run_reason(run) if run is not None else None
    runs = "its last run" if facts.streak == 1 else f"its last {facts.streak} runs"
    note = f" ({aside})" if aside else ""
    return f"plugin {plugin.name}{note}: {runs} ended badly; last {last}" + (f": {why}" if why else "")


def run_summary(run: Bead) -> str:
    """A run's summary as people read it: marked when gtui took it from the last line of the log (the plugin said none)."""
    body = (run.body or "").strip()
    return f"{body} (its last log line)" if body and run.data.get("summary_from_log") else body


def run_reason(run: Bead) -> str | None:
    """Why a run ended as it did, in one line: its summary when it has one, else its reason."""
    return run_summary(run) or run.data.get("reason") or None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
