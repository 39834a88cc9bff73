"""Gates: may this plugin run by itself now?

Everything here is a pure function of the plugin, what the ledger knows
(:class:`GateFacts`), the town's events and ``now`` — no clock reads, no I/O —
so every edge case is testable without sleeping.  The one gate that needs the
outside world, ``condition``, takes the outcome of its check as an input
(:class:`CheckResult`); ``gtcore.gates.conditions`` runs the checks.
"""

from __future__ import annotations

import os
from functools import lru_cache

from gtcore.core.beads import GateState
from gtcore.core.clock import age, iso, local_zone
from gtcore.core.durations import format_duration
from gtcore.core.records import TYPE_CHECKING
from gtcore.gates.decisions import NOT_CHECKED, CheckResult, GateDecision, GateFacts, check_words, stale
from gtcore.plugins.spec import Plugin

if TYPE_CHECKING:
    from datetime import tzinfo
    from typing import Any

    from gtcore.storage.contract import EventMark

SLOTS: dict[tuple[str, str, float], tuple[float, str]] = {}
"""Cron slots already found, by (schedule, zone, base): the answer and how it reads.  Filled by :func:`cron`, kept across
processes in the plugin cache (:mod:`gtcore.plugins.cache`), so an idle patrol neither loads croniter nor searches again."""
MAX_SLOTS = 50_000


def evaluate(
    plugin: Plugin,
    facts: GateFacts,
    events: dict[str, EventMark],
    now: float,
    check: CheckResult | Any = None,
) -> GateDecision:
    """Decide one plugin's gate at ``now``; ``check`` is what was found outside: a condition's check (an event order's
    count, :class:`gtcore.gascity.triggers.EventCount`)."""
    if not plugin.runs_by_itself:
        return GateDecision(GateState.DISABLED, plugin.disabled_reason)
    if facts.paused is not None:
        return GateDecision(GateState.PAUSED, f"paused by operator{': ' + facts.paused if facts.paused else ''}")
    if facts.running_run is not None:
        return GateDecision(GateState.RUNNING, f"running ({facts.running_run})")
    if plugin.order is not None:  # a Gas City order: its trigger, in Gas City's words
        from gtcore.gascity.triggers import evaluate as trigger

        return trigger(plugin, facts, now, check)
    kind = plugin.gate.type
    if kind == "cooldown":
        return cooldown(plugin, facts, now)
    if kind == "cron":
        return cron(plugin, facts, now)
    if kind == "condition":
        return condition(plugin, facts, check, now)
    if kind == "event":
        return event(plugin, facts, events, now)
    return GateDecision(GateState.MANUAL, "manual: runs only when asked")


def cooldown(plugin: Plugin, facts: GateFacts, now: float) -> GateDecision:
    """Open when no run started within ``duration`` (running runs count too)."""
    duration = plugin.gate.duration
    assert duration is not None
    if facts.last_started_at is None:
        return GateDecision(GateState.OPEN, "never run", since=plugin.mtime)
    ready_at = facts.last_started_at + duration.seconds
    last = age(facts.last_started_at, now)
    if ready_at <= now:
        return GateDecision(GateState.OPEN, f"last run {last}, cooldown {duration} over", since=ready_at)
    waiting = f"cooling down: last run {last}, opens in {format_duration(ready_at - now)}"
    return GateDecision(GateState.WAITING, waiting, next_open_at=ready_at)


def cron(plugin: Plugin, facts: GateFacts, now: float) -> GateDecision:
    """Open when a schedule slot passed since the last run (or since the file appeared).

    Missed slots catch up with ONE run: after it, the next slot is counted
    from that run's start.
    """
    schedule = plugin.gate.schedule
    assert schedule is not None
    base = facts.last_started_at if facts.last_started_at is not None else plugin.mtime
    key = (schedule, plugin.gate.timezone or f"local:{os.environ.get('TZ', '')}", base)
    known = SLOTS.get(key)
    if known is None:
        try:
            zone = _zone(plugin.gate.timezone)
            slot = next_slot(schedule, zone, base)
        except (ValueError, OverflowError, OSError, ArithmeticError, LookupError):  # croniter's BadDateError is a ValueError
            return GateDecision(GateState.ERROR, f"gate error: schedule '{schedule}' has no slot after {iso(base)}")
        from datetime import datetime

        known = SLOTS[key] = (slot, datetime.fromtimestamp(slot, zone).strftime("%Y-%m-%d %H:%M %Z"))
        if len(SLOTS) > MAX_SLOTS:
            SLOTS.clear()
    slot, shown = known
    if slot <= now:
        return GateDecision(GateState.OPEN, f"slot {shown} is due", since=slot)
    return GateDecision(GateState.WAITING, f"next slot {shown}", next_open_at=slot)


def condition(plugin: Plugin, facts: GateFacts, check: CheckResult | None, now: float) -> GateDecision:
    """Open when ``check`` exited 0; its first output line is the reason.  A check older than the last run answered the
    question that run settled: it is shown as the last check, and the gate waits for the next one."""
    if check is None or check.missing:
        return GateDecision(GateState.WAITING, check.missing if check is not None else NOT_CHECKED)
    if stale(check, facts):
        first = f": {check.first_line}" if check.first_line else ""
        return GateDecision(GateState.WAITING, check_words(check, now, f"passed{first}", f"did not pass{first}"))
    if check.error is not None:
        return GateDecision(GateState.WAITING, f"check could not run: {check.error}")
    if check.timed_out:
        return GateDecision(GateState.WAITING, f"check timed out after {plugin.gate.check_timeout}")
    if check.exit_code == 0:
        return GateDecision(GateState.OPEN, check.first_line or "check passed", since=facts.last_started_at or plugin.mtime)
    return GateDecision(GateState.WAITING, check.first_line or f"check exited {check.exit_code}")


def event(plugin: Plugin, facts: GateFacts, events: dict[str, EventMark], now: float) -> GateDecision:
    """Open when the ``on`` event was emitted after the last run was claimed, by the ledger's order (its ids): a clock
    stepped back, or another host's, cannot hide an event or make an old one new."""
    name = plugin.gate.on
    mark = events.get(name or "")
    if mark is None:
        return GateDecision(GateState.WAITING, f"waiting for event {name}")
    if facts.last_run_id is not None and mark.seq <= facts.last_run_id:
        return GateDecision(GateState.WAITING, f"waiting for event {name} (last seen {age(mark.at, now)}, before the last run)")
    return GateDecision(GateState.OPEN, f"event {name} emitted {age(mark.at, now)}", since=mark.at)


def _zone(name: str | None) -> tzinfo:
    if not name:
        return local_zone()
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


ALIASES = {  # what each @ shorthand stands for, as cron and croniter define them
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


@lru_cache(maxsize=8192)
def next_slot(schedule: str, zone: tzinfo, base: float) -> float:
    """The first slot of ``schedule`` strictly after ``base``, as a UNIX time.

    When clocks fall back, a fixed-hour job (``30 2 * * *``) would see its wall
    time twice; like cron, it runs at the first one only.  An ``@`` shorthand
    is the expression it stands for (``@daily`` is ``0 0 * * *``, a fixed-hour
    job: a zone that falls back at midnight must not run it twice).  Cached:
    the answer only changes when the plugin runs.
    """
    from datetime import datetime

    from croniter import croniter  # only when a slot is not known yet: an idle patrol never loads it

    expression = ALIASES.get(schedule.strip().lower(), schedule)
    fields = expression.split()
    fixed_hour = len(fields) > 1 and not fields[1].startswith("*")
    it = croniter(expression, datetime.fromtimestamp(base, zone))
    while True:
        slot = it.get_next(float)
        local = datetime.fromtimestamp(slot, zone)
        repeated = local.replace(fold=0).utcoffset() != local.utcoffset() and local.fold == 1
        if not (fixed_hour and repeated):
            return slot
