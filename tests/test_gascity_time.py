"""Gas City's time: Go durations (parse, String, Round) and Gas City's own cron, against what the Go sources do.

The expected values are Go's (``time.ParseDuration``, ``Duration.String``,
``Duration.Round``; ``internal/orders/triggers.go`` ``checkCron`` and
``cronFieldMatches``), worked out from the sources, not from running Go.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtcore.core.durations import parse_duration
from gtcore.gascity import cron, godur

SECOND, MINUTE, HOUR = godur.SECOND, godur.MINUTE, godur.HOUR


@pytest.mark.parametrize(("text", "nanoseconds"), [
    ("0", 0), ("+0", 0), ("-0", 0), ("5m", 5 * MINUTE), ("1h30m", 90 * MINUTE), ("1.5h", 90 * MINUTE), ("-5m", -5 * MINUTE),
    ("+2s", 2 * SECOND), (".5s", SECOND // 2), ("1.s", SECOND), ("300ms", 300_000_000), ("1us", 1000), ("1\u00b5s", 1000),
    ("1\u03bcs", 1000), ("7ns", 7), ("0s", 0), ("2562047h47m16.854775807s", godur.MAX), ("1h1h", 2 * HOUR),
])
def test_go_parses_durations(text: str, nanoseconds: int) -> None:
    assert godur.parse(text) == nanoseconds


@pytest.mark.parametrize(("text", "error"), [
    ("60", 'time: missing unit in duration "60"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'),
    (".s", 'time: invalid duration ".s"'),
    ("5 m", 'time: unknown unit " m" in duration "5 m"'),
    ("1h2", 'time: missing unit in duration "1h2"'),
    ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
    ("5M", 'time: unknown unit "M" in duration "5M"'),
    ("1é", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
])
def test_go_refuses_durations_in_its_own_words(text: str, error: str) -> None:
    with pytest.raises(godur.GoDurationError) as refused:
        godur.parse(text)
    assert str(refused.value) == error


@pytest.mark.parametrize(("nanoseconds", "text"), [
    (0, "0s"), (1, "1ns"), (1500, "1.5\u00b5s"), (1_500_000, "1.5ms"), (45 * SECOND, "45s"), (5 * MINUTE, "5m0s"), (HOUR, "1h0m0s"),
    (26 * HOUR + 3 * MINUTE + 7 * SECOND, "26h3m7s"), (1_500_000_000, "1.5s"), (-HOUR, "-1h0m0s"), (90 * SECOND + 1, "1m30.000000001s"),
])
def test_go_prints_durations(nanoseconds: int, text: str) -> None:
    assert godur.to_string(nanoseconds) == text


@pytest.mark.parametrize(("nanoseconds", "rounded"), [
    (int(4.4 * SECOND), 4 * SECOND), (int(4.5 * SECOND), 5 * SECOND), (-int(4.5 * SECOND), -5 * SECOND), (-int(4.4 * SECOND), -4 * SECOND),
    (godur.MAX, godur.MAX), (godur.MIN, godur.MIN),
])
def test_go_rounds_halves_away_from_zero(nanoseconds: int, rounded: int) -> None:
    assert godur.round_to(nanoseconds, SECOND) == rounded


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=godur.MIN + 1, max_value=godur.MAX))
def test_what_go_prints_go_reads_back(nanoseconds: int) -> None:
    assert godur.parse(godur.to_string(nanoseconds)) == nanoseconds


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_any_text_is_a_duration_or_go_words_why_not(text: str) -> None:
    try:
        value = godur.parse(text)
    except godur.GoDurationError as exc:
        assert str(exc).startswith("time: ")
    else:
        assert godur.MIN <= value <= godur.MAX


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["ns", "us", "ms", "s", "m", "h"])), min_size=1, max_size=4),
       st.sampled_from(["", "-", "+"]))
def test_go_and_gtui_read_a_plain_duration_alike(parts: list[tuple[int, str]], sign: str) -> None:
    """gtui's own parser with Go's units (``days=False``) reads what Go reads, to the nanosecond that a float holds."""
    text = sign + "".join(f"{number}{unit}" for number, unit in parts)
    ours = parse_duration(text, days=False).seconds
    assert abs(godur.parse(text) / SECOND - ours) <= abs(ours) * 1e-12 + 1e-9


# -- Gas City's cron ---------------------------------------------------------------------------------------------------


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(("field", "value", "matches"), [
    ("*", 37, True), ("5", 5, True), ("5", 6, False), ("1,5,9", 9, True), (" 1 , 5 ", 5, True), ("+5", 5, True),
    ("*/2", 4, True), ("*/2", 3, False), ("*/3", 0, True), ("*/0", 0, False), ("*/-2", 4, False),
    ("1-5", 3, False), ("MON", 1, False), ("?", 1, False), ("0/15", 15, False), ("5/*", 5, False), ("", 0, False),
])
def test_a_field_matches_as_gas_city_reads_it(field: str, value: int, matches: bool) -> None:
    """``*/N`` is "divisible by N"; ranges, names and ``?`` never match, silently."""
    assert cron.field_matches(field, value) is matches


def test_day_of_month_and_day_of_week_must_both_match_and_seven_is_not_sunday() -> None:
    zone = ZoneInfo("UTC")
    sunday_the_16th = at("2026-08-16 09:00")  # a Sunday
    assert cron.check("0 9 16 * 0", zone, None, sunday_the_16th).reason == "cron: schedule matched"
    assert not cron.check("0 9 15 * 0", zone, at("2026-08-15 08:00"), at("2026-08-15 09:00")).due  # the 15th is a Saturday: AND
    assert not cron.check("0 9 * * 7", zone, at("2026-08-16 08:00"), sunday_the_16th).due


def test_step_fields_count_from_zero_not_from_the_first_value() -> None:
    """A day of month ``*/2`` is the 2nd, 4th ...; a month ``*/3`` is March, June, September, December."""
    zone = ZoneInfo("UTC")
    assert cron.check("0 0 */2 * *", zone, at("2026-08-01 23:00"), at("2026-08-02 00:00")).due
    assert not cron.check("0 0 */2 * *", zone, at("2026-08-02 23:00"), at("2026-08-03 00:00")).due
    assert cron.check("0 0 1 */3 *", zone, at("2026-08-31 23:00"), at("2026-09-01 00:00")).due


@pytest.mark.parametrize(("schedule", "last", "now", "due", "reason"), [
    ("*/5 * * * *", None, "2026-08-13 10:05:30", True, "cron: schedule matched"),
    ("*/5 * * * *", "2026-08-13 10:05:01", "2026-08-13 10:05:40", False, "cron: already run this minute"),
    ("0 * * * *", "2026-08-13 08:00:02", "2026-08-13 10:30:00", True, "cron: caught up missed occurrence"),
    ("0 * * * *", "2026-08-13 10:00:02", "2026-08-13 10:30:00", False, "cron: schedule not matched"),
    ("0 3 * * *", None, "2026-08-13 10:00:00", True, "cron: caught up missed occurrence"),  # never run: any slot of the last 25h
    ("0 3 * * 1", None, "2026-08-13 10:00:00", False, "cron: schedule not matched"),  # Monday the 10th, 3:00: more than 25h ago
    ("0 3 * *", None, "2026-08-13 10:00:00", False, "bad cron schedule: want 5 fields, got 4"),
    ("0 3 * * * *", None, "2026-08-13 10:00:00", False, "bad cron schedule: want 5 fields, got 6"),
    ("0 3 1-5 * *", None, "2026-08-03 03:00:00", False, "cron: schedule not matched"),  # a range never matches
])
def test_cron_decides_with_gas_citys_words(schedule: str, last: str | None, now: str, due: bool, reason: str) -> None:
    answer = cron.check(schedule, ZoneInfo("UTC"), None if last is None else at(last), at(now))
    assert (answer.due, answer.reason) == (due, reason)


def test_a_warm_order_looks_back_a_year_and_catches_up_once() -> None:
    zone = ZoneInfo("UTC")
    assert cron.check("0 0 1 1 *", zone, at("2025-01-01 00:00:05"), at("2026-01-02 12:00")).reason == "cron: caught up missed occurrence"


def test_next_slot_is_said_when_near_and_not_when_far() -> None:
    zone = ZoneInfo("UTC")
    waiting = cron.check("0 * * * *", zone, at("2026-08-13 10:00:01"), at("2026-08-13 10:30"))
    assert waiting.next_at == at("2026-08-13 11:00")
    assert cron.check("0 0 1 1 *", zone, at("2026-01-01 00:00:01"), at("2026-08-13 10:30")).next_at == at("2027-01-01 00:00")
    assert cron.check("0 0 31 2 *", zone, None, at("2026-08-13 10:30")).next_at is None  # February has no 31st: no slot this year


def test_spring_forward_fires_once_at_the_first_real_minute_after_the_gap() -> None:
    """Europe/Paris 2026-03-29: 02:00 CET jumps to 03:00 CEST; a 02:30 slot does not exist that day."""
    paris = ZoneInfo("Europe/Paris")
    last = at("2026-03-28 02:30:05", "Europe/Paris")
    first_real = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()  # 03:00 CEST
    answer = cron.check("30 2 * * *", paris, last, first_real)
    assert (answer.due, answer.reason) == (True, "cron: caught up occurrence skipped by DST spring-forward")


def test_fall_back_repeats_a_wall_minute_and_it_fires_once() -> None:
    """Europe/Paris 2026-10-25: 02:30 happens twice (CEST, then CET): one slot by its wall minute."""
    paris = ZoneInfo("Europe/Paris")
    first = datetime(2026, 10, 25, 0, 30, 20, tzinfo=UTC).timestamp()  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, 20, tzinfo=UTC).timestamp()  # 02:30 CET
    assert cron.check("30 2 * * *", paris, None, first).due
    assert cron.check("30 2 * * *", paris, first, second).reason == "cron: already run this minute"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789*/,- +\t", max_size=16), st.integers(0, 59))
def test_a_field_matches_exactly_what_cron_field_matches_would(field: str, value: int) -> None:
    """A reference written from ``cronFieldMatches`` line by line."""
    def reference(text: str, number: int) -> bool:
        if text == "*":
            return True
        for part in text.split(","):
            part = part.strip(" \t")
            if part.startswith("*/"):
                step = part[2:]
                if re.fullmatch(r"[+-]?[0-9]+", step) and int(step) > 0 and number % int(step) == 0:
                    return True
                continue
            if re.fullmatch(r"[+-]?[0-9]+", part) and int(part) == number:
                return True
        return False

    assert cron.field_matches(field, value) is reference(field, value)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=30), st.none() | st.floats(1.7e9, 1.8e9), st.floats(1.7e9, 1.8e9))
def test_any_schedule_is_decided_never_raised(schedule: str, last: float | None, now: float) -> None:
    answer = cron.check(schedule, ZoneInfo("America/Havana"), last, now)
    assert isinstance(answer.due, bool) and answer.reason.startswith(("cron: ", "bad cron schedule"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=" \t\n\x0b\x0c\r\x1c\x85\xa0\u2000ab*1", max_size=20))
def test_fields_split_on_gos_white_space_only(text: str) -> None:
    go_space = "\t\n\x0b\x0c\r \x85\xa0\u2000"
    assert cron.go_fields(text) == [word for word in re.split(f"[{go_space}]+", text) if word]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="+-0123456789_ ٣", max_size=25))
def test_atoi_takes_what_go_takes(text: str) -> None:
    expected = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) and -(1 << 63) <= int(text) < (1 << 63) else None
    assert cron.atoi(text) == expected


def go_loop(schedule: str, zone: ZoneInfo, last: float | None, now: float) -> tuple[bool, str]:
    """``checkCron`` transcribed line by line, minute by minute: what the faster scan must agree with."""
    fields = cron.go_fields(schedule)
    if len(fields) != 5:
        return False, f"bad cron schedule: want 5 fields, got {len(fields)}"

    def matches(moment: datetime) -> bool:
        return all(cron.field_matches(field, value) for field, value in zip(
            fields, (moment.minute, moment.hour, moment.day, moment.month, (moment.weekday() + 1) % 7), strict=True))

    def wall(moment: float) -> datetime:
        return datetime.fromtimestamp(moment, zone)

    def same(x: float | None, y: float) -> bool:
        return x is not None and wall(x).strftime("%Y-%m-%d %H:%M") == wall(y).strftime("%Y-%m-%d %H:%M")

    if matches(wall(now)):
        return (False, "cron: already run this minute") if same(last, now) else (True, "cron: schedule matched")
    lookback, start = 366 * 86400, (last // 60) * 60 + 60 if last is not None else 0
    if last is None:
        lookback, start = 25 * 3600, ((now - 25 * 3600) // 60) * 60
    start = max(start, ((now - lookback) // 60) * 60)
    previous, moment = start - 60, start
    while moment <= now:
        if wall(moment).utcoffset() > wall(previous).utcoffset():
            naive = datetime(*wall(previous).timetuple()[:5]) + timedelta(minutes=1)
            while naive < datetime(*wall(moment).timetuple()[:5]):
                if matches(naive):
                    return True, "cron: caught up occurrence skipped by DST spring-forward"
                naive += timedelta(minutes=1)
        if matches(wall(moment)) and not same(last, moment):
            return True, "cron: caught up missed occurrence"
        previous, moment = moment, moment + 60
    return False, "cron: schedule not matched"


FIELD = st.one_of(st.just("*"), st.integers(0, 31).map(str), st.integers(1, 20).map(lambda step: f"*/{step}"),
                  st.lists(st.integers(0, 59), min_size=1, max_size=3).map(lambda values: ",".join(map(str, values))))
DST_DAYS = [at("2026-03-08 06:00"), at("2026-03-29 00:30"), at("2026-10-25 00:30"), at("2026-11-01 05:00"), at("2026-08-13 12:00")]


@settings(max_examples=120, deadline=None)
@given(st.lists(FIELD, min_size=5, max_size=5), st.sampled_from(["America/New_York", "Europe/Paris", "UTC", "Australia/Lord_Howe"]),
       st.sampled_from(DST_DAYS), st.integers(-3 * 3600, 30 * 3600), st.none() | st.integers(1, 40 * 3600))
def test_the_stretch_scan_decides_as_gos_minute_loop(fields: list[str], zone: str, day: float, offset: int, before: int | None) -> None:
    """Around DST changes (New York, Paris, Lord Howe's half hour) and away from them, never run or run a while ago."""
    now = day + offset
    last = None if before is None else now - before
    answer = cron.check(" ".join(fields), ZoneInfo(zone), last, now)
    assert (answer.due, answer.reason) == go_loop(" ".join(fields), ZoneInfo(zone), last, now)
