"""Reading one ``plugin.md``: TOML frontmatter between ``+++`` lines, validated field by field into a :class:`Plugin`.

Parsing never raises: a file that cannot be used becomes an
:class:`InvalidPlugin` carrying the path, the line when known and a one-line
reason, so every listing can show it instead of silently skipping it.  This
module holds the heavy parsers (tomllib, python-frontmatter, croniter): it is
imported only when a plugin file is new or changed.
"""

from __future__ import annotations

import os
import re
import stat
import time
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from frontmatter.default_handlers import BaseHandler

from gtcore.core.beads import SEVERITIES
from gtcore.core.durations import Duration, parse_duration
from gtcore.core.errors import brief
from gtcore.plugins.spec import (
    CRON_HORIZON_YEARS,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_TIMEOUT,
    EXECUTION_KEYS,
    EXECUTION_TYPES,
    GATE_FIELDS_BY_TYPE,
    GATE_KEYS,
    GATE_TYPES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    NAME_PATTERN,
    TOP_KEYS,
    TRACKING_KEYS,
    Execution,
    Gate,
    InvalidPlugin,
    Plugin,
    Tracking,
    run_script_state,
)


class TomlHandler(BaseHandler):
    """python-frontmatter handler for ``+++`` TOML frontmatter, built on tomllib.

    The boundary matches only the ``+++`` line itself (never the blank lines
    after it), so line numbers inside the frontmatter equal file line numbers.
    """

    FM_BOUNDARY = re.compile(r"^\+{3}[ \t]*\r?$", re.MULTILINE)
    START_DELIMITER = END_DELIMITER = "+++"

    def load(self, fm: str) -> dict[str, Any]:
        return tomllib.loads(fm)

    def export(self, metadata: dict[str, object], **kwargs: object) -> str:
        raise NotImplementedError("gtui never rewrites plugin files")


_HANDLER = TomlHandler()


class _Invalid(Exception):
    """Raised inside validation; carries the reason and the line when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def parse_plugin(path: Path, rig: str = "town", crew: str | None = None,
                 run_script: bool | str | None = None) -> Plugin | InvalidPlugin:
    """Read and validate one ``plugin.md``; never raises, whatever the file holds.

    ``run_script`` is what :func:`gtcore.plugins.discovery.run_script_state` says of
    the ``run.sh`` beside it, when the caller's scan already looked (one stat
    fewer per file); otherwise it is looked at here.

    Whatever goes wrong is this plugin's problem alone: bad content is an
    :class:`InvalidPlugin` with its reason, and so is a bug of gtui's own
    parsing code (said as such), so one file can never stop a scan.
    """
    try:
        raw, mtime = _read(path)
        if run_script is None:
            run_script = run_script_state(str(path.parent / "run.sh"))
        if isinstance(run_script, str):
            raise _Invalid(run_script)
        return _build(path, raw, rig, crew, mtime, run_script)
    except _Invalid as bad:
        return InvalidPlugin(path, bad.reason, bad.line, rig=rig)
    except RecursionError:
        return InvalidPlugin(path, f"nested too deeply (more than {MAX_DEPTH} levels of arrays or tables)", rig=rig)
    except Exception as exc:  # a bug in gtui, contained to this one plugin
        return InvalidPlugin(path, f"gtui failed to parse this file (a bug in gtui, please report it): {type(exc).__name__}: {brief(exc)}",
                             rig=rig)


_TOO_LARGE = f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the size cap of a plugin.md"


def _read(path: Path) -> tuple[bytes, float]:
    """The file's bytes (at most the cap, which a larger file exceeds by one) and its mtime."""
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _Invalid("is not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise _Invalid(_TOO_LARGE)
            raw = handle.read(info.st_size + 1)  # sized by the stat: read(cap) would allocate the whole cap per file
            if len(raw) > info.st_size:  # it grew while we looked: read on, up to one byte past the cap
                raw += handle.read(MAX_FILE_BYTES + 1 - len(raw))
    except OSError as exc:
        raise _Invalid(f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _Invalid(_TOO_LARGE)
    return raw, info.st_mtime


def _build(path: Path, raw: bytes, rig: str, crew: str | None, mtime: float, has_run_script: bool) -> Plugin:
    text = _decode(raw)
    frontmatter, body = _split(text)
    data = _load_toml(frontmatter)
    _check_depth(data)
    lines = _KeyLines(frontmatter)
    warnings = _unknown_key_warnings(data, lines)
    name = _name(data, lines)
    gate = _gate(data, lines, warnings)
    tracking = _tracking(data, lines)
    execution = _execution(data, lines, has_run_script)
    instructions = body.strip()
    if execution.type == "agent" and not instructions:
        raise _Invalid("agent plugin has no instructions after the frontmatter (and no run.sh)")
    return Plugin(
        name=name,
        file=str(path),
        rig=rig,
        crew=crew,
        gate=gate,
        execution=execution,
        tracking=tracking,
        description=_typed(data, "description", str, lines, default=""),
        version=_version(data, lines),
        enabled=_typed(data, "enabled", bool, lines, default=True),
        instructions=instructions,
        has_run_script=has_run_script,
        mtime=mtime,
        warnings=tuple(warnings),
    )


def _decode(raw: bytes) -> str:
    if not raw.strip():
        raise _Invalid("file is empty (expected TOML frontmatter between +++ lines)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _Invalid(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})", line) from None
    return text.removeprefix("\ufeff")


def _split(text: str) -> tuple[str, str]:
    first = text.split("\n", 1)[0].strip()
    if first == "---":
        raise _Invalid("YAML frontmatter (---) is not supported; use TOML between +++ lines", 1)
    if not _HANDLER.detect(text):
        raise _Invalid("no frontmatter: the file must start with a +++ line", 1)
    try:
        return _HANDLER.split(text)
    except ValueError:
        raise _Invalid("frontmatter opened with +++ on line 1 is never closed by a +++ line", 1) from None


def _load_toml(frontmatter: str) -> dict[str, Any]:
    try:
        return _HANDLER.load(frontmatter)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        line = int(match.group(1)) if match else None
        raise _Invalid(f"invalid TOML: {reason}", line) from None
    except ValueError as exc:  # an integer of thousands of digits
        raise _Invalid(f"invalid TOML: a value is too large to read ({brief(exc, 80)})") from None


def _check_depth(data: dict[str, Any]) -> None:
    """Refuse absurd nesting up front: no field of the format nests, and deep values break whoever walks them.

    Level by level, looking only at tables and arrays (tomllib makes plain
    dicts and lists): a valid plugin is two or three levels and costs little.
    """
    level: list[Any] = [data]
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise _Invalid(f"nested too deeply (more than {MAX_DEPTH} levels of arrays or tables)")
        below = []
        for value in level:
            for child in value.values() if type(value) is dict else value:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1


class _KeyLines:
    """Finds the file line of ``key`` inside ``[section]`` for error messages."""

    _HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")

    def __init__(self, frontmatter: str) -> None:
        self._frontmatter = frontmatter
        self._index: dict[tuple[str, str], int] | None = None

    @property
    def _where(self) -> dict[tuple[str, str], int]:
        """Built on first use: valid plugins never need a line number, and discovery is hot."""
        if self._index is None:
            self._index = self._build(self._frontmatter)
        return self._index

    @classmethod
    def _build(cls, frontmatter: str) -> dict[tuple[str, str], int]:
        where: dict[tuple[str, str], int] = {}
        section = ""
        for number, text in enumerate(frontmatter.split("\n"), start=1):
            header = cls._HEADER.match(text)
            if header:
                section = header.group(1)
                where.setdefault((section, ""), number)
                continue
            key = cls._KEY.match(text)
            if key:
                where.setdefault((section, key.group(1).strip('"')), number)
        return where

    def of(self, key: str, section: str = "") -> int | None:
        """The key's line, else its section header; a top-level key may itself be a ``[table]``."""
        found = self._where.get((section, key)) or self._where.get((section, ""))
        if found is None and not section:
            found = self._where.get((key, ""))
        return found

    def note(self, key: str, section: str = "") -> str:
        """`` (line N)`` for warnings, or nothing when the line is unknown (never "line None")."""
        line = self.of(key, section)
        return f" (line {line})" if line else ""


def _unknown_key_warnings(data: dict[str, Any], lines: _KeyLines) -> list[str]:
    warnings = [f"unknown key {brief(key)}{lines.note(key)}" for key in data if key not in TOP_KEYS]
    for section, known in (("gate", GATE_KEYS), ("tracking", TRACKING_KEYS), ("execution", EXECUTION_KEYS)):
        table = data.get(section)
        if isinstance(table, dict):
            warnings += [
                f"unknown key {brief(key)} in [{section}]{lines.note(key, section)}"
                for key in table
                if key not in known
            ]
    return warnings


_TYPE_NAMES = {str: "a string", bool: "true or false", dict: "a table", list: "a list"}


def _typed(table: dict[str, Any], key: str, kind: type, lines: _KeyLines, section: str = "", default: Any = None) -> Any:
    """Fetch ``key`` and insist on its TOML type (bool is not an int here)."""
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        where = f"{section}.{key}" if section else key
        raise _Invalid(f"{where} must be {_TYPE_NAMES[kind]}, not {brief(value)}", lines.of(key, section))
    return value


def _name(data: dict[str, Any], lines: _KeyLines) -> str:
    if "name" not in data:
        raise _Invalid("missing required field 'name'")
    name = _typed(data, "name", str, lines)
    if not NAME_PATTERN.match(name):
        raise _Invalid(
            f"name {brief(name)} is invalid: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
            lines.of("name"),
        )
    return name


def _version(data: dict[str, Any], lines: _KeyLines) -> str | int | None:
    value = data.get("version")
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return value
    raise _Invalid(f"version must be a string or an integer, not {brief(value)}", lines.of("version"))


def _section(data: dict[str, Any], name: str, lines: _KeyLines) -> dict[str, Any]:
    return _typed(data, name, dict, lines, default={})


def _duration(table: dict[str, Any], key: str, section: str, lines: _KeyLines) -> Duration | None:
    """The duration under ``key``, or None where the table has none (a Duration is never false: ``or`` gives a default)."""
    if key not in table:
        return None
    try:
        value = parse_duration(table[key])
    except ValueError as exc:
        raise _Invalid(f"{section}.{key} {exc}", lines.of(key, section)) from None
    if value.seconds <= 0:
        raise _Invalid(f"{section}.{key} must be longer than zero", lines.of(key, section))
    return value


def _gate(data: dict[str, Any], lines: _KeyLines, warnings: list[str]) -> Gate:
    if "gate" not in data:
        return Gate("manual")  # as in Gas Town: a plugin without a gate runs only when asked
    table = _section(data, "gate", lines)
    kind = _typed(table, "type", str, lines, "gate")
    if kind is None:
        raise _Invalid("gate.type is missing (cooldown, cron, condition, event or manual)", lines.of("", "gate"))
    if kind not in GATE_TYPES:
        raise _Invalid(f"gate.type {brief(kind)} is not one of {', '.join(GATE_TYPES)}", lines.of("type", "gate"))
    required = {"cooldown": "duration", "cron": "schedule", "condition": "check", "event": "on"}.get(kind)
    if required and required not in table:
        raise _Invalid(f"a {kind} gate needs gate.{required}", lines.of("type", "gate"))
    warnings += [
        f"gate.{key} is ignored by a {kind} gate{lines.note(key, 'gate')}"
        for key in table
        if key in GATE_KEYS - {"type", "disabled"} - GATE_FIELDS_BY_TYPE[kind]
    ]
    return Gate(
        type=kind,
        disabled=_typed(table, "disabled", bool, lines, "gate", default=False),
        duration=_duration(table, "duration", "gate", lines) if kind == "cooldown" else None,
        schedule=_schedule(table, lines) if kind == "cron" else None,
        timezone=_timezone(table, lines) if kind == "cron" else None,
        check=_nonempty(table, "check", lines) if kind == "condition" else None,
        check_timeout=_check_timeout(table, lines) if kind == "condition" else DEFAULT_CHECK_TIMEOUT,
        on=_event_name(table, lines) if kind == "event" else None,
    )


def _check_timeout(table: dict[str, Any], lines: _KeyLines) -> Duration:
    """Only a condition gate reads check_timeout; elsewhere it is warned about, not validated."""
    return _duration(table, "check_timeout", "gate", lines) or DEFAULT_CHECK_TIMEOUT


def _nonempty(table: dict[str, Any], key: str, lines: _KeyLines) -> str:
    value = _typed(table, key, str, lines, "gate")
    if not value.strip():
        raise _Invalid(f"gate.{key} is empty", lines.of(key, "gate"))
    return value


@lru_cache(maxsize=4096)
def _cron_problem(schedule: str) -> str | None:
    """Why a schedule cannot be used, or None.  Cached: croniter's check is the slowest part of
    parsing, and towns reuse a few schedules."""
    # croniter also takes 6 and 7 fields (seconds, year); Gas Town schedules have exactly 5.
    five_fields = schedule.startswith("@") or len(schedule.split()) == 5
    if not five_fields or not croniter.is_valid(schedule):
        return "is not a valid cron expression (minute hour day month weekday)"
    start = time.time()
    try:
        first = croniter(schedule, start, max_years_between_matches=CRON_HORIZON_YEARS).get_next(float)
    except (CroniterBadDateError, ValueError, OverflowError):
        first = None
    if first is None or first - start > CRON_HORIZON_YEARS * 366 * 86400:
        return f"never fires in the next {CRON_HORIZON_YEARS} years (is the day in that month?)"
    return None


def _schedule(table: dict[str, Any], lines: _KeyLines) -> str:
    schedule = _nonempty(table, "schedule", lines).strip()
    problem = _cron_problem(schedule)
    if problem:
        raise _Invalid(f"gate.schedule {brief(schedule)} {problem}", lines.of("schedule", "gate"))
    return schedule


def _timezone(table: dict[str, Any], lines: _KeyLines) -> str | None:
    zone = _typed(table, "timezone", str, lines, "gate")
    if zone is None:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata directory such as "America"
        raise _Invalid(f"gate.timezone {brief(zone)} is not a known time zone (e.g. UTC, Europe/Paris)",
                       lines.of("timezone", "gate")) from None
    return zone


def _event_name(table: dict[str, Any], lines: _KeyLines) -> str:
    event = _nonempty(table, "on", lines)
    if not NAME_PATTERN.match(event):
        raise _Invalid(f"gate.on {brief(event)} is not an event name (lowercase letters, digits, '.', '_', '-')", lines.of("on", "gate"))
    return event


def _tracking(data: dict[str, Any], lines: _KeyLines) -> Tracking:
    table = _section(data, "tracking", lines)
    labels = _typed(table, "labels", list, lines, "tracking", default=[])
    for label in labels:
        if not isinstance(label, str) or not re.fullmatch(r"[^\s:]+:\S+", label):
            raise _Invalid(f"tracking.labels entry {brief(label)} must look like key:value", lines.of("labels", "tracking"))
    return Tracking(labels=tuple(labels), digest=_typed(table, "digest", bool, lines, "tracking", default=False))


def _execution(data: dict[str, Any], lines: _KeyLines, has_run_script: bool) -> Execution:
    table = _section(data, "execution", lines)
    kind = _typed(table, "type", str, lines, "execution", default="script" if has_run_script else "agent")
    if kind not in EXECUTION_TYPES:
        raise _Invalid(f"execution.type {brief(kind)} is not one of script, agent", lines.of("type", "execution"))
    if kind == "script" and not has_run_script:
        raise _Invalid("execution.type is script but there is no run.sh beside plugin.md", lines.of("type", "execution"))
    severity = _typed(table, "severity", str, lines, "execution", default="medium").lower()  # Gas Town writes MEDIUM too
    if severity not in SEVERITIES:
        raise _Invalid(f"execution.severity {brief(severity)} is not one of {', '.join(SEVERITIES)}", lines.of("severity", "execution"))
    return Execution(
        type=kind,
        timeout=_duration(table, "timeout", "execution", lines) or DEFAULT_TIMEOUT,
        notify_on_failure=_typed(table, "notify_on_failure", bool, lines, "execution", default=False),
        severity=severity,
        hosts=_hosts(table, lines),
    )


def _hosts(table: dict[str, Any], lines: _KeyLines) -> tuple[str, ...]:
    hosts = _typed(table, "hosts", list, lines, "execution", default=[])
    if not all(isinstance(host, str) and host.strip() for host in hosts):
        raise _Invalid('execution.hosts must be a list of host names, like ["build-box"]', lines.of("hosts", "execution"))
    return tuple(dict.fromkeys(host.strip() for host in hosts))
