"""Go's ``time.Duration``, exactly: parsing, ``String()`` and ``Round``, on whole nanoseconds.

Gas City's order files hold Go durations (``interval``, ``timeout``,
``check_timeout``, ``max_timeout``) and its gate reasons print them with
``Duration.String()`` (``5m0s``, ``1h0m0s``, ``1.5s``).  gtui's own
durations (:mod:`gtcore.core.durations`) read days and refuse zero; an order's must
read what Go reads — no ``d``, a bare ``0``, signs, fractions — and print
what Go prints, so the reasons in gtui's gate column are Gas City's words.
The algorithms follow Go's ``src/time/format.go`` and ``time.go``.
"""

from __future__ import annotations

NANOSECOND = 1
MICROSECOND = 1000
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {"ns": NANOSECOND, "us": MICROSECOND, "\u00b5s": MICROSECOND, "\u03bcs": MICROSECOND, "ms": MILLISECOND,
          "s": SECOND, "m": MINUTE, "h": HOUR}
_LIMIT = 1 << 63
MAX = _LIMIT - 1
MIN = -_LIMIT


class GoDurationError(ValueError):
    """Go's own words for a string ``time.ParseDuration`` refuses (``time: missing unit in duration "60"``)."""


def quote(text: str) -> str:
    """Go's ``time.quote``: double quotes, ``"`` and ``\\`` escaped, control and non-ASCII bytes as ``\\xNN``."""
    out = ['"']
    for char in text:
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append('"')
    return "".join(out)


def parse(text: str) -> int:
    """Nanoseconds of a Go duration string (``1h30m``, ``-1.5s``, ``0``); :class:`GoDurationError` as Go words it."""
    invalid = GoDurationError("time: invalid duration " + quote(text))
    rest, negative = text, False
    if rest and rest[0] in "+-":
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        whole, rest, fraction, scale, had_digits = _number(rest, invalid)
        if not had_digits:
            raise invalid
        end = 0
        while end < len(rest) and not (rest[end] == "." or "0" <= rest[end] <= "9"):
            end += 1
        if end == 0:
            raise GoDurationError("time: missing unit in duration " + quote(text))
        unit_text, rest = rest[:end], rest[end:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise GoDurationError("time: unknown unit " + quote(unit_text) + " in duration " + quote(text))
        if whole > _LIMIT // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _LIMIT:
                raise invalid
        total += value
        if total > _LIMIT:
            raise invalid
    if negative:
        return -total
    if total > MAX:
        raise invalid
    return total


def _number(rest: str, invalid: GoDurationError) -> tuple[int, str, int, float, bool]:
    """The leading ``digits[.digits]`` of ``rest``: whole part, what follows, fraction digits, their scale, whether any digit came."""
    if not (rest[0] == "." or "0" <= rest[0] <= "9"):
        raise invalid
    whole, index = 0, 0
    while index < len(rest) and "0" <= rest[index] <= "9":
        if whole > _LIMIT // 10:
            raise invalid
        whole = whole * 10 + ord(rest[index]) - 48
        if whole > _LIMIT:
            raise invalid
        index += 1
    had_whole, rest = index > 0, rest[index:]
    fraction, scale, had_fraction = 0, 1.0, False
    if rest and rest[0] == ".":
        rest, index, overflow = rest[1:], 0, False
        while index < len(rest) and "0" <= rest[index] <= "9":
            if not overflow:
                if fraction > MAX // 10 or fraction * 10 + ord(rest[index]) - 48 > _LIMIT:
                    overflow = True
                else:
                    fraction, scale = fraction * 10 + ord(rest[index]) - 48, scale * 10
            index += 1
        had_fraction, rest = index > 0, rest[index:]
    return whole, rest, fraction, scale, had_whole or had_fraction


def to_string(nanoseconds: int) -> str:
    """``Duration.String()``: ``0s``, ``1.5ms``, ``800µs``, ``45s``, ``5m0s``, ``26h3m7s``, ``-1h0m0s``."""
    value = abs(nanoseconds)
    sign = "-" if nanoseconds < 0 else ""
    if value < SECOND:
        if value == 0:
            return "0s"
        if value < MICROSECOND:
            return f"{sign}{value}ns"
        if value < MILLISECOND:
            return f"{sign}{_fraction(value, 3)}\u00b5s"
        return f"{sign}{_fraction(value, 6)}ms"
    seconds, minutes = _fraction(value, 9, modulo=60), value // SECOND // 60
    if not minutes:
        return f"{sign}{seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes}m{seconds}s" if hours else f"{sign}{minutes}m{seconds}s"


def _fraction(value: int, precision: int, modulo: int | None = None) -> str:
    """``value / 10**precision`` as Go prints it: trailing zeros (and a bare point) left out; the whole part ``% modulo``."""
    whole, part = divmod(value, 10 ** precision)
    if modulo is not None:
        whole %= modulo
    digits = f"{part:0{precision}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def round_to(nanoseconds: int, multiple: int) -> int:
    """``Duration.Round(m)``: to the nearest multiple, halves away from zero, saturating at Go's limits."""
    if multiple <= 0:
        return nanoseconds
    remainder = abs(nanoseconds) % multiple  # Go's % truncates toward zero: the remainder has the dividend's sign
    if nanoseconds < 0:
        if remainder + remainder < multiple:
            return nanoseconds + remainder
        rounded = nanoseconds - multiple + remainder
        return rounded if rounded < nanoseconds and rounded >= MIN else MIN
    if remainder + remainder < multiple:
        return nanoseconds - remainder
    rounded = nanoseconds + multiple - remainder
    return rounded if rounded <= MAX else MAX


def seconds_text(nanoseconds: int) -> str:
    """A duration rounded to whole seconds, as Gas City's reasons print elapsed and remaining times."""
    return to_string(round_to(nanoseconds, SECOND))
