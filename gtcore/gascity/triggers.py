"""An order's trigger as one of gtui's gates: Gas City's decision and Gas City's reason words.

Pure, like :mod:`gtcore.gates.rules`: the order, what the ledger says of its last
run (its start, as gc's clock is its tracking bead's creation), ``now``, and
for the two triggers that look outside, what was found there: a condition's
check (:class:`gtcore.gates.rules.CheckResult`, gtui runs ``sh -c CHECK`` in the
city or rig root) and an event order's count (:class:`EventCount`, read
from ``.gc/events.jsonl`` by ``seq``).  Source:
``internal/orders/triggers.go`` (``checkCooldown``, ``checkCron``,
``checkCondition``, ``checkEvent``).
"""

from __future__ import annotations

from datetime import tzinfo

from gtcore.core.beads import GateState
from gtcore.core.records import Record
from gtcore.gascity import cron, godur
from gtcore.gascity.orderfile import go_quote
from gtcore.gates.decisions import NOT_CHECKED, CheckResult, GateDecision, GateFacts, check_words, stale
from gtcore.plugins.spec import Plugin


class EventCount(Record):
    """How many events of an event order's type came after its cursor (the ``seq`` its last run recorded)."""

    events: int
    cursor: int


def evaluate(plugin: Plugin, facts: GateFacts, now: float, outside: CheckResult | EventCount | None) -> GateDecision:
    """An order's gate at ``now`` (disabled, paused and in-flight runs were decided by :func:`gtcore.gates.rules.evaluate`)."""
    context = plugin.order
    if context.blocked:
        return GateDecision(GateState.DISABLED, context.blocked)
    order = context.order
    kind = order.trigger
    if kind == "cooldown":
        return cooldown(godur.parse(order.interval), facts.last_started_at, now, plugin.mtime)
    if kind == "cron":
        return cron_gate(order.schedule, order.tz, facts.last_started_at, now)
    if kind == "condition":
        return condition(outside if isinstance(outside, CheckResult) else None, plugin.gate.check_timeout.text, facts, plugin.mtime, now)
    if kind == "event":
        return event(order.on, outside if isinstance(outside, EventCount) else None, now)
    if kind == "manual":
        return GateDecision(GateState.MANUAL, "manual trigger — use gc order run")
    if kind == "webhook":
        return GateDecision(GateState.MANUAL, "webhook trigger — dispatched by the webhook receiver")
    return GateDecision(GateState.ERROR, f"unknown trigger {order.trigger!r}")


def cooldown(interval: int, last: float | None, now: float, mtime: float) -> GateDecision:
    """``checkCooldown``: due once ``interval`` has passed since the last run started (never run: due at once)."""
    if last is None:
        return GateDecision(GateState.OPEN, "never run", since=mtime)
    elapsed = round((now - last) * godur.SECOND)
    if elapsed >= interval:
        return GateDecision(GateState.OPEN, f"elapsed {godur.seconds_text(elapsed)} >= interval {godur.to_string(interval)}",
                            since=last + interval / godur.SECOND)
    ready = last + interval / godur.SECOND
    return GateDecision(GateState.WAITING, f"cooldown: {godur.seconds_text(interval - elapsed)} remaining", next_open_at=ready)


def cron_gate(schedule: str, tz: str, last: float | None, now: float) -> GateDecision:
    """``checkCron``: Gas City's matcher and catch-up, in the order's zone (``tz``, the city's, else gtui's own)."""
    zone = _zone(tz)
    if zone is None:
        return GateDecision(GateState.ERROR, f"bad tz: invalid tz {go_quote(tz)}: unknown time zone {tz}")
    answer = cron.check(schedule, zone, last, now)
    if answer.due:
        return GateDecision(GateState.OPEN, answer.reason, since=now)
    state = GateState.ERROR if answer.reason.startswith("bad cron schedule") else GateState.WAITING
    return GateDecision(state, answer.reason, next_open_at=answer.next_at)


def _zone(tz: str) -> tzinfo | None:
    """The zone an order's cron fields are read in: ``Local`` (or none) is the process's own, as gc's controller reads them."""
    from gtcore.core.clock import local_zone

    if not tz or tz == "Local":
        return local_zone()
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def condition(check: CheckResult | None, timeout: str, facts: GateFacts, mtime: float, now: float) -> GateDecision:
    """``checkCondition``: due when ``sh -c CHECK`` exited 0 within ``check_timeout`` (its output is not read, as gc's is not).
    A check older than the order's last run is said as the last check (:func:`gtcore.gates.rules.condition`)."""
    if check is None or check.missing:
        return GateDecision(GateState.WAITING, check.missing if check is not None else NOT_CHECKED)
    if stale(check, facts):
        return GateDecision(GateState.WAITING, check_words(check, now, "passed (exit 0)", f"failed: {exit_error(check.exit_code)}"))
    if check.timed_out:
        return GateDecision(GateState.WAITING, f"check command timed out after {timeout}")
    if check.error is not None:
        return GateDecision(GateState.WAITING, f"check command failed: {check.error}")
    if check.exit_code == 0:
        return GateDecision(GateState.OPEN, "condition: check passed (exit 0)", since=facts.last_started_at or mtime)
    return GateDecision(GateState.WAITING, f"check command failed: {exit_error(check.exit_code)}")


def exit_error(code: int | None) -> str:
    """Go's ``exec.ExitError`` words: ``exit status 1``, ``signal: killed``."""
    if code is None:
        return "did not exit"
    if code >= 0:
        return f"exit status {code}"
    return f"signal: {SIGNAL_WORDS.get(-code, f'signal {-code}')}"


SIGNAL_WORDS = {1: "hangup", 2: "interrupt", 3: "quit", 4: "illegal instruction", 6: "aborted", 8: "floating point exception",
                9: "killed", 11: "segmentation fault", 13: "broken pipe", 14: "alarm clock", 15: "terminated"}  # Go's syscall.Signal


def event(kind: str, found: EventCount | None, now: float) -> GateDecision:
    """``checkEvent``: due when events of ``kind`` came after the order's cursor (gc's own tracking events never count)."""
    if found is None:
        return GateDecision(GateState.WAITING, "event: not counted yet (the next patrol reads .gc/events.jsonl)")
    if found.events == 0:
        return GateDecision(GateState.WAITING, "event: no matching events")
    return GateDecision(GateState.OPEN, f"event: {found.events} {kind} event(s)", since=now)
