"""Gas City's cron, which is not POSIX cron: its own field matcher and its catch-up, as ``internal/orders/triggers.go`` has them.

- Five fields (minute, hour, day of month, month, day of week), all ANDed:
  a day of month and a day of week must both match (Vixie cron ORs them).
- A field is ``*``, or comma-separated parts, each an integer (Go's
  ``strconv.Atoi``: a sign allowed) or ``*/N``, which matches a value
  divisible by N: ``*/2`` in the day of month is 2, 4, 6 ... (never 1), a
  month ``*/3`` is 3, 6, 9, 12.  Anything else (ranges, names, ``?``) never
  matches, silently; day of week 7 is not Sunday.
- Catch-up: a slot missed since the last run fires once; an order that
  never ran fires for any slot of the last 25 hours; a warm one looks back
  at most 366 days.  Wall minutes dedupe the DST fall-back repeat; a slot in
  a spring-forward gap fires at the first real minute after it.

Everything is a pure function of the schedule, the zone, the last run and
``now`` (UNIX seconds).  The reason words are Gas City's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from functools import lru_cache

from gtcore.core.records import Record

MAX_CATCHUP_MINUTES = 366 * 24 * 60
NEVER_RUN_MINUTES = 25 * 60
LOOKAHEAD_MINUTES = 366 * 24 * 60  # how far ahead a waiting order's next slot is looked for (None past it)
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                      "\u2028\u2029\u202f\u205f\u3000")  # Go's unicode.IsSpace


def go_fields(text: str) -> list[str]:
    """Go's ``strings.Fields``: the words between runs of Go's white space (which is not Python's)."""
    fields: list[str] = []
    word: list[str] = []
    for char in text:
        if char in _GO_SPACE:
            if word:
                fields.append("".join(word))
                word = []
        else:
            word.append(char)
    if word:
        fields.append("".join(word))
    return fields


def go_trim(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    start, end = 0, len(text)
    while start < end and text[start] in _GO_SPACE:
        start += 1
    while end > start and text[end - 1] in _GO_SPACE:
        end -= 1
    return text[start:end]


def atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi``: an optional sign and ASCII digits within 64 bits, else None."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all("0" <= char <= "9" for char in body):
        return None
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 63) else None


@lru_cache(maxsize=4096)
def field_matcher(field: str) -> tuple[bool, frozenset[int], tuple[int, ...]]:
    """A field as (matches anything, exact values, steps): what ``cronFieldMatches`` tests, parsed once."""
    if field == "*":
        return True, frozenset(), ()
    exact, steps = set(), []
    for raw in field.split(","):
        part = go_trim(raw)
        if part.startswith("*/"):
            step = atoi(part[2:])
            if step is not None and step > 0:
                steps.append(step)
            continue
        number = atoi(part)
        if number is not None:
            exact.add(number)
    return False, frozenset(exact), tuple(steps)


def field_matches(field: str, value: int) -> bool:
    """``cronFieldMatches``: whether one field matches one value."""
    return _hit(field_matcher(field), value)


class Schedule:
    """A five-field schedule, its fields parsed once."""

    def __init__(self, fields: list[str]) -> None:
        self.minute, self.hour, self.day, self.month, self.weekday = (field_matcher(field) for field in fields)

    def matches(self, wall: datetime) -> bool:
        """Whether a wall-clock reading matches (Go's ``Weekday()``: Sunday is 0)."""
        return (_hit(self.minute, wall.minute) and _hit(self.hour, wall.hour) and _hit(self.day, wall.day)
                and _hit(self.month, wall.month) and _hit(self.weekday, (wall.weekday() + 1) % 7))


def _hit(matcher: tuple[bool, frozenset[int], tuple[int, ...]], value: int) -> bool:
    anything, exact, steps = matcher
    return anything or value in exact or any(value % step == 0 for step in steps)


class CronAnswer(Record):
    """What the cron trigger says: due or not, Gas City's reason, and (not due) the next matching minute when one is near."""

    due: bool
    reason: str
    next_at: float | None = None


def check(schedule: str, zone: tzinfo, last: float | None, now: float) -> CronAnswer:
    """``checkCron``: is a cron order due at ``now`` given its last run (``None``: never ran)?"""
    fields = go_fields(schedule)
    if len(fields) != 5:
        return CronAnswer(False, f"bad cron schedule: want 5 fields, got {len(fields)}")
    matcher = _schedule(" ".join(fields))
    wall_now = datetime.fromtimestamp(now, zone)
    last_wall = None if last is None else _wall_minute(last, zone)
    if matcher.matches(wall_now):
        if last_wall is not None and last_wall == _wall_minute(now, zone):
            return CronAnswer(False, "cron: already run this minute", _next(" ".join(fields), zone, _truncate(now)))
        return CronAnswer(True, "cron: schedule matched")
    caught = _catch_up(matcher, zone, last, last_wall, now)
    if caught:
        return CronAnswer(True, caught)
    return CronAnswer(False, "cron: schedule not matched", _next(" ".join(fields), zone, _truncate(now)))


def _catch_up(matcher: Schedule, zone: tzinfo, last: float | None, last_wall: str | None, now: float) -> str | None:
    """The catch-up scan: Go's minute-by-minute loop from just after the last run (or 25 hours back) to ``now``, walked
    a stretch of constant UTC offset at a time (a year of minutes is half a million; a year of stretches is three)."""
    if last is None:
        start = _truncate(now - NEVER_RUN_MINUTES * 60)
        floor = start
    else:
        start = _truncate(last) + 60
        floor = _truncate(now - MAX_CATCHUP_MINUTES * 60)
    moment = max(start, floor)
    previous = datetime.fromtimestamp(moment - 60, zone)
    while moment <= now:
        wall = datetime.fromtimestamp(moment, zone)
        if wall.utcoffset() > previous.utcoffset() and _gap_matches(matcher, previous, wall):  # type: ignore[operator]
            return "cron: caught up occurrence skipped by DST spring-forward"
        end = _stretch_end(zone, moment, now)
        if _first_match(matcher, _naive(wall), _naive(datetime.fromtimestamp(end, zone)), last_wall) is not None:
            return "cron: caught up missed occurrence"
        previous = datetime.fromtimestamp(end, zone)
        moment = end + 60
    return None


def _naive(wall: datetime) -> datetime:
    """A wall reading as a naive minute (what cron fields are read from)."""
    return datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute)


def _offset(zone: tzinfo, moment: float) -> object:
    return datetime.fromtimestamp(moment, zone).utcoffset()


def _stretch_end(zone: tzinfo, moment: float, until: float) -> float:
    """The last minute from ``moment`` to ``until`` before the zone's UTC offset changes: probed a day at a time, then halved."""
    offset = _offset(zone, moment)
    low = moment
    while low + 86400 <= until and _offset(zone, low + 86400) == offset:
        low += 86400
    high = min(low + 86400, _truncate(until))
    if _offset(zone, high) == offset:
        return high
    while high - low > 60:  # low keeps the offset, high has another: the change is in between
        middle = low + ((high - low) // 120) * 60
        if _offset(zone, middle) == offset:
            low = middle
        else:
            high = middle
    return low


def _first_match(matcher: Schedule, first: datetime, last: datetime, skip: str | None) -> datetime | None:
    """The first naive minute from ``first`` to ``last`` (both included) the schedule matches, other than the wall minute
    ``skip``: matching days first, then their matching hours and minutes."""
    hours = [hour for hour in range(24) if _hit(matcher.hour, hour)]
    minutes = [minute for minute in range(60) if _hit(matcher.minute, minute)]
    day = datetime(first.year, first.month, first.day)
    while day <= last and hours and minutes:
        if _hit(matcher.day, day.day) and _hit(matcher.month, day.month) and _hit(matcher.weekday, (day.weekday() + 1) % 7):
            for hour in hours:
                for minute in minutes:
                    candidate = day.replace(hour=hour, minute=minute)
                    if first <= candidate <= last and candidate.strftime("%Y-%m-%d %H:%M") != skip:
                        return candidate
        day += timedelta(days=1)
    return None


def _gap_matches(matcher: Schedule, before: datetime, after: datetime) -> bool:
    """Whether a wall minute strictly between two readings (skipped by a spring-forward) matches: naive readings, as Go's
    ``matchesInWallGap`` enumerates them."""
    return _first_match(matcher, _naive(before) + timedelta(minutes=1), _naive(after) - timedelta(minutes=1), None) is not None


@lru_cache(maxsize=1024)
def _schedule(fields: str) -> Schedule:
    return Schedule(fields.split(" "))


@lru_cache(maxsize=1024)
def _next(fields: str, zone: tzinfo, minute: float) -> float | None:
    """The start of the next matching minute after ``minute`` within :data:`LOOKAHEAD_MINUTES` (None: none so near), found
    as the scan finds slots.  Cached: a patrol and the control room ask again within the same minute."""
    matcher = _schedule(fields)
    moment, until = minute + 60, minute + LOOKAHEAD_MINUTES * 60
    while moment <= until:
        end = _stretch_end(zone, moment, until)
        wall = datetime.fromtimestamp(moment, zone)
        found = _first_match(matcher, _naive(wall), _naive(datetime.fromtimestamp(end, zone)), None)
        if found is not None:
            return moment + (found - _naive(wall)).total_seconds()
        moment = end + 60
    return None


def _truncate(moment: float) -> float:
    """Go's ``Truncate(time.Minute)``: on absolute time, whatever the zone's offset."""
    return float(int(moment // 60) * 60)


def _wall_minute(moment: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(moment, zone).strftime("%Y-%m-%d %H:%M")
