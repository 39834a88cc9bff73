"""Property tests: the parsers and the gates hold their contracts for ANY input, not just the inputs we thought of.

Operators edit plugin.md, gtui.toml and escalation.json by hand, tools generate them and
disks corrupt them.  Whatever is in those files, the engine must answer with a one-line
reason (or its settings error), quickly, and never with a traceback that stops a patrol.
Hypothesis explores the space; ``@example`` pins the inputs that once killed the engine.

Nothing is mocked: every parse reads a real file from a temporary directory.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gtcore.core.clock import iso
from gtcore.core.durations import parse_duration
from gtcore.escalation.settings import load_escalation_settings
from gtcore.gates.decisions import GateDecision, GateFacts
from gtcore.gates.rules import evaluate
from gtcore.plugins.spec import GATE_TYPES, NAME_PATTERN, InvalidPlugin, Plugin, parse_plugin
from gtcore.town.settings import KNOWN_KEYS, SettingsError, load_settings

T = TypeVar("T")

TEN_YEARS = 315_360_000  # the longest duration gtui accepts, in seconds
MIB = 1024 * 1024
TIME_BOUND = 2.0  # seconds any single parse may take, for inputs up to ~1.2 MiB
TIMESTAMPS = st.floats(min_value=0, max_value=4e9, allow_nan=False)  # 1970 .. 2096


def fuzz(examples: int) -> settings:
    """Hypothesis settings for this file: bounded, no deadline flakiness on 2 cores, no example database in the repo."""
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


# -- plugin.md on disk --------------------------------------------------------------------


def frontmatter(toml: str, body: str = "Do the thing.\n") -> bytes:
    return f"+++\n{toml}\n+++\n{body}".encode()


VALID_HEAD = 'name = "p"\n[gate]\ntype = "manual"'


def nested_arrays(depth: int) -> bytes:
    return frontmatter(f"{VALID_HEAD}\n[extra]\nx = {'[' * depth}{']' * depth}")


def nested_tables(depth: int) -> bytes:
    return frontmatter(f"{VALID_HEAD}\n[extra]\nx = {'{a = ' * depth}1{'}' * depth}")


def padded_to(size: int) -> bytes:
    """A valid plugin.md of exactly ``size`` bytes (the body is padding)."""
    head = frontmatter(VALID_HEAD, "")
    return head + b"x" * (size - len(head))


KILLERS = {
    "500 nested arrays": nested_arrays(500),
    "500 nested inline tables": nested_tables(500),
    "a million unclosed brackets": b"+++\nx = " + b"[" * 1_000_000 + b"\n+++\n",
    "1 MiB + 1 byte": padded_to(MIB + 1),
    "only +++": b"+++\n",
    "NUL bytes": b"\x00" * 64,
    "NUL inside frontmatter": b'+++\nname = "p\x00"\n[gate]\ntype = "manual"\n+++\n\x00body\n',
    "5000-digit integer": frontmatter(f"{VALID_HEAD}\nversion = {'9' * 5000}"),
    "invalid UTF-8": b'+++\nname = "caf\xe9"\n+++\n',
    "BOM and CRLF, unclosed": b"\xef\xbb\xbf+++\r\nname = \"p\"\r\n",
    "overflowing duration": frontmatter('name = "p"\n[gate]\ntype = "cooldown"\nduration = "99999999999999999999h"'),
    "never-firing cron": frontmatter('name = "p"\n[gate]\ntype = "cron"\nschedule = "0 0 31 4 *"'),
}


def parse_raw(raw: bytes, run_sh: bool = False) -> tuple[Plugin | InvalidPlugin, Path, float]:
    """Write ``raw`` as a real plugin.md (with a run.sh beside it when asked), parse it, time it."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "p" / "plugin.md"
        path.parent.mkdir()
        path.write_bytes(raw)
        if run_sh:
            (path.parent / "run.sh").write_text("echo hi\n", encoding="utf-8")
        result, elapsed = timed(lambda: parse_plugin(path, "alpha", "bob"))
        return result, path, elapsed


def assert_parse_contract(raw: bytes, run_sh: bool = False) -> Plugin | InvalidPlugin:
    """parse_plugin returned (never raised), in time, with a well-formed answer."""
    try:
        result, path, elapsed = parse_raw(raw, run_sh)
    except Exception as exc:  # the contract: no exception ever leaves parse_plugin
        pytest.fail(f"parse_plugin raised {type(exc).__name__}: {str(exc)[:200]}")
    assert elapsed < TIME_BOUND, f"parse_plugin took {elapsed:.2f}s on {len(raw)} bytes"
    assert isinstance(result, (Plugin, InvalidPlugin)), result
    assert result.path == path
    assert result.rig == "alpha"
    if isinstance(result, InvalidPlugin):
        assert isinstance(result.error, str) and result.error.strip(), result
        assert "\n" not in result.error, result.error
        assert "Traceback" not in result.error and "RecursionError" not in result.error, result.error
        assert result.line is None or (type(result.line) is int and result.line >= 1), result.line
    else:
        assert_plugin_invariants(result)
    return result


def assert_plugin_invariants(plugin: Plugin) -> None:
    """What every VALID plugin promises the engine downstream."""
    assert NAME_PATTERN.match(plugin.name), plugin.name
    assert plugin.gate.type in GATE_TYPES
    for duration in (plugin.gate.duration, plugin.execution.timeout, plugin.gate.check_timeout):
        if duration is not None:
            assert math.isfinite(duration.seconds) and 0 < duration.seconds <= TEN_YEARS, duration


# -- TOML documents built from values -----------------------------------------------------


def toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(key)} = {toml_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"not a TOML value: {value!r}")


def toml_document(data: dict[str, Any]) -> str:
    """Top-level scalars and arrays as ``key = value``, tables as ``[key]`` sections (nested ones inline)."""
    lines = [f"{toml_string(key)} = {toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_string(key)}]")
            lines += [f"{toml_string(inner)} = {toml_value(item)}" for inner, item in value.items()]
    return "\n".join(lines) + "\n"


KEYS = st.text(max_size=12)
TOML_SCALARS = (
    st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.datetimes()
    | st.dates()
    | st.times()
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
TOML_DOCUMENTS = st.dictionaries(KEYS, TOML_VALUES, max_size=6)

DURATION_TEXTS = st.sampled_from([
    "5m", "1h30m", "0", "0s", "90", "5M", "1e3s", "-5m", "soon", "", " ", "87600h", "87600h1s", "99999999999999999999h",
    "9" * 400 + "s", "1" + "0" * 309 + "s", ".5s", "5.s", "١٢s", "1ns", "3650d",
])
VALID_CRONS = [
    "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
    "0 0 29 2 *", "*/7 * * * *", "30 2 * * *", "0 2 * * *", "30 1 * * *", "*/30 1-3 * * *",
    "0 3 * * *", "15 1 * * 0", "0 0 1 1 *", "59 23 31 12 *", "0 0 31 * *", "0 9 * * 1-5", "0 0 31 1,3 *",
]
NEVER_FIRING_CRONS = ["0 0 31 4 *", "0 0 30 2 *", "0 0 31 2 *", "0 0 31 6 *", "0 0 31 9 *", "0 0 31 11 *", "0 0 30,31 2 *"]
CRON_TEXTS = st.sampled_from([*VALID_CRONS, *NEVER_FIRING_CRONS, "61 * * * *", "every day", "0 0 3 * * *", "@reboot", "", "* * * * * * *"])
ZONES = [None, "UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kathmandu",
         "America/Sao_Paulo", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
ZONE_TEXTS = st.sampled_from([*(zone for zone in ZONES if zone), "Mars/Olympus", "America", "../etc/passwd", "", "UTC\x00"])


def maybe(plausible: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any] = TOML_VALUES) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, any other value (usually the wrong type) otherwise."""
    return plausible | wrong


GATE_TABLES = st.fixed_dictionaries({}, optional={
    "type": maybe(st.sampled_from([*GATE_TYPES, "sometimes", ""])),
    "duration": maybe(DURATION_TEXTS),
    "schedule": maybe(CRON_TEXTS),
    "timezone": maybe(ZONE_TEXTS),
    "check": maybe(st.sampled_from(["true", "", "  ", "test -f x"])),
    "check_timeout": maybe(DURATION_TEXTS),
    "on": maybe(st.sampled_from(["startup", "Start Up", "", "a" * 300])),
})
PLUGIN_DOCUMENTS = st.fixed_dictionaries({}, optional={
    "name": maybe(st.sampled_from(["p", "Bad Name", "", "-p", "p" * 500, "é"])),
    "description": TOML_VALUES,
    "version": TOML_VALUES,
    "enabled": TOML_VALUES,
    "gate": maybe(GATE_TABLES),
    "tracking": maybe(st.fixed_dictionaries({}, optional={
        "labels": maybe(st.lists(st.sampled_from(["team:ops", "nocolon", "a: b", ""]) | TOML_VALUES, max_size=3)),
        "digest": TOML_VALUES,
    })),
    "execution": maybe(st.fixed_dictionaries({}, optional={
        "type": maybe(st.sampled_from(["script", "agent", "docker"])),
        "timeout": maybe(DURATION_TEXTS),
        "notify_on_failure": TOML_VALUES,
        "severity": maybe(st.sampled_from(["low", "medium", "high", "critical", "urgent"])),
    })),
    "unknown": TOML_VALUES,
})


# -- 1. parse_plugin never raises ---------------------------------------------------------


@fuzz(150)
@given(raw=st.binary(max_size=4096))
@example(raw=b"")
@example(raw=b"+++\n")
@example(raw=b"\x00" * 64)
@example(raw=b"\xff\xfe\xfd")
@example(raw=b"\xef\xbb\xbf")
@example(raw=b"\r\n" * 100)
def test_parse_plugin_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert_parse_contract(raw)


@fuzz(150)
@given(inside=st.binary(max_size=2048), body=st.binary(max_size=256), crlf=st.booleans(), bom=st.booleans(), run_sh=st.booleans())
def test_parse_plugin_never_raises_on_arbitrary_bytes_between_frontmatter_lines(
    inside: bytes, body: bytes, crlf: bool, bom: bool, run_sh: bool
) -> None:
    newline = b"\r\n" if crlf else b"\n"
    raw = (b"\xef\xbb\xbf" if bom else b"") + b"+++" + newline + inside + newline + b"+++" + newline + body
    assert_parse_contract(raw, run_sh)


@fuzz(150)
@given(document=TOML_DOCUMENTS, body=st.text(max_size=100), run_sh=st.booleans())
def test_parse_plugin_never_raises_on_arbitrary_toml_documents(document: dict[str, Any], body: str, run_sh: bool) -> None:
    assert_parse_contract(frontmatter(toml_document(document), body), run_sh)


@fuzz(300)
@given(document=PLUGIN_DOCUMENTS, body=st.sampled_from(["", "  \n", "Do the thing.\n", "+++\n"]), run_sh=st.booleans())
def test_parse_plugin_never_raises_on_plugin_shaped_documents_with_wrong_values(
    document: dict[str, Any], body: str, run_sh: bool
) -> None:
    """Known keys with every kind of value: each validation branch sees wrong types, absurd numbers, huge strings."""
    assert_parse_contract(frontmatter(toml_document(document), body), run_sh)


@pytest.mark.parametrize("raw", list(KILLERS.values()), ids=list(KILLERS))
def test_known_killers_are_answered_within_the_time_bound(raw: bytes) -> None:
    """Each of these once raised or hung; now each is a plain answer (most of them an invalid plugin)."""
    assert_parse_contract(raw)


@pytest.mark.parametrize(
    "raw",
    [nested_arrays(64), nested_arrays(500), nested_tables(64), nested_tables(500), KILLERS["a million unclosed brackets"],
     frontmatter(f"{VALID_HEAD}\n[extra]\nx = {'[{a = ' * 300}1{'}]' * 300}")],
    ids=["arrays-64", "arrays-500", "tables-64", "tables-500", "million-brackets", "mixed-300"],
)
def test_deep_nesting_is_invalid_with_a_clear_reason(raw: bytes) -> None:
    result = assert_parse_contract(raw)
    assert isinstance(result, InvalidPlugin), "deeper than ~32 levels must be invalid"
    assert "RecursionError" not in result.error and "recursion depth" not in result.error, result.error


def test_moderate_nesting_is_still_a_valid_plugin() -> None:
    """The depth cap must not reject ordinary structure: an 8-deep value is only an unknown-key warning."""
    result = assert_parse_contract(nested_arrays(8))
    assert isinstance(result, Plugin), getattr(result, "error", result)


def test_a_plugin_md_over_one_mib_is_invalid_over_the_size_cap() -> None:
    result = assert_parse_contract(padded_to(MIB + 1))
    assert isinstance(result, InvalidPlugin)
    assert "size cap" in result.error, result.error


def test_a_plugin_md_of_exactly_one_mib_is_accepted() -> None:
    """The cap is "over 1 MiB": a file of exactly 1 MiB is still read and parsed."""
    result = assert_parse_contract(padded_to(MIB))
    assert isinstance(result, Plugin), getattr(result, "error", result)


def test_a_large_file_of_many_keys_under_the_cap_parses_within_the_bound() -> None:
    """Under the cap, ~1 MiB of unknown keys (one warning each) must still be quick."""
    keys = "".join(f"k{index} = {index}\n" for index in range(60_000))
    raw = frontmatter(f"{keys}{VALID_HEAD}")
    assert len(raw) < MIB
    assert_parse_contract(raw)


def test_a_huge_body_of_plus_lines_is_answered_within_the_bound() -> None:
    assert_parse_contract(b"+++\n" * (MIB // 4 + 50_000))


# -- 2. parse_duration raises only ValueError ---------------------------------------------


def assert_duration_contract(value: object) -> None:
    try:
        duration, elapsed = timed(lambda: parse_duration(value))
    except ValueError as exc:
        assert str(exc), "a refusal says why"
        return
    except Exception as exc:
        pytest.fail(f"parse_duration({value!r:.80}) raised {type(exc).__name__}: {exc}")
    assert elapsed < TIME_BOUND
    assert isinstance(duration.seconds, float | int)
    assert math.isfinite(duration.seconds) and abs(duration.seconds) <= TEN_YEARS, (value, duration.seconds)


UNITS = ["ns", "us", "µs", "μs", "ms", "s", "m", "h", "d", "M", "H", "", "y"]
DURATION_PARTS = st.tuples(
    st.integers(min_value=0, max_value=10**40).map(str) | st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(UNITS),
)


@fuzz(300)
@given(text=st.text(max_size=60) | st.from_regex(r"\A\s?(\d{1,25}(\.\d{0,25})?(ns|us|µs|μs|ms|s|m|h|d|M|)){1,5}\s?\Z"))
@example(text="99999999999999999999h")
@example(text="9" * 400 + "s")
@example(text="1" + "0" * 309 + "s")
@example(text="1e400s")
@example(text="inf")
@example(text="nan")
@example(text="١٢s")
@example(text="87600h1s")
@example(text="\u00a05m\u00a0")
@example(text="5m" * 10_000)
def test_parse_duration_raises_only_value_error_for_any_text(text: str) -> None:
    assert_duration_contract(text)


@fuzz(200)
@given(parts=st.lists(DURATION_PARTS, min_size=1, max_size=6))
def test_parse_duration_raises_only_value_error_for_any_sum_of_parts(parts: list[tuple[str, str]]) -> None:
    assert_duration_contract("".join(number + unit for number, unit in parts))


@fuzz(150)
@given(value=st.none() | st.booleans() | st.integers() | st.floats() | st.binary() | st.lists(st.text(), max_size=3)
       | st.dictionaries(st.text(), st.text(), max_size=3) | st.datetimes() | st.just(object()) | TOML_VALUES)
@example(value=10**5000)
def test_parse_duration_raises_only_value_error_for_any_object(value: object) -> None:
    assert_duration_contract(value)


@pytest.mark.parametrize("text", ["99999999999999999999h", "9" * 400 + "s", "1" + "0" * 309 + "s", "87600h1s", "3651d"],
                         ids=["20-nines-hours", "400-nines-seconds", "1e309-seconds", "ten-years-and-a-second", "3651-days"])
def test_durations_beyond_ten_years_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["87600h", "3650d", "315360000s"])
def test_exactly_ten_years_is_accepted(text: str) -> None:
    assert parse_duration(text).seconds == TEN_YEARS


# -- 3. cron and cooldown gates never raise -----------------------------------------------


def gate_plugin(directory: Path, gate: str) -> Plugin | InvalidPlugin:
    directory.mkdir(parents=True)
    (directory / "plugin.md").write_bytes(frontmatter(f'name = "p"\n[gate]\n{gate}'))
    (directory / "run.sh").write_text("echo hi\n", encoding="utf-8")
    return parse_plugin(directory / "plugin.md")


def cron_gate(schedule: str, zone: str | None) -> str:
    return f'type = "cron"\nschedule = "{schedule}"' + (f'\ntimezone = "{zone}"' if zone else "")


@pytest.fixture(scope="module")
def cron_plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str | None], Plugin | InvalidPlugin]:
    """Every valid schedule in every zone, parsed once from real files."""
    root = tmp_path_factory.mktemp("cron")
    return {
        (schedule, zone): gate_plugin(root / f"c{index}-{zone_index}", cron_gate(schedule, zone))
        for index, schedule in enumerate(VALID_CRONS)
        for zone_index, zone in enumerate(ZONES)
    }


COOLDOWNS = ["1ns", "1s", "1h", "87600h", "3650d", "315360000s", "525600m", "87599h59m59s"]


@pytest.fixture(scope="module")
def cooldown_plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plugin | InvalidPlugin]:
    root = tmp_path_factory.mktemp("cooldown")
    return {text: gate_plugin(root / f"d{index}", f'type = "cooldown"\nduration = "{text}"') for index, text in enumerate(COOLDOWNS)}


@pytest.mark.parametrize("schedule", NEVER_FIRING_CRONS)
def test_a_cron_schedule_that_never_fires_is_invalid_at_parse_time(tmp_path: Path, schedule: str) -> None:
    """croniter accepts these, but no day matches within 5 years: the gate would search forever or crash every patrol."""
    result = gate_plugin(tmp_path / "p", cron_gate(schedule, None))
    assert isinstance(result, InvalidPlugin), f"{schedule!r} never fires but parsed as valid"
    assert result.error and "\n" not in result.error


def test_every_valid_cron_schedule_parses_in_every_zone(cron_plugins: dict[tuple[str, str | None], Plugin | InvalidPlugin]) -> None:
    """Rare but real schedules (29 February, 31st of a month) must not be mistaken for never-firing ones."""
    invalid = {key: result.error for key, result in cron_plugins.items() if isinstance(result, InvalidPlugin)}
    assert invalid == {}


def assert_decision_shape(decision: GateDecision, now: float) -> None:
    assert isinstance(decision, GateDecision)
    assert isinstance(decision.open, bool)
    assert isinstance(decision.reason, str) and decision.reason and "\n" not in decision.reason
    for moment in (decision.next_open_at, decision.since):
        if moment is not None:
            assert math.isfinite(moment), decision
            iso(moment)  # the patrol report prints it: it must be a representable date
    if not decision.open and decision.next_open_at is not None:
        assert decision.next_open_at > now, decision


@fuzz(300)
@given(schedule=st.sampled_from(VALID_CRONS), zone=st.sampled_from(ZONES), last=st.none() | TIMESTAMPS, now=TIMESTAMPS,
       mtime=TIMESTAMPS)
@example(schedule="0 0 29 2 *", zone="Europe/Paris", last=0.0, now=4e9, mtime=0.0)
@example(schedule="0 0 29 2 *", zone="UTC", last=4e9, now=0.0, mtime=0.0)
@example(schedule="30 2 * * *", zone="Europe/Paris", last=1711839600.0, now=1711850400.0, mtime=0.0)  # spring forward 2024-03-31
@example(schedule="30 1 * * *", zone="America/New_York", last=1730611800.0, now=1730620000.0, mtime=0.0)  # fall back 2024-11-03
@example(schedule="@yearly", zone="Pacific/Kiritimati", last=None, now=4e9, mtime=4e9)
@example(schedule="*/7 * * * *", zone="Australia/Lord_Howe", last=None, now=0.0, mtime=0.0)
def test_cron_gate_evaluation_never_raises(
    cron_plugins: dict[tuple[str, str | None], Plugin | InvalidPlugin], schedule: str, zone: str | None, last: float | None,
    now: float, mtime: float,
) -> None:
    plugin = cron_plugins[(schedule, zone)]
    assume(isinstance(plugin, Plugin))  # test_every_valid_cron_schedule_parses_in_every_zone reports the others
    assert isinstance(plugin, Plugin)
    try:
        decision = evaluate(plugin._replace(mtime=mtime), GateFacts(last_started_at=last), {}, now)
    except Exception as exc:
        pytest.fail(f"cron gate {schedule!r} in {zone} raised {type(exc).__name__}: {exc}")
    assert_decision_shape(decision, now)


def test_cooldowns_up_to_ten_years_are_valid(cooldown_plugins: dict[str, Plugin | InvalidPlugin]) -> None:
    invalid = {text: result.error for text, result in cooldown_plugins.items() if isinstance(result, InvalidPlugin)}
    assert invalid == {}


@fuzz(200)
@given(text=st.sampled_from(COOLDOWNS), last=st.none() | TIMESTAMPS, now=TIMESTAMPS, mtime=TIMESTAMPS)
@example(text="87600h", last=4e9, now=0.0, mtime=0.0)
@example(text="87600h", last=4e9, now=4e9, mtime=4e9)
@example(text="3650d", last=0.0, now=4e9, mtime=0.0)
def test_cooldown_gate_evaluation_with_huge_durations_never_raises(
    cooldown_plugins: dict[str, Plugin | InvalidPlugin], text: str, last: float | None, now: float, mtime: float
) -> None:
    plugin = cooldown_plugins[text]
    assume(isinstance(plugin, Plugin))  # test_cooldowns_up_to_ten_years_are_valid reports the others
    assert isinstance(plugin, Plugin)
    try:
        decision = evaluate(plugin._replace(mtime=mtime), GateFacts(last_started_at=last), {}, now)
    except Exception as exc:  # OverflowError above all
        pytest.fail(f"cooldown {text} raised {type(exc).__name__}: {exc}")
    assert_decision_shape(decision, now)


# -- 4. settings files raise only SettingsError -------------------------------------------


def settings_outcome(load: Callable[[], object]) -> None:
    """Run ``load``: a result or a SettingsError with a reason, within the time bound; any other exception fails."""
    started = time.monotonic()
    try:
        load()
    except SettingsError as exc:
        assert str(exc).strip()
    except Exception as exc:
        pytest.fail(f"raised {type(exc).__name__} instead of SettingsError: {str(exc)[:200]}")
    elapsed = time.monotonic() - started
    assert elapsed < TIME_BOUND, f"took {elapsed:.2f}s"


def assert_gtui_toml_contract(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "gtui.toml").write_bytes(raw)
        settings_outcome(lambda: load_settings(directory))


def assert_escalation_json_contract(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "escalation.json").write_bytes(raw)
        settings_outcome(lambda: load_escalation_settings(directory, {}))


SETTINGS_DOCUMENTS = st.fixed_dictionaries({}, optional={
    "dogs": maybe(st.integers()),
    "patrol_interval": maybe(DURATION_TEXTS),
    "agent_command": maybe(st.lists(st.text(max_size=10), max_size=3)),
    "retention_days": maybe(st.integers()),
    "keymap": maybe(st.dictionaries(st.text(max_size=10), maybe(st.text(max_size=10)), max_size=3)),
    "stale": maybe(st.fixed_dictionaries({}, optional={
        "binaries": maybe(st.lists(maybe(st.fixed_dictionaries({}, optional={
            key: maybe(st.text(max_size=10)) for key in ("name", "binary", "repo", "commit_command")
        })), max_size=3)),
    })),
    "kill_grace": maybe(DURATION_TEXTS),
    "unknown": TOML_VALUES,
})
SETTINGS_KILLERS = {
    "500 nested arrays": b"x = " + b"[" * 500 + b"]" * 500 + b"\n",
    "500 nested inline tables": b"x = " + b"{a = " * 500 + b"1" + b"}" * 500 + b"\n",
    "a million unclosed brackets": b"x = " + b"[" * 1_000_000,
    "5000-digit dogs": b"dogs = " + b"9" * 5000 + b"\n",
    "NUL bytes": b"\x00" * 64,
    "invalid UTF-8": b"dogs = \xff\n",
    "BOM": b"\xef\xbb\xbfdogs = 2\n",
    "overflowing kill_grace": b'kill_grace = "99999999999999999999h"\n',
    "400-digit patrol_interval": b'patrol_interval = "' + b"9" * 400 + b's"\n',
}


@fuzz(100)
@given(raw=st.binary(max_size=2048))
def test_load_settings_raises_only_settings_error_for_arbitrary_bytes(raw: bytes) -> None:
    assert_gtui_toml_contract(raw)


@fuzz(150)
@given(document=TOML_DOCUMENTS)
def test_load_settings_raises_only_settings_error_for_arbitrary_toml(document: dict[str, Any]) -> None:
    assert_gtui_toml_contract(toml_document(document).encode())


@fuzz(200)
@given(document=SETTINGS_DOCUMENTS)
def test_load_settings_raises_only_settings_error_for_settings_shaped_documents(document: dict[str, Any]) -> None:
    assert_gtui_toml_contract(toml_document(document).encode())


@pytest.mark.parametrize("raw", list(SETTINGS_KILLERS.values()), ids=list(SETTINGS_KILLERS))
def test_load_settings_known_killers(raw: bytes) -> None:
    assert_gtui_toml_contract(raw)


WRONG_VALUES = [True, 1.5, float("inf"), float("nan"), "x", "", [1], [], {"a": 1}, {}, -1, 0, 2**63, -(2**63), datetime(2000, 1, 1)]


@pytest.mark.parametrize("key", sorted(KNOWN_KEYS))
@pytest.mark.parametrize("value", WRONG_VALUES, ids=[repr(value)[:20] for value in WRONG_VALUES])
def test_load_settings_wrong_types_for_every_known_key(key: str, value: Any) -> None:
    assert_gtui_toml_contract(toml_document({key: value}).encode())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15,
)
CONTACT_STRINGS = ("human_email", "human_sms", "smtp_host", "smtp_from", "smtp_user", "smtp_pass")
ACTIONS = st.sampled_from(["bead", "log", "mail:mayor", "mail:", "email:human", "sms:human", "slack", "nope", ""])
URLS = st.sampled_from(["http://[", "https://[::1", "http://[::1]:99999/x", "https://hooks.example/x", "ftp://x", "", "\x00"])


def json_maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, any JSON value (usually the wrong type) otherwise."""
    return maybe(plausible, JSON_VALUES)


CONTACTS = st.fixed_dictionaries({}, optional={
    **{key: json_maybe(st.text(max_size=20) | URLS) for key in CONTACT_STRINGS},
    "sms_webhook": json_maybe(URLS),
    "slack_webhook": json_maybe(URLS),
    "smtp_port": json_maybe(st.integers() | st.integers(min_value=10**20) | st.floats() | st.booleans() | st.text(max_size=6)),
    "smtp_starttls": JSON_VALUES,
})
SEVERITY_KEYS = st.sampled_from(["low", "medium", "high", "critical", "urgent", ""])
ESCALATION_DOCUMENTS = st.fixed_dictionaries({}, optional={
    "routes": json_maybe(st.dictionaries(SEVERITY_KEYS, json_maybe(st.lists(json_maybe(ACTIONS), max_size=4)), max_size=4)),
    "contacts": json_maybe(CONTACTS),
    "stale_threshold": json_maybe(DURATION_TEXTS),
    "max_reescalations": json_maybe(st.integers()),
})
ESCALATION_KILLERS = {
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
    "deep routes": b'{"routes": {"low": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    "5000-digit max_reescalations": b'{"max_reescalations": ' + b"9" * 5000 + b"}",
    "5000-digit smtp_port": b'{"contacts": {"smtp_port": ' + b"9" * 5000 + b"}}",
    "huge smtp_port": b'{"contacts": {"smtp_port": 100000000000000000000000000000}}',
    "float smtp_port": b'{"contacts": {"smtp_port": 25.0}}',
    "string smtp_port": b'{"contacts": {"smtp_port": "25"}}',
    "bool smtp_port": b'{"contacts": {"smtp_port": true}}',
    "NaN smtp_port": b'{"contacts": {"smtp_port": NaN}}',
    "broken IPv6 webhook": b'{"contacts": {"slack_webhook": "http://["}}',
    "broken IPv6 sms webhook": b'{"contacts": {"sms_webhook": "https://[::1"}}',
    "overflowing stale_threshold": b'{"stale_threshold": "99999999999999999999h"}',
    "NUL bytes": b"\x00" * 64,
    "invalid UTF-8": b'{"x": "\xff"}',
    "BOM": b'\xef\xbb\xbf{"max_reescalations": 1}',
    "lone surrogate": b'{"contacts": {"smtp_host": "\\ud800"}}',
}


@fuzz(100)
@given(raw=st.binary(max_size=2048))
def test_load_escalation_settings_raises_only_settings_error_for_arbitrary_bytes(raw: bytes) -> None:
    assert_escalation_json_contract(raw)


@fuzz(200)
@given(value=JSON_VALUES)
def test_load_escalation_settings_raises_only_settings_error_for_any_json_value(value: Any) -> None:
    assert_escalation_json_contract(json.dumps(value).encode())


@fuzz(250)
@given(document=ESCALATION_DOCUMENTS)
def test_load_escalation_settings_raises_only_settings_error_for_escalation_shaped_documents(document: dict[str, Any]) -> None:
    assert_escalation_json_contract(json.dumps(document).encode())


@pytest.mark.parametrize("raw", list(ESCALATION_KILLERS.values()), ids=list(ESCALATION_KILLERS))
def test_load_escalation_settings_known_killers(raw: bytes) -> None:
    assert_escalation_json_contract(raw)


ESCALATION_WRONG = [None, True, 1.5, "x", "", [1], [], {"a": 1}, -1, 10**30]


@pytest.mark.parametrize("key", ["routes", "contacts", "stale_threshold", "max_reescalations"])
@pytest.mark.parametrize("value", ESCALATION_WRONG, ids=[repr(value)[:20] for value in ESCALATION_WRONG])
def test_load_escalation_settings_wrong_types_for_every_field(key: str, value: Any) -> None:
    assert_escalation_json_contract(json.dumps({key: value}).encode())
