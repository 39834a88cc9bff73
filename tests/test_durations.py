"""Go-style durations: parsing, the minutes-not-months rule, errors and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtcore.core.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("168h", 604800.0),
        ("2d", 172800.0),
        ("1d12h", 129600.0),
        ("1.5h", 5400.0),
        (".5h", 1800.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("2h45m10s", 9910.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("+5m", 300.0),
        ("+0", 0.0),
        ("-0", 0.0),
        ("-1h", -3600.0),
        ("-1h30m", -5400.0),
    ],
)
def test_parses_go_style_durations(text: str, seconds: float) -> None:
    parsed = parse_duration(text)
    assert parsed.seconds == pytest.approx(seconds)
    assert parsed.text == text


@pytest.mark.parametrize(("text", "seconds"), [("250us", 250e-6), ("250µs", 250e-6), ("250μs", 250e-6), ("40ns", 40e-9)])
def test_sub_millisecond_units(text: str, seconds: float) -> None:
    assert parse_duration(text).seconds == pytest.approx(seconds)


def test_m_is_minutes_never_months() -> None:
    assert parse_duration("1m").seconds == 60.0
    assert parse_duration("30m").seconds == 1800.0
    with pytest.raises(ValueError, match="months are not a duration"):
        parse_duration("1M")


def test_surrounding_whitespace_is_ignored_and_the_text_is_kept_as_written() -> None:
    parsed = parse_duration("  1h30m\n")
    assert parsed == Duration("1h30m", 5400.0)
    assert str(parsed) == "1h30m"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", "'5 minutes' is missing a unit after 5 (ns, us, ms, s, m, h or d)"),
        ("5", "'5' is missing a unit after 5 (ns, us, ms, s, m, h or d)"),
        ("1h30", "'1h30' is missing a unit after 30 (ns, us, ms, s, m, h or d)"),
        ("1M", "'1M' has unknown unit 'M' (m is minutes; months are not a duration)"),
        ("5y", "'5y' has unknown unit 'y'"),
        ("5mm", "'5mm' has unknown unit 'mm'"),
        ("5H", "'5H' has unknown unit 'H'"),
        ("", "is empty (write it like 90s, 5m, 1h30m or 2d)"),
        ("   ", "is empty (write it like 90s, 5m, 1h30m or 2d)"),
        ("1h 30m", "'1h 30m' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("-", "'-' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("+", "'+' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("+-5m", "'+-5m' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("1h-5m", "'1h-5m' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("٥m", "'٥m' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("５m", "'５m' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("1٥m", "'1٥m' is missing a unit after 1 (ns, us, ms, s, m, h or d)"),
        ("m", "'m' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        ("soon", "'soon' is not a duration (write it like 90s, 5m, 1h30m or 2d)"),
        (60, 'must be a string like "5m" or "1h30m", not 60'),
        (1.5, 'must be a string like "5m" or "1h30m", not 1.5'),
        (None, 'must be a string like "5m" or "1h30m", not None'),
        (True, 'must be a string like "5m" or "1h30m", not True'),
    ],
)
def test_rejects_bad_durations_with_a_specific_reason(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(("value", "message"), [
    ("", "is empty (write it like 90s, 5m or 1h30m: a Go duration, no d)"),
    ("soon", "'soon' is not a duration (write it like 90s, 5m or 1h30m: a Go duration, no d)"),
    ("2d", "'2d' has unknown unit 'd'"),
    ("5", "'5' is missing a unit after 5 (ns, us, ms, s, m, h)"),
])
def test_a_go_duration_is_never_hinted_with_days(value: str, message: str) -> None:
    """``--max-inactivity`` takes what Go's ``time.ParseDuration`` takes: its hints must not offer a ``d`` it refuses."""
    with pytest.raises(ValueError) as caught:
        parse_duration(value, days=False)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "0.5s"),
        (1.5, "1.5s"),
        (9.96, "9.9s"),
        (10, "10s"),
        (10.7, "10s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (300, "5m"),
        (3599, "59m59s"),
        (3600, "1h"),
        (3661, "1h1m"),
        (5400, "1h30m"),
        (86400, "1d"),
        (97200, "1d3h"),
        (173100, "2d5m"),
        (604800, "7d"),
        (-5, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["45s", "5m", "1m30s", "1h", "1h30m", "2d", "1d3h"])
def test_format_duration_round_trips_canonical_texts(text: str) -> None:
    assert format_duration(parse_duration(text).seconds) == text


# -- as Go's time.ParseDuration reads them: one leading sign, ASCII digits ---------------------------------

GO_UNITS = ["ns", "us", "µs", "ms", "s", "m", "h"]
GO_PARTS = st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.sampled_from(GO_UNITS)), min_size=1, max_size=4)


def spelled(parts: list[tuple[int, str]]) -> str:
    return "".join(f"{number}{unit}" for number, unit in parts)


@given(parts=GO_PARTS, sign=st.sampled_from(["", "+", "-"]))
def test_a_leading_sign_is_read_as_go_reads_it(parts: list[tuple[int, str]], sign: str) -> None:
    body = spelled(parts)
    unsigned = parse_duration(body).seconds
    signed = parse_duration(sign + body)
    assert signed.text == sign + body
    assert signed.seconds == pytest.approx(-unsigned if sign == "-" else unsigned)


@given(parts=GO_PARTS, digit=st.characters(categories=["Nd"]).filter(lambda char: not "0" <= char <= "9"),
       where=st.integers(min_value=0, max_value=30))
def test_a_digit_that_is_not_ascii_is_never_part_of_a_duration(parts: list[tuple[int, str]], digit: str, where: int) -> None:
    body = spelled(parts)
    at = where % (len(body) + 1)
    with pytest.raises(ValueError):
        parse_duration(body[:at] + digit + body[at:])


@given(parts=GO_PARTS)
def test_days_are_refused_where_a_flag_takes_only_gos_units(parts: list[tuple[int, str]]) -> None:
    body = spelled(parts)
    assert parse_duration(body, days=False).seconds == pytest.approx(parse_duration(body).seconds)
    with pytest.raises(ValueError, match="unknown unit 'd'"):
        parse_duration(body + "2d", days=False)

