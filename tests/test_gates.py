"""Gates are pure functions of (plugin, ledger facts, events, now): every edge case without sleeping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gtcore.core.clock import local_zone
from gtcore.core.durations import parse_duration
from gtcore.gates.decisions import CheckResult, GateDecision, GateFacts, unchecked
from gtcore.gates.rules import ALIASES, cooldown, cron, evaluate
from gtcore.model import GateState
from gtcore.plugins.spec import Execution, Gate, Plugin, parse_plugin
from gtcore.storage.contract import EventMark

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
HAVANA = ZoneInfo("America/Havana")  # falls back at midnight: on 2026-11-01 (a Sunday, the 1st) 00:00-01:00 happens twice
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
MTIME = NOW - 30 * 86400
NEVER = GateFacts()


def make(gate: Gate, **fields: object) -> Plugin:
    """A plugin built in memory: the gates never touch the disk."""
    base = Plugin(name="p", file="/nonexistent/p/plugin.md", rig="town", gate=gate, execution=Execution(type="agent"), mtime=MTIME)
    return base._replace(**fields)


def cooldown_plugin(duration: str = "1h", **fields: object) -> Plugin:
    return make(Gate(type="cooldown", duration=parse_duration(duration)), **fields)


def cron_plugin(schedule: str, timezone: str | None = "UTC", **fields: object) -> Plugin:
    return make(Gate(type="cron", schedule=schedule, timezone=timezone), **fields)


def condition_plugin(**fields: object) -> Plugin:
    return make(Gate(type="condition", check="true"), **fields)


def event_plugin(on: str = "deploy", **fields: object) -> Plugin:
    return make(Gate(type="event", on=on), **fields)


def at(zone: ZoneInfo, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


def ran(started: float, run_id: int = 100) -> GateFacts:
    """A plugin whose last run started at ``started`` and is run ``run_id`` in the ledger's order."""
    return GateFacts(last_started_at=started, last_run_id=run_id)


def emitted(at: float, seq: int) -> EventMark:
    """An event's latest emission at ``at``, ``seq`` in the ledger's order."""
    return EventMark(at, seq)


# --- cooldown ---------------------------------------------------------------


def test_cooldown_never_run_is_open_since_the_file_appeared() -> None:
    decision = evaluate(cooldown_plugin(), NEVER, {}, NOW)
    assert decision == GateDecision(GateState.OPEN, "never run", since=MTIME)


def test_cooldown_within_duration_is_closed_until_last_plus_duration() -> None:
    last = NOW - 600
    decision = evaluate(cooldown_plugin("1h"), ran(last), {}, NOW)
    assert not decision.open
    assert decision.reason.startswith("cooling down")
    assert "10m ago" in decision.reason and "opens in 50m" in decision.reason
    assert decision.next_open_at == last + 3600
    assert decision.since is None


def test_cooldown_is_open_exactly_at_the_boundary_and_closed_just_before() -> None:
    last = NOW - 3600
    at_boundary = evaluate(cooldown_plugin("1h"), ran(last), {}, NOW)
    assert at_boundary.open
    assert "cooldown 1h over" in at_boundary.reason
    assert at_boundary.since == last + 3600
    just_before = evaluate(cooldown_plugin("1h"), ran(last), {}, NOW - 0.001)
    assert not just_before.open
    assert just_before.next_open_at == NOW


def test_cooldown_long_over_opens_since_last_plus_duration() -> None:
    last = NOW - 5 * 3600
    decision = evaluate(cooldown_plugin("1h30m"), ran(last), {}, NOW)
    assert decision.open
    assert decision.reason == "last run 5h ago, cooldown 1h30m over"
    assert decision.since == last + 5400


def test_a_running_run_keeps_every_gate_closed() -> None:
    facts = GateFacts(last_started_at=NOW - 2 * 86400, running_run="run-42")
    for plugin in (cooldown_plugin("1h"), cron_plugin("0 * * * *"), event_plugin()):
        decision = evaluate(plugin, facts, {"deploy": emitted(NOW - 1, 200)}, NOW)
        assert decision == GateDecision(GateState.RUNNING, "running (run-42)")
    assert evaluate(condition_plugin(), facts, {}, NOW, CheckResult(0, "ok")) == GateDecision(GateState.RUNNING, "running (run-42)")


def test_a_running_run_started_within_the_duration_counts_as_the_last_start() -> None:
    # The ledger reports a running run's start as last_started_at: even once it
    # finished (running_run cleared) the cooldown counts from when it started.
    started = NOW - 120
    assert not cooldown(cooldown_plugin("5m"), GateFacts(last_started_at=started, running_run="r1"), NOW).open
    after = evaluate(cooldown_plugin("5m"), GateFacts(last_started_at=started), {}, NOW)
    assert not after.open
    assert after.next_open_at == started + 300


# --- cron ---------------------------------------------------------------------


def test_cron_never_run_counts_from_the_plugin_file_mtime(tmp_path: Path) -> None:
    directory = tmp_path / "nightly"
    directory.mkdir()
    path = directory / "plugin.md"
    path.write_text('+++\nname = "nightly"\n[gate]\ntype = "cron"\nschedule = "0 * * * *"\ntimezone = "UTC"\n+++\nDo it.\n')
    mtime = datetime(2026, 6, 15, 10, 5, tzinfo=UTC).timestamp()
    os.utime(path, (mtime, mtime))
    plugin = parse_plugin(path)
    assert isinstance(plugin, Plugin)
    assert plugin.mtime == mtime
    closed = evaluate(plugin, NEVER, {}, mtime + 20 * 60)
    assert closed == GateDecision(GateState.WAITING, "next slot 2026-06-15 11:00 UTC", next_open_at=mtime + 55 * 60)
    due = evaluate(plugin, NEVER, {}, mtime + 55 * 60)
    assert due == GateDecision(GateState.OPEN, "slot 2026-06-15 11:00 UTC is due", since=mtime + 55 * 60)


def test_cron_daily_job_created_after_todays_slot_waits_for_tomorrow() -> None:
    plugin = cron_plugin("0 3 * * *", mtime=at(UTC, 2026, 6, 15, 9, 0))
    decision = evaluate(plugin, NEVER, {}, at(UTC, 2026, 6, 15, 23, 59))
    assert not decision.open
    assert decision.next_open_at == at(UTC, 2026, 6, 16, 3, 0)


def test_cron_opens_when_a_slot_passed_since_the_last_run() -> None:
    plugin = cron_plugin("*/15 * * * *")
    last = at(UTC, 2026, 6, 15, 10, 1)
    closed = evaluate(plugin, ran(last), {}, at(UTC, 2026, 6, 15, 10, 14))
    assert closed == GateDecision(GateState.WAITING, "next slot 2026-06-15 10:15 UTC", next_open_at=at(UTC, 2026, 6, 15, 10, 15))
    opened = evaluate(plugin, ran(last), {}, at(UTC, 2026, 6, 15, 10, 16))
    assert opened == GateDecision(GateState.OPEN, "slot 2026-06-15 10:15 UTC is due", since=at(UTC, 2026, 6, 15, 10, 15))


def test_cron_three_missed_slots_give_one_run() -> None:
    plugin = cron_plugin("0 * * * *")
    last = at(UTC, 2026, 6, 15, 10, 0)
    now = at(UTC, 2026, 6, 15, 13, 30)  # 11:00, 12:00 and 13:00 were missed
    missed = evaluate(plugin, ran(last), {}, now)
    assert missed.open
    assert missed.since == at(UTC, 2026, 6, 15, 11, 0)  # waiting since the first missed slot
    caught_up = evaluate(plugin, ran(now), {}, now)  # the one catch-up run starts at 13:30
    assert not caught_up.open
    assert caught_up.next_open_at == at(UTC, 2026, 6, 15, 14, 0)
    assert not evaluate(plugin, ran(now), {}, at(UTC, 2026, 6, 15, 13, 59, 59)).open


def test_cron_run_exactly_at_a_slot_waits_for_the_next_one() -> None:
    slot = at(UTC, 2026, 6, 15, 10, 0)
    decision = evaluate(cron_plugin("0 * * * *"), ran(slot), {}, slot + 1)
    assert not decision.open
    assert decision.next_open_at == slot + 3600


def simulate(plugin: Plugin, start: float, end: float, step: float = 60.0) -> list[float]:
    """A patrol ticking every ``step`` seconds that starts a run whenever the gate opens."""
    runs: list[float] = []
    now = start
    while now < end:
        facts = ran(runs[-1]) if runs else ran(start)
        if evaluate(plugin, facts, {}, now).open:
            runs.append(now)
        now += step
    return runs


def local_times(runs: list[float], zone: ZoneInfo) -> list[str]:
    return [datetime.fromtimestamp(run, zone).strftime("%m-%d %H:%M%z") for run in runs]


def test_cron_dst_spring_forward_fixed_time_job_still_fires_once_at_0300_paris() -> None:
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST, so 02:30 never exists.
    plugin = cron_plugin("30 2 * * *", "Europe/Paris")
    runs = simulate(plugin, at(PARIS, 2026, 3, 28, 12, 0), at(PARIS, 2026, 3, 30, 12, 0))
    assert local_times(runs, PARIS) == ["03-29 03:00+0200", "03-30 02:30+0200"]
    before = evaluate(plugin, ran(at(PARIS, 2026, 3, 28, 12, 0)), {}, at(PARIS, 2026, 3, 29, 1, 59))
    assert before == GateDecision(GateState.WAITING, "next slot 2026-03-29 03:00 CEST", next_open_at=at(PARIS, 2026, 3, 29, 3, 0))


def test_cron_dst_fall_back_fixed_time_job_fires_only_once_paris() -> None:
    # 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
    plugin = cron_plugin("30 2 * * *", "Europe/Paris")
    runs = simulate(plugin, at(PARIS, 2026, 10, 24, 12, 0), at(PARIS, 2026, 10, 26, 12, 0))
    assert local_times(runs, PARIS) == ["10-25 02:30+0200", "10-26 02:30+0100"]
    # A run at the first 02:30 leaves the gate closed through the second one, until tomorrow.
    first = at(PARIS, 2026, 10, 25, 2, 30, fold=0)
    second = at(PARIS, 2026, 10, 25, 2, 30, fold=1)
    assert second - first == 3600
    decision = evaluate(plugin, ran(first), {}, second + 60)
    assert decision == GateDecision(GateState.WAITING, "next slot 2026-10-26 02:30 CET", next_open_at=at(PARIS, 2026, 10, 26, 2, 30))


def test_cron_dst_fall_back_job_delayed_past_the_first_pass_does_not_run_again_in_the_second() -> None:
    plugin = cron_plugin("30 2 * * *", "Europe/Paris")
    late_run = at(PARIS, 2026, 10, 25, 2, 45, fold=0)  # started 15 minutes after the first 02:30
    decision = evaluate(plugin, ran(late_run), {}, at(PARIS, 2026, 10, 25, 2, 35, fold=1))
    assert not decision.open
    assert decision.next_open_at == at(PARIS, 2026, 10, 26, 2, 30)


def test_cron_dst_new_york_spring_and_fall() -> None:
    plugin = cron_plugin("30 2 * * *", "America/New_York")
    spring = simulate(plugin, at(NEW_YORK, 2026, 3, 7, 12, 0), at(NEW_YORK, 2026, 3, 9, 12, 0), step=300)
    assert local_times(spring, NEW_YORK) == ["03-08 03:00-0400", "03-09 02:30-0400"]
    one_thirty = cron_plugin("30 1 * * *", "America/New_York")
    fall = simulate(one_thirty, at(NEW_YORK, 2026, 10, 31, 12, 0), at(NEW_YORK, 2026, 11, 2, 12, 0), step=300)
    assert local_times(fall, NEW_YORK) == ["11-01 01:30-0400", "11-02 01:30-0500"]


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_at_alias_runs_as_the_expression_it_stands_for_on_a_havana_fall_back_day(alias: str) -> None:
    start, end = at(HAVANA, 2026, 10, 31, 12, 0), at(HAVANA, 2026, 11, 2, 12, 0)
    runs = simulate(cron_plugin(alias, "America/Havana"), start, end)
    assert runs == simulate(cron_plugin(ALIASES[alias], "America/Havana"), start, end)
    shown = local_times(runs, HAVANA)
    if alias in ("@daily", "@midnight", "@weekly", "@monthly"):  # all fall on Sunday 1 November 00:00, which comes twice
        assert [time for time in shown if time.startswith("11-01")] == ["11-01 00:00-0400"], shown
    elif alias == "@hourly":  # a wildcard hour: each real hour of the 25-hour day has its run
        assert shown.count("11-01 00:00-0400") == shown.count("11-01 00:00-0500") == 1, shown
    else:
        assert runs == [], shown  # @yearly, @annually: no slot in these two days


def test_an_at_alias_is_read_in_any_case() -> None:
    start, end = at(HAVANA, 2026, 10, 31, 12, 0), at(HAVANA, 2026, 11, 2, 12, 0)
    assert simulate(cron_plugin("@DAILY", "America/Havana"), start, end) == simulate(cron_plugin("0 0 * * *", "America/Havana"), start, end)


def test_cron_hourly_job_fires_for_both_real_hours_when_clocks_fall_back() -> None:
    plugin = cron_plugin("0 * * * *", "Europe/Paris")
    day_start, day_end = at(PARIS, 2026, 10, 25, 0, 0), at(PARIS, 2026, 10, 26, 0, 0)
    runs = simulate(plugin, day_start - 60, day_end - 60)
    assert len(runs) == 25  # a 25-hour day
    shown = local_times(runs, PARIS)
    assert shown[:5] == ["10-25 00:00+0200", "10-25 01:00+0200", "10-25 02:00+0200", "10-25 02:00+0100", "10-25 03:00+0100"]
    assert [b - a for a, b in pairwise(runs)] == [3600.0] * 24


def test_cron_hourly_job_on_the_spring_forward_day_runs_23_times() -> None:
    plugin = cron_plugin("0 * * * *", "Europe/Paris")
    day_start, day_end = at(PARIS, 2026, 3, 29, 0, 0), at(PARIS, 2026, 3, 30, 0, 0)
    runs = simulate(plugin, day_start - 60, day_end - 60)
    assert len(runs) == 23
    assert local_times(runs, PARIS)[1:3] == ["03-29 01:00+0100", "03-29 03:00+0200"]


@pytest.fixture
def tokyo_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the machine's local zone Asia/Tokyo (no DST, UTC+9) for ``local_zone()``."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    local_zone.cache_clear()
    yield
    local_zone.cache_clear()


@pytest.mark.usefixtures("tokyo_local")
def test_cron_timezone_defaults_to_local() -> None:
    plugin = cron_plugin("0 9 * * *", timezone=None)
    last = at(UTC, 2026, 6, 15, 1, 0)  # 10:00 JST, after today's 09:00 JST slot
    decision = cron(plugin, ran(last), last + 60)
    assert decision == GateDecision(GateState.WAITING, "next slot 2026-06-16 09:00 JST", next_open_at=at(UTC, 2026, 6, 16, 0, 0))
    assert cron(plugin, ran(last), at(UTC, 2026, 6, 16, 0, 0)).open


def test_cron_local_zone_follows_dst_rules_not_todays_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    local_zone.cache_clear()
    try:
        runs = simulate(cron_plugin("30 2 * * *", timezone=None), at(PARIS, 2026, 10, 24, 12, 0), at(PARIS, 2026, 10, 26, 12, 0))
    finally:
        local_zone.cache_clear()
    assert local_times(runs, PARIS) == ["10-25 02:30+0200", "10-26 02:30+0100"]


# --- condition ------------------------------------------------------------------


def test_condition_exit_zero_opens_with_the_first_output_line() -> None:
    decision = evaluate(condition_plugin(), ran(NOW - 100), {}, NOW, CheckResult(0, "3 stale branches"))
    assert decision == GateDecision(GateState.OPEN, "3 stale branches", since=NOW - 100)


def test_condition_exit_zero_without_output_says_check_passed() -> None:
    decision = evaluate(condition_plugin(), NEVER, {}, NOW, CheckResult(0, ""))
    assert decision == GateDecision(GateState.OPEN, "check passed", since=MTIME)


def test_condition_nonzero_exit_is_closed_with_first_line_or_exit_code() -> None:
    assert evaluate(condition_plugin(), NEVER, {}, NOW, CheckResult(1, "nothing to do")) == GateDecision(GateState.WAITING, "nothing to do")
    assert evaluate(condition_plugin(), NEVER, {}, NOW, CheckResult(3)) == GateDecision(GateState.WAITING, "check exited 3")


def test_condition_timeout_is_closed_and_names_the_timeout() -> None:
    timed_out = CheckResult(None, timed_out=True)
    assert evaluate(condition_plugin(), NEVER, {}, NOW, timed_out) == GateDecision(GateState.WAITING, "check timed out after 30s")
    slow = make(Gate(type="condition", check="sleep 9", check_timeout=parse_duration("2m")))
    assert evaluate(slow, NEVER, {}, NOW, timed_out).reason == "check timed out after 2m"


def test_condition_error_is_closed() -> None:
    decision = evaluate(condition_plugin(), NEVER, {}, NOW, CheckResult(None, error="No such file or directory"))
    assert decision == GateDecision(GateState.WAITING, "check could not run: No such file or directory")


def test_condition_not_checked_yet_is_closed() -> None:
    assert evaluate(condition_plugin(), NEVER, {}, NOW) == GateDecision(GateState.WAITING, "check not run yet (the next patrol runs it)")
    assert evaluate(condition_plugin(), NEVER, {}, NOW, unchecked("no check here")) == GateDecision(GateState.WAITING, "no check here")


def test_a_check_older_than_the_last_run_is_said_as_the_last_check_and_waits() -> None:
    passed = CheckResult(0, "3 stale branches", at=NOW - 300)
    assert evaluate(condition_plugin(), ran(NOW - 240), {}, NOW, passed) == GateDecision(
        GateState.WAITING, "last check (5m ago) passed: 3 stale branches; its run started since, the next patrol checks again")
    assert evaluate(condition_plugin(), ran(NOW - 400), {}, NOW, passed).open  # the run came before the check: it still counts
    failed = CheckResult(1, at=NOW - 60)
    assert evaluate(condition_plugin(), ran(NOW - 30), {}, NOW, failed).reason.startswith("last check (1m ago) did not pass;")


# --- event ----------------------------------------------------------------------


def test_event_never_emitted_is_closed() -> None:
    assert evaluate(event_plugin("deploy"), ran(NOW - 10), {"other": emitted(NOW - 1, 200)}, NOW) == GateDecision(
        GateState.WAITING, "waiting for event deploy")


def test_event_emitted_before_the_last_run_by_the_ledgers_order_is_closed() -> None:
    before = evaluate(event_plugin("deploy"), ran(NOW - 60, 100), {"deploy": emitted(NOW - 120, 99)}, NOW)
    assert not before.open
    assert before.reason == "waiting for event deploy (last seen 2m ago, before the last run)"
    assert not evaluate(event_plugin("deploy"), ran(NOW - 60, 100), {"deploy": emitted(NOW - 60, 100)}, NOW).open


def test_event_emitted_after_the_last_run_opens_since_the_emission() -> None:
    decision = evaluate(event_plugin("deploy"), ran(NOW - 600, 100), {"deploy": emitted(NOW - 300, 101)}, NOW)
    assert decision == GateDecision(GateState.OPEN, "event deploy emitted 5m ago", since=NOW - 300)


def test_the_ledgers_order_decides_an_event_whatever_the_clocks_said() -> None:
    """Emitted after the last run, by a process whose clock was two hours behind: it opens.  Emitted before it, by one a
    day ahead: it does not."""
    late_but_slow = evaluate(event_plugin("deploy"), ran(NOW, 100), {"deploy": emitted(NOW - 7200, 101)}, NOW)
    assert late_but_slow.open
    early_but_fast = evaluate(event_plugin("deploy"), ran(NOW, 100), {"deploy": emitted(NOW + 86400, 99)}, NOW)
    assert not early_but_fast.open


def test_event_never_run_plugin_opens_on_any_emission() -> None:
    decision = evaluate(event_plugin("startup"), NEVER, {"startup": emitted(NOW - 2, 1)}, NOW)
    assert decision.open
    assert decision.since == NOW - 2


# --- manual, disabled, paused -------------------------------------------------------


def test_manual_never_opens_by_itself() -> None:
    plugin = make(Gate(type="manual"))
    for facts in (NEVER, ran(NOW - 365 * 86400)):
        assert evaluate(plugin, facts, {"startup": NOW}, NOW, CheckResult(0, "ok")) == GateDecision(
            GateState.MANUAL, "manual: runs only when asked")


OPEN_CASES = pytest.mark.parametrize(
    ("plugin", "facts", "events", "check"),
    [
        pytest.param(cooldown_plugin(), NEVER, {}, None, id="cooldown"),
        pytest.param(cron_plugin("* * * * *"), NEVER, {}, None, id="cron"),
        pytest.param(condition_plugin(), NEVER, {}, CheckResult(0, "go"), id="condition"),
        pytest.param(event_plugin(), NEVER, {"deploy": emitted(NOW - 1, 1)}, None, id="event"),
    ],
)


@OPEN_CASES
def test_open_cases_really_are_open(plugin: Plugin, facts: GateFacts, events: dict[str, EventMark], check: CheckResult | None) -> None:
    assert evaluate(plugin, facts, events, NOW, check).open


@OPEN_CASES
def test_disabled_plugin_never_opens(plugin: Plugin, facts: GateFacts, events: dict[str, EventMark], check: CheckResult | None) -> None:
    decision = evaluate(plugin._replace(enabled=False), facts, events, NOW, check)
    assert decision == GateDecision(GateState.DISABLED, "disabled in plugin.md (enabled = false)")


@OPEN_CASES
def test_paused_plugin_never_opens(plugin: Plugin, facts: GateFacts, events: dict[str, EventMark], check: CheckResult | None) -> None:
    decision = evaluate(plugin, facts._replace(paused="flaky upstream"), events, NOW, check)
    assert decision == GateDecision(GateState.PAUSED, "paused by operator: flaky upstream")
    assert evaluate(plugin, facts._replace(paused=""), events, NOW, check) == GateDecision(GateState.PAUSED, "paused by operator")


def test_disabled_wins_over_paused_and_running() -> None:
    facts = GateFacts(running_run="r1", paused="x")
    assert evaluate(cooldown_plugin(enabled=False), facts, {}, NOW).reason.startswith("disabled")
    assert evaluate(cooldown_plugin(), facts, {}, NOW).reason.startswith("paused")


# --- fairness: when did each gate open? ------------------------------------------------


def test_since_orders_plugins_by_how_long_they_have_waited() -> None:
    cooled = evaluate(cooldown_plugin("1h"), ran(NOW - 3 * 3600), {}, NOW)  # open since NOW - 2h
    slotted = evaluate(cron_plugin("0 * * * *"), ran(NOW - 90 * 60), {}, NOW)  # slot at 11:00 = NOW - 1h
    evented = evaluate(event_plugin(), ran(NOW - 86400, 100), {"deploy": emitted(NOW - 600, 101)}, NOW)  # emitted NOW - 10m
    assert (cooled.since, slotted.since, evented.since) == (NOW - 2 * 3600, NOW - 3600, NOW - 600)
    waiting = sorted([("evented", evented), ("slotted", slotted), ("cooled", cooled)], key=lambda item: item[1].since or 0)
    assert [name for name, _ in waiting] == ["cooled", "slotted", "evented"]


def test_closed_decisions_carry_next_open_at_only_when_known() -> None:
    assert evaluate(cooldown_plugin("1h"), ran(NOW - 60), {}, NOW).next_open_at == NOW - 60 + 3600
    assert evaluate(cron_plugin("0 0 * * *"), ran(NOW), {}, NOW).next_open_at == at(UTC, 2026, 6, 16, 0, 0)
    assert evaluate(event_plugin(), NEVER, {}, NOW).next_open_at is None
    assert evaluate(make(Gate(type="manual")), NEVER, {}, NOW).next_open_at is None
    assert evaluate(condition_plugin(), NEVER, {}, NOW, CheckResult(1)).next_open_at is None


def test_gate_reasons_are_stable_after_the_clock_moves_on() -> None:
    # Pure: same inputs, same answer; a later ``now`` only changes the ages in the text.
    plugin, facts = cooldown_plugin("1h"), ran(NOW - 60)
    assert evaluate(plugin, facts, {}, NOW) == evaluate(plugin, facts, {}, NOW)
    assert evaluate(plugin, facts, {}, NOW + 3540).open
    assert timedelta(seconds=evaluate(plugin, facts, {}, NOW).next_open_at - NOW) == timedelta(minutes=59)  # type: ignore[operator]
