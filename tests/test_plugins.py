"""plugin.md parsing and validation: every field, the defaults, and every way a file can be wrong.

Files are written as ``+++`` / frontmatter / ``+++`` / body, so line N of a
frontmatter string below is line N + 1 of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gtcore.plugins.spec import InvalidPlugin, Plugin, parse_plugin

MakePlugin = Callable[..., Path]

MANUAL = 'name = "p"\n[gate]\ntype = "manual"'
RUN_SH = "#!/bin/bash\necho hi\n"

FULL = """\
name = "nightly-report"
description = "Summarise the night"
version = 3
enabled = false

[gate]
type = "cron"
schedule = "0 3 * * *"
timezone = "Europe/Paris"

[tracking]
labels = ["team:ops", "area:reports"]
digest = true

[execution]
type = "script"
timeout = "15m"
notify_on_failure = true
severity = "high"
"""


def parse_ok(path: Path, rig: str = "town", crew: str | None = None) -> Plugin:
    result = parse_plugin(path, rig, crew)
    assert isinstance(result, Plugin), getattr(result, "error", result)
    return result


def parse_bad(path: Path) -> InvalidPlugin:
    result = parse_plugin(path, "alpha")
    assert isinstance(result, InvalidPlugin), f"expected invalid, parsed {result!r}"
    assert result.path == path
    assert result.rig == "alpha"
    return result


# -- every field --------------------------------------------------------------------------


def test_every_field_is_parsed(tmp_path: Path, make_plugin: MakePlugin) -> None:
    path = make_plugin(tmp_path / "nightly", FULL, "# Nightly\n\nWrite the report.\n", run_sh=RUN_SH)
    plugin = parse_ok(path, rig="alpha", crew="bob")
    assert plugin.name == "nightly-report"
    assert plugin.description == "Summarise the night"
    assert plugin.version == 3
    assert plugin.enabled is False
    assert (plugin.gate.type, plugin.gate.schedule, plugin.gate.timezone) == ("cron", "0 3 * * *", "Europe/Paris")
    assert plugin.tracking.labels == ("team:ops", "area:reports")
    assert plugin.tracking.digest is True
    assert plugin.execution.type == "script"
    assert plugin.execution.timeout.seconds == 900 and str(plugin.execution.timeout) == "15m"
    assert plugin.execution.notify_on_failure is True
    assert plugin.execution.severity == "high"
    assert plugin.instructions == "# Nightly\n\nWrite the report."
    assert plugin.has_run_script is True
    assert (plugin.rig, plugin.crew, plugin.path) == ("alpha", "bob", path)
    assert plugin.directory == path.parent and plugin.run_script == path.parent / "run.sh"
    assert plugin.mtime == path.stat().st_mtime
    assert plugin.warnings == ()


def test_json_shapes_of_gate_tracking_and_execution(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "n", FULL, run_sh=RUN_SH))
    assert plugin.gate.to_json() == {"type": "cron", "schedule": "0 3 * * *", "timezone": "Europe/Paris"}
    assert plugin.tracking.to_json() == {"labels": ["team:ops", "area:reports"], "digest": True}
    assert plugin.execution.to_json() == {"type": "script", "timeout": "15m", "notify_on_failure": True, "severity": "high", "hosts": []}
    assert plugin.gate.describe() == "cron 0 3 * * *"


@pytest.mark.parametrize(
    ("gate", "fields", "as_json", "described"),
    [
        ('type = "cooldown"\nduration = "1h30m"', {"duration": 5400.0}, {"type": "cooldown", "duration": "1h30m"}, "cooldown 1h30m"),
        ('type = "cron"\nschedule = "*/5 * * * *"', {"schedule": "*/5 * * * *", "timezone": None},
         {"type": "cron", "schedule": "*/5 * * * *", "timezone": None}, "cron */5 * * * *"),
        ('type = "cron"\nschedule = "@daily"\ntimezone = "UTC"', {"schedule": "@daily", "timezone": "UTC"},
         {"type": "cron", "schedule": "@daily", "timezone": "UTC"}, "cron @daily"),
        ('type = "condition"\ncheck = "test -f ready"\ncheck_timeout = "5s"', {"check": "test -f ready", "check_timeout": 5.0},
         {"type": "condition", "check": "test -f ready", "check_timeout": "5s"}, "condition test -f ready"),
        ('type = "condition"\ncheck = "true"', {"check": "true", "check_timeout": 30.0},
         {"type": "condition", "check": "true", "check_timeout": "30s"}, "condition true"),
        ('type = "event"\non = "startup"', {"on": "startup"}, {"type": "event", "on": "startup"}, "event startup"),
        ('type = "manual"', {}, {"type": "manual"}, "manual"),
    ],
)
def test_each_gate_type(tmp_path: Path, make_plugin: MakePlugin, gate: str, fields: dict, as_json: dict, described: str) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "g", f'name = "g"\n[gate]\n{gate}'))
    for key, expected in fields.items():
        value = getattr(plugin.gate, key)
        assert (value.seconds if hasattr(value, "seconds") else value) == expected, key
    assert plugin.gate.to_json() == as_json
    assert plugin.gate.describe() == described
    assert plugin.warnings == ()


@pytest.mark.parametrize(("literal", "expected"), [("7", 7), ('"1.2.0"', "1.2.0"), ('"v2"', "v2")])
def test_version_may_be_an_integer_or_a_string(tmp_path: Path, make_plugin: MakePlugin, literal: str, expected: object) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "v", f"version = {literal}\n{MANUAL}"))
    assert plugin.version == expected
    assert type(plugin.version) is type(expected)


def test_defaults_when_fields_are_absent(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", MANUAL, "Check the mail.\n"))
    assert plugin.description == ""
    assert plugin.version is None
    assert plugin.enabled is True
    assert plugin.tracking.labels == () and plugin.tracking.digest is False
    assert plugin.execution.type == "agent"
    assert plugin.execution.timeout.seconds == 600 and str(plugin.execution.timeout) == "10m"
    assert plugin.execution.notify_on_failure is False
    assert plugin.execution.severity == "medium"
    assert plugin.gate.check_timeout.seconds == 30 and str(plugin.gate.check_timeout) == "30s"
    assert plugin.has_run_script is False
    assert (plugin.rig, plugin.crew) == ("town", None)


def test_execution_type_defaults_to_script_when_run_sh_exists(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", MANUAL, "", run_sh=RUN_SH))
    assert plugin.execution.type == "script"
    assert plugin.has_run_script is True
    assert plugin.instructions == ""


def test_explicit_agent_type_wins_over_run_sh(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", f'{MANUAL}\n[execution]\ntype = "agent"', "Ask the agent.\n", run_sh=RUN_SH))
    assert plugin.execution.type == "agent"
    assert plugin.has_run_script is True


def test_condition_gate_reads_check_timeout_default_30s(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "c", 'name = "c"\n[gate]\ntype = "condition"\ncheck = "true"'))
    assert plugin.gate.check_timeout.seconds == 30


def test_body_may_contain_plus_lines_and_crlf_and_a_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p" / "plugin.md"
    path.parent.mkdir()
    path.write_bytes('\ufeff+++\r\nname = "p"\r\n[gate]\r\ntype = "manual"\r\n+++\r\nStep one\r\n+++\r\nStep two\r\n'.encode())
    plugin = parse_ok(path)
    assert plugin.name == "p"
    assert plugin.instructions.replace("\r\n", "\n") == "Step one\n+++\nStep two"


# -- warnings -----------------------------------------------------------------------------


def test_unknown_keys_warn_with_their_line_but_do_not_invalidate(tmp_path: Path, make_plugin: MakePlugin) -> None:
    frontmatter = """\
name = "p"
colour = "blue"
[gate]
type = "manual"
flavour = 1
[tracking]
digest = true
owner = "me"
[execution]
retries = 3
[extras]
x = 1"""
    plugin = parse_ok(make_plugin(tmp_path / "p", frontmatter))
    assert plugin.tracking.digest is True
    assert list(plugin.warnings) == [
        "unknown key 'colour' (line 3)",
        "unknown key 'extras' (line 12)",
        "unknown key 'flavour' in [gate] (line 6)",
        "unknown key 'owner' in [tracking] (line 9)",
        "unknown key 'retries' in [execution] (line 11)",
    ]


@pytest.mark.parametrize(
    ("gate", "warnings"),
    [
        ('type = "cooldown"\nduration = "5m"\nschedule = "0 3 * * *"\ntimezone = "UTC"',
         ["gate.schedule is ignored by a cooldown gate (line 6)", "gate.timezone is ignored by a cooldown gate (line 7)"]),
        ('type = "manual"\non = "startup"\ncheck = "true"',
         ["gate.on is ignored by a manual gate (line 5)", "gate.check is ignored by a manual gate (line 6)"]),
        ('type = "event"\non = "startup"\nduration = "1h"', ["gate.duration is ignored by a event gate (line 6)"]),
        ('type = "cron"\nschedule = "0 * * * *"\ncheck_timeout = "5s"', ["gate.check_timeout is ignored by a cron gate (line 6)"]),
    ],
)
def test_gate_fields_that_do_not_apply_warn(tmp_path: Path, make_plugin: MakePlugin, gate: str, warnings: list[str]) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", f'name = "p"\n[gate]\n{gate}'))
    assert list(plugin.warnings) == warnings


def test_an_ignored_gate_field_is_not_validated(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "5m"\ncheck_timeout = "soon"'))
    assert plugin.gate.duration is not None and plugin.gate.duration.seconds == 300
    assert list(plugin.warnings) == ["gate.check_timeout is ignored by a cooldown gate (line 6)"]


# -- malformed files ----------------------------------------------------------------------

INVALID_FRONTMATTER = [
    # (id, frontmatter, body, error, line)
    ("invalid-toml", 'name = "p"\n\n[gate]\ntype = cooldown', "x", "invalid TOML: Invalid value", 5),
    ("duplicate-key", 'name = "p"\nname = "q"\n[gate]\ntype = "manual"', "x", "invalid TOML: Cannot overwrite a value", 3),
    ("missing-name", '[gate]\ntype = "manual"', "x", "missing required field 'name'", None),
    ("bad-name-pattern", 'name = "Bad Name"\n[gate]\ntype = "manual"', "x",
     "name 'Bad Name' is invalid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", 2),
    ("name-starts-with-dash", 'description = "d"\nname = "-p"\n[gate]\ntype = "manual"', "x",
     "name '-p' is invalid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", 3),
    ("name-wrong-type", 'name = 5\n[gate]\ntype = "manual"', "x", "name must be a string, not 5", 2),
    ("description-wrong-type", 'name = "p"\ndescription = ["a"]\n[gate]\ntype = "manual"', "x",
     "description must be a string, not ['a']", 3),
    ("version-float", 'name = "p"\nversion = 1.5\n[gate]\ntype = "manual"', "x", "version must be a string or an integer, not 1.5", 3),
    ("version-bool", 'name = "p"\nversion = true\n[gate]\ntype = "manual"', "x", "version must be a string or an integer, not True", 3),
    ("enabled-not-bool", 'name = "p"\nenabled = "yes"\n[gate]\ntype = "manual"', "x", "enabled must be true or false, not 'yes'", 3),
    ("enabled-int", 'name = "p"\nenabled = 1\n[gate]\ntype = "manual"', "x", "enabled must be true or false, not 1", 3),
    ("gate-not-a-table", 'name = "p"\ngate = "manual"', "x", "gate must be a table, not 'manual'", 3),
    ("gate-without-type", 'name = "p"\n[gate]\nduration = "5m"', "x",
     "gate.type is missing (cooldown, cron, condition, event or manual)", 3),
    ("gate-type-not-string", 'name = "p"\n[gate]\ntype = 1', "x", "gate.type must be a string, not 1", 4),
    ("unknown-gate-type", 'name = "p"\n[gate]\ntype = "sometimes"', "x",
     "gate.type 'sometimes' is not one of cooldown, cron, condition, event, manual", 4),
    ("cooldown-without-duration", 'name = "p"\n[gate]\ntype = "cooldown"', "x", "a cooldown gate needs gate.duration", 4),
    ("cron-without-schedule", 'name = "p"\n[gate]\ntype = "cron"', "x", "a cron gate needs gate.schedule", 4),
    ("condition-without-check", 'name = "p"\n[gate]\ntype = "condition"', "x", "a condition gate needs gate.check", 4),
    ("event-without-on", 'name = "p"\n[gate]\ntype = "event"', "x", "a event gate needs gate.on", 4),
    ("duration-words", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "5 minutes"', "x",
     "gate.duration '5 minutes' is missing a unit after 5 (ns, us, ms, s, m, h or d)", 5),
    ("duration-months", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "1M"', "x",
     "gate.duration '1M' has unknown unit 'M' (m is minutes; months are not a duration)", 5),
    ("duration-empty", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = ""', "x",
     "gate.duration is empty (write it like 90s, 5m, 1h30m or 2d)", 5),
    ("duration-int", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = 60', "x",
     'gate.duration must be a string like "5m" or "1h30m", not 60', 5),
    ("duration-zero", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "0s"', "x", "gate.duration must be longer than zero", 5),
    ("duration-negative", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "-1h"', "x", "gate.duration must be longer than zero", 5),
    ("duration-arabic-digit", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "٥m"', "x",
     "gate.duration '٥m' is not a duration (write it like 90s, 5m, 1h30m or 2d)", 5),
    ("cron-bad-schedule", 'name = "p"\n[gate]\ntype = "cron"\nschedule = "every day"', "x",
     "gate.schedule 'every day' is not a valid cron expression (minute hour day month weekday)", 5),
    ("cron-out-of-range", 'name = "p"\n[gate]\ntype = "cron"\nschedule = "61 * * * *"', "x",
     "gate.schedule '61 * * * *' is not a valid cron expression (minute hour day month weekday)", 5),
    ("cron-six-fields", 'name = "p"\n[gate]\ntype = "cron"\nschedule = "0 0 3 * * *"', "x",
     "gate.schedule '0 0 3 * * *' is not a valid cron expression (minute hour day month weekday)", 5),
    ("cron-empty-schedule", 'name = "p"\n[gate]\ntype = "cron"\nschedule = " "', "x", "gate.schedule is empty", 5),
    ("bad-timezone", 'name = "p"\n[gate]\ntype = "cron"\nschedule = "0 3 * * *"\ntimezone = "Mars/Olympus"', "x",
     "gate.timezone 'Mars/Olympus' is not a known time zone (e.g. UTC, Europe/Paris)", 6),
    ("timezone-is-a-tzdata-directory", 'name = "p"\n[gate]\ntype = "cron"\nschedule = "0 3 * * *"\ntimezone = "America"', "x",
     "gate.timezone 'America' is not a known time zone (e.g. UTC, Europe/Paris)", 6),
    ("timezone-path", 'name = "p"\n[gate]\ntype = "cron"\nschedule = "0 3 * * *"\ntimezone = "../etc/passwd"', "x",
     "gate.timezone '../etc/passwd' is not a known time zone (e.g. UTC, Europe/Paris)", 6),
    ("condition-empty-check", 'name = "p"\n[gate]\ntype = "condition"\ncheck = "  "', "x", "gate.check is empty", 5),
    ("condition-bad-check-timeout", 'name = "p"\n[gate]\ntype = "condition"\ncheck = "true"\ncheck_timeout = "30"', "x",
     "gate.check_timeout '30' is missing a unit after 30 (ns, us, ms, s, m, h or d)", 6),
    ("event-name-invalid", 'name = "p"\n[gate]\ntype = "event"\non = "Start Up"', "x",
     "gate.on 'Start Up' is not an event name (lowercase letters, digits, '.', '_', '-')", 5),
    ("event-name-not-string", 'name = "p"\n[gate]\ntype = "event"\non = 5', "x", "gate.on must be a string, not 5", 5),
    ("tracking-not-a-table", 'name = "p"\ntracking = "x"\n[gate]\ntype = "manual"', "x", "tracking must be a table, not 'x'", 3),
    ("label-not-key-value", f'{MANUAL}\n[tracking]\nlabels = ["team:ops", "nocolon"]', "x",
     "tracking.labels entry 'nocolon' must look like key:value", 6),
    ("label-with-space", f'{MANUAL}\n[tracking]\nlabels = ["team: ops"]', "x",
     "tracking.labels entry 'team: ops' must look like key:value", 6),
    ("label-not-a-string", f'{MANUAL}\n[tracking]\nlabels = [5]', "x", "tracking.labels entry 5 must look like key:value", 6),
    ("labels-not-a-list", f'{MANUAL}\n[tracking]\nlabels = "team:ops"', "x", "tracking.labels must be a list, not 'team:ops'", 6),
    ("digest-not-bool", f'{MANUAL}\n[tracking]\ndigest = "yes"', "x", "tracking.digest must be true or false, not 'yes'", 6),
    ("bad-severity", f'{MANUAL}\n[execution]\nseverity = "urgent"', "x",
     "execution.severity 'urgent' is not one of low, medium, high, critical", 6),
    ("unknown-execution-type", f'{MANUAL}\n[execution]\ntype = "docker"', "x", "execution.type 'docker' is not one of script, agent", 6),
    ("script-without-run-sh", f'{MANUAL}\n[execution]\ntype = "script"', "x",
     "execution.type is script but there is no run.sh beside plugin.md", 6),
    ("bad-timeout", f'{MANUAL}\n[execution]\ntimeout = 600', "x", 'execution.timeout must be a string like "5m" or "1h30m", not 600', 6),
    ("zero-timeout", f'{MANUAL}\n[execution]\ntimeout = "0"', "x", "execution.timeout must be longer than zero", 6),
    ("notify-not-bool", f'{MANUAL}\n[execution]\nnotify_on_failure = "always"', "x",
     "execution.notify_on_failure must be true or false, not 'always'", 6),
    ("agent-without-instructions", MANUAL, "\n   \n", "agent plugin has no instructions after the frontmatter (and no run.sh)", None),
    ("agent-with-empty-body", MANUAL, "", "agent plugin has no instructions after the frontmatter (and no run.sh)", None),
]


@pytest.mark.parametrize(("frontmatter", "body", "error", "line"), [case[1:] for case in INVALID_FRONTMATTER],
                         ids=[case[0] for case in INVALID_FRONTMATTER])
def test_invalid_frontmatter_is_reported_with_reason_and_line(
    tmp_path: Path, make_plugin: MakePlugin, frontmatter: str, body: str, error: str, line: int | None
) -> None:
    bad = parse_bad(make_plugin(tmp_path / "p", frontmatter, body))
    assert bad.error == error
    assert bad.line == line


INVALID_FILES = [
    # (id, raw bytes, error, line)
    ("empty-file", b"", "file is empty (expected TOML frontmatter between +++ lines)", None),
    ("whitespace-only", b"  \n\n\t\n", "file is empty (expected TOML frontmatter between +++ lines)", None),
    ("not-utf8", b'+++\nname = "p"\ndescription = "caf\xe9"\n[gate]\ntype = "manual"\n+++\nx\n',
     "not valid UTF-8 (byte 0xe9 at offset 33)", 3),
    ("missing-closing-plus", b'+++\nname = "p"\n[gate]\ntype = "manual"\n\nDo it.\n',
     "frontmatter opened with +++ on line 1 is never closed by a +++ line", 1),
    ("yaml-frontmatter", b"---\nname: p\ngate:\n  type: manual\n---\nDo it.\n",
     "YAML frontmatter (---) is not supported; use TOML between +++ lines", 1),
    ("no-frontmatter", b"# Just markdown\n\nDo it.\n", "no frontmatter: the file must start with a +++ line", 1),
    ("frontmatter-not-on-line-1", b'\n+++\nname = "p"\n[gate]\ntype = "manual"\n+++\nx\n',
     "no frontmatter: the file must start with a +++ line", 1),
    ("crlf-bad-name", b'+++\r\nname = "P"\r\n[gate]\r\ntype = "manual"\r\n+++\r\nx\r\n',
     "name 'P' is invalid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", 2),
]


@pytest.mark.parametrize(("raw", "error", "line"), [case[1:] for case in INVALID_FILES], ids=[case[0] for case in INVALID_FILES])
def test_invalid_files_are_reported_with_reason_and_line(tmp_path: Path, raw: bytes, error: str, line: int | None) -> None:
    path = tmp_path / "p" / "plugin.md"
    path.parent.mkdir()
    path.write_bytes(raw)
    bad = parse_bad(path)
    assert bad.error == error
    assert bad.line == line


def test_unreadable_path_becomes_invalid_not_an_exception(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "plugin.md"
    result = parse_plugin(missing)
    assert isinstance(result, InvalidPlugin)
    assert result.error == "cannot read file: No such file or directory"
    assert result.line is None


def test_invalid_plugin_location_and_json(tmp_path: Path, make_plugin: MakePlugin) -> None:
    bad = parse_bad(make_plugin(tmp_path / "p", 'name = "p"\n[gate]\ntype = "sometimes"'))
    assert bad.location() == f"{bad.path}:4"
    assert bad.to_json() == {
        "name": "p",
        "path": str(bad.path),
        "line": 4,
        "error": "gate.type 'sometimes' is not one of cooldown, cron, condition, event, manual",
        "rig": "alpha",
    }
    no_line = parse_bad(make_plugin(tmp_path / "q", '[gate]\ntype = "manual"'))
    assert no_line.location() == str(no_line.path)


# -- Gas Town's format ----------------------------------------------------------------------


def test_no_gate_is_manual_as_in_gas_town(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", 'name = "p"\ndescription = "no gate at all"', run_sh=RUN_SH))
    assert (plugin.gate.type, plugin.warnings, plugin.runs_by_itself) == ("manual", (), True)


def test_gate_disabled_is_honoured_like_enabled_false(tmp_path: Path, make_plugin: MakePlugin) -> None:
    plugin = parse_ok(make_plugin(tmp_path / "p", 'name = "p"\n[gate]\ntype = "cooldown"\nduration = "1h"\ndisabled = true', run_sh=RUN_SH))
    assert plugin.enabled is True and plugin.gate.disabled is True and plugin.warnings == ()
    assert not plugin.runs_by_itself and plugin.disabled_reason == "disabled in plugin.md (gate.disabled = true)"
    assert plugin.gate.to_json() == {"type": "cooldown", "disabled": True, "duration": "1h"}


@pytest.mark.parametrize("written", ["MEDIUM", "Medium", "medium"])
def test_severity_in_any_case(tmp_path: Path, make_plugin: MakePlugin, written: str) -> None:
    path = make_plugin(tmp_path / "p", f'name = "p"\n[gate]\ntype = "manual"\n[execution]\nseverity = "{written}"', run_sh=RUN_SH)
    assert parse_ok(path).execution.severity == "medium"
