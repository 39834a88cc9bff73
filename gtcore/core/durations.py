"""Go-style durations (``90s``, ``5m``, ``1h30m``) plus days (``2d``).

As Go's ``time.ParseDuration`` reads them: one leading sign (``+5m``, and
``-1h``, which a caller that wants a positive duration refuses as such),
ASCII digits only (``٥m`` and ``５m`` are not durations in Go either).
``m`` is always minutes: months are not a duration, so ``M`` is rejected with
a hint instead of being guessed at.
"""

from __future__ import annotations

import math
import re

from gtcore.core.records import Record

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Zµμ]*)"  # compiled on first use (re caches it): most commands parse no duration
MAX_SECONDS = 10 * 365 * 86400.0  # ten years: past that a duration is a typo, and datetime arithmetic overflows
_MAX_TEXT = 64  # no sane duration is longer; a 400-digit number must not reach float()


class Duration(Record):
    """A parsed duration that remembers how the author wrote it."""

    text: str
    seconds: float

    def __str__(self) -> str:
        return self.text


def parse_duration(value: object, *, days: bool = True) -> Duration:
    """Parse a duration string; raise ``ValueError`` with a one-line reason.

    ``days=False`` is Go's own set of units (no ``d``): a flag Gas Town
    declares as a Go duration (``--max-inactivity``) takes what Go takes.
    """
    if not isinstance(value, str):
        raise ValueError(f'must be a string like "5m" or "1h30m", not {value!r}')
    text, hint = value.strip(), _hint(days)
    if not text:
        raise ValueError(f"is empty ({hint})")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"is {len(text)} characters long: not a duration ({hint})")
    sign, body = (-1.0 if text[0] == "-" else 1.0, text[1:]) if text[0] in "+-" else (1.0, text)
    if body == "0":
        return Duration(text, 0.0)
    if not body:
        raise ValueError(f"{text!r} is not a duration ({hint})")
    total = sign * _sum_of_parts(text, body, days)
    if not math.isfinite(total) or abs(total) > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than the longest duration gtui accepts (10 years, 87600h)")
    return Duration(text, total)


def _hint(days: bool) -> str:
    """How to write a duration, in the units that are taken (Go's own have no ``d``)."""
    return "write it like 90s, 5m, 1h30m or 2d" if days else "write it like 90s, 5m or 1h30m: a Go duration, no d"


def _sum_of_parts(text: str, body: str, days: bool) -> float:
    """The seconds of ``body`` (``1h30m``: a number and a unit, again and again); ``text`` is how errors quote it."""
    total, pos = 0.0, 0
    while pos < len(body):
        match = re.compile(_PART).match(body, pos)
        if not match:
            raise ValueError(f"{text!r} is not a duration ({_hint(days)})")
        number, unit = match.groups()
        if not unit:
            raise ValueError(f"{text!r} is missing a unit after {number} (ns, us, ms, s, m, h{' or d' if days else ''})")
        if unit not in _UNITS or (unit == "d" and not days):
            hint = " (m is minutes; months are not a duration)" if unit == "M" else ""
            raise ValueError(f"{text!r} has unknown unit {unit!r}{hint}")
        total += float(number) * _UNITS[unit]
        pos = match.end()
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly for people: ``45s``, ``5m``, ``1h30m``, ``2d3h``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        # Truncate like every larger unit does, so 9.96 reads "9.9s", never "10.0s".
        tenths = math.floor(seconds * 10) / 10
        return f"{tenths:.1f}s" if tenths < 10 and tenths != int(tenths) else f"{int(seconds)}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    if not days and not hours:
        parts.append((secs, "s"))
    shown = [f"{n}{u}" for n, u in parts if n]
    return "".join(shown[:2])
