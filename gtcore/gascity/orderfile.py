"""One Gas City order file: ``orders/<name>.toml`` (or ``<name>.order.toml``) with one ``[order]`` table.

Parsing never raises: a file that cannot be read or decoded is an
:class:`OrderFileError` with the file, the line when known and the reason
gc gives (``order "x" in PATH: parsing order: ...``).  The name comes from
the file name only.  Validation (:func:`validate`) runs after layering and
overrides, as gc's does, with gc's exact messages.  Source:
``internal/orders/order.go``, ``env.go``, ``filenames.go``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gtcore.core.records import Record
from gtcore.gascity import godur

CANONICAL_SUFFIX = ".toml"
LEGACY_SUFFIX = ".order.toml"
MAX_ORDER_BYTES = 1024 * 1024
STRING_KEYS = ("description", "formula", "exec", "scope", "trigger", "gate", "interval", "schedule", "tz", "check", "on", "pool",
               "timeout", "check_timeout")
BOOL_KEYS = ("enabled", "idempotent", "no_work_gate")
KNOWN_KEYS = {*STRING_KEYS, *BOOL_KEYS, "env", "params", "skip_aliases"}
RESERVED_ENV = frozenset({"BD_BACKUP_ENABLED", "BD_EXPORT_AUTO", "BEADS_ACTOR", "BEADS_BACKUP_ENABLED", "BEADS_CREDENTIALS_FILE",
    "BEADS_DIR", "BEADS_DOLT_AUTO_START", "BEADS_DOLT_PASSWORD", "BEADS_DOLT_SERVER_HOST", "BEADS_DOLT_SERVER_PORT",
    "BEADS_DOLT_SERVER_TLS", "BEADS_DOLT_SERVER_USER", "BEADS_DOLT_SYNC_CLI_REMOTES", "BEADS_ROUTING_MODE", "BD_DOLT_SYNC_CLI_REMOTES",
    "BD_ROUTING_MODE", "GC_BEADS", "GC_BEADS_PREFIX", "GC_BEADS_SCOPE_ROOT", "GC_CITY", "GC_CITY_PATH", "GC_CITY_ROOT",
    "GC_CITY_RUNTIME_DIR", "GC_CONTROL_DISPATCHER_TRACE_DEFAULT", "GC_DOLT", "GC_DOLT_CONFIG_FILE", "GC_DOLT_DATA_DIR", "GC_DOLT_HOST",
    "GC_DOLT_LOCK_FILE", "GC_DOLT_LOG_FILE", "GC_DOLT_MANAGED_LOCAL", "GC_DOLT_PASSWORD", "GC_DOLT_PID_FILE", "GC_DOLT_PORT",
    "GC_DOLT_STATE_FILE", "GC_DOLT_USER", "GC_PACK_DIR", "GC_PACK_NAME", "GC_PACK_STATE_DIR", "GC_RIG", "GC_RIG_ROOT", "GC_STORE_ROOT",
    "GC_STORE_SCOPE", "ORDER_DIR", "PACK_DIR"})


class Order(Record):
    """An order as gc's ``orders.Order`` holds it (strings as written: durations are parsed where they are used)."""

    name: str
    source: str
    formula_layer: str
    rig: str = ""
    description: str = ""
    formula: str = ""
    exec: str = ""
    scope: str = ""
    trigger: str = ""
    interval: str = ""
    schedule: str = ""
    tz: str = ""
    check: str = ""
    on: str = ""
    pool: str = ""
    timeout: str = ""
    check_timeout: str = ""
    enabled: bool | None = None
    idempotent: bool = False
    no_work_gate: bool = False
    env: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, bool], ...] = ()  # name, required
    skip_aliases: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # keys gc ignores without a word (a typo such as ``intervall``): gtui says so

    @property
    def scoped(self) -> str:
        """gc's ``ScopedName``: ``name``, or ``name:rig:<rig>`` for a rig's instance (its labels, events and ``--rig``)."""
        return f"{self.name}:rig:{self.rig}" if self.rig else self.name

    @property
    def is_enabled(self) -> bool:
        return self.enabled is None or self.enabled

    @property
    def timeout_ns(self) -> int:
        """``TimeoutOrDefault``: the timeout as written when Go reads it, else 300s for exec and 30s for formula."""
        try:
            return godur.parse(self.timeout) if self.timeout else self._default_timeout()
        except godur.GoDurationError:
            return self._default_timeout()

    def _default_timeout(self) -> int:
        return (300 if self.exec else 30) * godur.SECOND

    @property
    def check_timeout_ns(self) -> int:
        """``CheckTimeoutOrDefault``: a positive ``check_timeout``, else 10s."""
        try:
            value = godur.parse(self.check_timeout) if self.check_timeout else 0
        except godur.GoDurationError:
            value = 0
        return value if value > 0 else 10 * godur.SECOND


class OrderFileError(Record):
    """An order file gc would refuse to load, and why (its words, with the line when known)."""

    path: str
    reason: str
    line: int | None = None


def order_name(file_name: str) -> str | None:
    """``TrimFlatOrderFilename``: ``x.order.toml`` and ``x.toml`` name order ``x``; anything else is no order."""
    if file_name.endswith(LEGACY_SUFFIX):
        return file_name[: -len(LEGACY_SUFFIX)]
    if file_name.endswith(CANONICAL_SUFFIX):
        return file_name[: -len(CANONICAL_SUFFIX)]
    return None


def parse_order(path: Path, name: str, formula_layer: str) -> Order | OrderFileError:
    """Read one order file (``discoverRoot`` + ``Parse``): the order, or why gc would not load it."""
    where = f"order {go_quote(name)} in {path}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ORDER_BYTES + 1)
    except OSError as exc:
        return OrderFileError(str(path), f"reading order {path}: {exc.strerror or exc}")
    if len(raw) > MAX_ORDER_BYTES:
        return OrderFileError(str(path), f"{where}: is larger than 1 MiB: not an order file")
    try:
        table = _order_table(raw)
        return _decode(table, name, str(path), formula_layer)
    except _Bad as bad:
        line = bad.line or (_line_of(raw, bad.key) if bad.key else None)
        return OrderFileError(str(path), f"{where}: parsing order: {bad.reason}", line)


class _Bad(Exception):
    def __init__(self, reason: str, line: int | None = None, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.line, self.key = reason, line, key


def _order_table(raw: bytes) -> dict[str, Any]:
    import tomllib

    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Bad(f"not valid UTF-8 (byte offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise _Bad(f"toml: {reason}", int(found.group(1)) if found else None) from None
    except (RecursionError, ValueError) as exc:
        raise _Bad(f"toml: {exc}") from None
    table = document.get("order", {})
    if not isinstance(table, dict):
        raise _Bad(f"order must be a table, not {_shown(table)}", key="order")
    return table


def _decode(table: dict[str, Any], name: str, source: str, formula_layer: str) -> Order:
    """``orderDecode.normalized``: typed fields (a wrong type fails as gc's decoder fails), ``gate`` read when ``trigger`` is empty."""
    values: dict[str, Any] = {}
    for key in STRING_KEYS:
        if key in table and not isinstance(table[key], str):
            raise _Bad(f"order.{key} must be a string, not {_shown(table[key])}", key=key)
        values[key] = table.get(key, "")
    for key in BOOL_KEYS:
        if key in table and not isinstance(table[key], bool):
            raise _Bad(f"order.{key} must be true or false, not {_shown(table[key])}", key=key)
    gate = values.pop("gate")
    values["trigger"] = values["trigger"] or gate
    warnings = tuple(f"unknown key {key!r} in [order] (gc ignores it)" for key in table if key not in KNOWN_KEYS)
    return Order(name=name, source=source, formula_layer=formula_layer, enabled=table.get("enabled"),
                 idempotent=table.get("idempotent", False), no_work_gate=table.get("no_work_gate", False), env=_env(table),
                 params=_params(table), skip_aliases=_aliases(table), warnings=warnings, **values)


def _env(table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    env = table.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(value, str) for value in env.values()):
        raise _Bad(f"order.env must be a table of strings, not {_shown(env)}", key="env")
    return tuple(sorted(env.items()))


def _params(table: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise _Bad(f"order.params must be a table, not {_shown(params)}", key="params")
    found = []
    for param, spec in params.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("required", False), bool):
            raise _Bad(f"order.params.{param} must be a table like {{ required = true }}, not {_shown(spec)}", key="params")
        found.append((param, spec.get("required", False)))
    return tuple(sorted(found))


def _aliases(table: dict[str, Any]) -> tuple[str, ...]:
    aliases = table.get("skip_aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise _Bad(f"order.skip_aliases must be a list of strings, not {_shown(aliases)}", key="skip_aliases")
    return tuple(aliases)


def _shown(value: object) -> str:
    from gtcore.core.errors import brief

    return brief(value, 60)


def _line_of(raw: bytes, key: str) -> int | None:
    """The line that sets ``key`` (in ``[order]`` or as ``order.key``), for a message a person can act on."""
    pattern = re.compile(rb"^\s*(?:order\.)?" + re.escape(key.encode()) + rb"\s*=|^\s*\[\s*order\.?" + re.escape(key.encode()))
    for number, text in enumerate(raw.split(b"\n"), start=1):
        if pattern.match(text):
            return number
    return None


def validate(order: Order) -> str | None:
    """``Validate`` then ``ValidateExecEnvOverrides``: gc's first complaint about an order after layering, or None."""
    quoted = go_quote(order.name)
    env = dict(order.env)
    for problem in (_action_problem(order, env), _field_problem(order), _trigger_problem(order)):
        if problem:
            return f"order {quoted}: {problem}"
    reserved = next((key for key in sorted(env) if key in RESERVED_ENV), None)
    if reserved is not None:
        return f"order {go_quote(order.scoped)}: [order.env] cannot override controller-owned env key {go_quote(reserved)}"
    return None


def _action_problem(order: Order, env: dict[str, str]) -> str | None:
    if not order.formula and not order.exec:
        return "formula or exec is required"
    if order.formula and order.exec:
        return "formula and exec are mutually exclusive"
    if env and not order.exec:
        return "env is supported only for exec orders"
    if order.exec and order.pool:
        return "exec orders cannot have a pool"
    for key in sorted(env):
        if not key.strip():
            return "env key is required"
        if "=" in key:
            return f"invalid env key {go_quote(key)}: must not contain '='"
    if any(not param.strip() for param, _ in order.params):
        return "param name is required"
    return None


def _field_problem(order: Order) -> str | None:
    if order.scope not in ("", "city", "rig"):
        return f'unknown scope {go_quote(order.scope)} (want "city" or "rig")'
    if order.timeout and (error := _duration_error(order.timeout)):
        return f"invalid timeout {go_quote(order.timeout)}: {error}"
    if order.check_timeout:
        if error := _duration_error(order.check_timeout):
            return f"invalid check_timeout {go_quote(order.check_timeout)}: {error}"
        if godur.parse(order.check_timeout) <= 0:
            return f"check_timeout {go_quote(order.check_timeout)} must be a positive duration"
    if order.tz and (error := zone_error(order.tz)):
        return f"invalid tz {go_quote(order.tz)}: {error}"
    return None


def _trigger_problem(order: Order) -> str | None:
    kind = order.trigger
    if kind == "cooldown":
        if not order.interval:
            return "cooldown trigger requires interval"
        if error := _duration_error(order.interval):
            return f"invalid interval {go_quote(order.interval)}: {error}"
        return None
    required = {"cron": ("schedule", "cron trigger requires schedule"), "condition": ("check", "condition trigger requires check command"),
                "event": ("on", "event trigger requires on (event type)")}.get(kind)
    if required is not None:
        return None if getattr(order, required[0]) else required[1]
    if kind == "webhook":
        return None if order.params else "webhook trigger requires a non-empty [order.params]"
    if kind == "manual":
        return None
    return "trigger is required" if not kind else f"unknown trigger type {go_quote(kind)}"


def _duration_error(text: str) -> str | None:
    try:
        godur.parse(text)
    except godur.GoDurationError as exc:
        return str(exc)
    return None


def zone_error(name: str) -> str | None:
    """Go's ``time.LoadLocation`` complaint about a zone name, or None (``UTC`` and ``Local`` are zones)."""
    if name in ("UTC", "Local"):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name}"
    return None


def missing_params(order: Order) -> list[str]:
    """Required params a run without dispatch vars lacks (all of them: gtui passes no ``--var``), sorted."""
    return sorted(param for param, required in order.params if required)


def go_quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``): printable characters as they are, the rest escaped."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x80 or 0xD800 <= ord(char) < 0xE000:
            out.append(f"\\x{ord(char) & 0xFF:02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
