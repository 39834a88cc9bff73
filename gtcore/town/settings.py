"""Town settings: ``<town>/settings/gtui.toml``.

Every field is optional; a missing file means defaults.  A file that exists
but is broken is an error naming the file and the field — never a silent
fall-back to defaults, which would hide the operator's intent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from gtcore.core.beads import SEVERITIES
from gtcore.core.durations import Duration, parse_duration
from gtcore.core.errors import Problem, SettingsError, brief
from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATROL_INTERVAL = parse_duration("60s")
DEFAULT_KILL_GRACE = parse_duration("5s")
DEFAULT_RUN_LEASE = parse_duration("30s")
DEFAULT_DELIVERY_TIMEOUT = parse_duration("10s")
DEFAULT_KENNEL_IDLE = parse_duration("10m")
DEFAULT_QUEUE_TIMEOUT = parse_duration("2m")
KENNEL_MODES = ("auto", "external")  # auto: a command that dispatches starts the kennel; external: a supervisor runs it

KNOWN_KEYS = {"dogs", "patrol_interval", "agent_command", "retention_days", "keymap", "stale", "kill_grace", "delivery_timeout",
              "run_lease", "ledger", "kennel", "kennel_idle", "queue_timeout", "orders"}
ORDER_KEYS = {"severity", "notify_on_failure", "digest"}


class StaleBinary(Record):
    """One ``[[stale.binaries]]`` entry: a tool and the repository it is built from."""

    name: str
    binary: str
    repo: str
    commit_command: tuple[str, ...] = ()


class OrderSettings(Record):
    """What ``[orders.<name>]`` says of a Gas City order, whose own file has no such fields (see docs/gascity.md)."""

    severity: str = "medium"
    notify_on_failure: bool = False
    digest: bool = False  # each past UTC day of its runs squashed into a digest, as [tracking] digest does for a plugin


class Settings(Record):
    """What ``gtui.toml`` says, with the documented defaults (``keymap`` is read-only: a mapping, never changed)."""

    dogs: int = 4
    patrol_interval: Duration = DEFAULT_PATROL_INTERVAL
    agent_command: tuple[str, ...] = ()
    retention_days: int = 7
    keymap: Mapping[str, str] = MappingProxyType({})
    stale_binaries: tuple[StaleBinary, ...] = ()
    kill_grace: Duration = DEFAULT_KILL_GRACE
    delivery_timeout: Duration = DEFAULT_DELIVERY_TIMEOUT
    run_lease: Duration = DEFAULT_RUN_LEASE  # how long a run's owner may go silent before any host calls it abandoned
    ledger: str | None = None  # a postgresql:// URL: the ledger the town's hosts share (GT_LEDGER_URL wins)
    kennel: str = "auto"  # see KENNEL_MODES
    kennel_idle: Duration = DEFAULT_KENNEL_IDLE  # an autostarted kennel with nothing to do exits after this
    queue_timeout: Duration = DEFAULT_QUEUE_TIMEOUT  # a queued run no kennel takes within this is abandoned
    orders: Mapping[str, OrderSettings] = MappingProxyType({})  # by order name, or name@rig for one rig's instance
    path: Path | None = None
    problems: tuple[Problem, ...] = ()


def load_settings(settings_dir: Path, cache: Path | None = None, *, keep: bool = True) -> Settings:
    """Read ``gtui.toml`` from ``settings_dir``; defaults when the file is absent.

    With ``cache`` (a file in the town's ``.gtui/``) the parsed TOML is kept
    there by the file's identity (unless ``keep`` is false: read-only), so an
    unchanged file is only stat'ed: the TOML parser costs an idle command
    more than all its settings do.
    Raises only :class:`SettingsError`, whatever the file holds.
    """
    path = settings_dir / "gtui.toml"
    try:
        return _parse(path, _document(path, cache, keep))
    except FileNotFoundError:
        return Settings()
    except SettingsError:
        raise
    except Exception as exc:  # a bug in gtui: said as such, and still a settings error of this file only
        raise SettingsError(path, f"gtui failed to read this file (a bug in gtui): {type(exc).__name__}: {brief(exc)}") from None


def _document(path: Path, cache: Path | None, keep: bool) -> dict[str, Any]:
    """The file's TOML; from ``cache`` when the file is the one parsed last time."""
    if cache is None:
        return _toml(path, read_settings_text(path))
    from gtcore.town import document_cache

    identity, data = document_cache.lookup(cache, path)
    if data is None:
        data = _toml(path, read_settings_text(path))
        if keep:
            document_cache.keep(cache, identity, data)
    return data


def _toml(path: Path, text: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise SettingsError(path, "nested too deeply to be settings") from None


MAX_SETTINGS_BYTES = 1024 * 1024


def read_settings_text(path: Path) -> str:
    """A settings file's text; FileNotFoundError when absent, SettingsError when unreadable or absurdly large."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SettingsError(path, f"cannot read settings: {exc.strerror or exc}") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise SettingsError(path, "is larger than 1 MiB: not a settings file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(path, f"is not valid UTF-8 (byte offset {exc.start})") from None


def unknown_keys(path: Path, table: dict[str, Any], known: set[str], prefix: str = "") -> list[Problem]:
    """A warning per key gtui does not know, with the likely intended key: a typo must not pass silently."""
    found = []
    for key in table:
        if key not in known:
            import difflib  # only for a key gtui does not know

            guess = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean '{prefix}{guess[0]}'?)" if guess else ""
            found.append(Problem(str(path), f"{prefix}{key}", f"is not a setting gtui knows; it is ignored{hint}", "warning"))
    return found


def _parse(path: Path, data: dict[str, Any]) -> Settings:
    def bad(key: str, expected: str) -> SettingsError:
        return SettingsError(path, f"must be {expected}, not {brief(data[key])}", field=key)

    def whole(key: str, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise bad(key, f"a whole number of at least {minimum}")
        return value

    def duration(key: str, default: Duration) -> Duration:
        if key not in data:
            return default
        try:
            value = parse_duration(data[key])
        except ValueError as exc:
            raise SettingsError(path, str(exc), field=key) from None
        if value.seconds <= 0:
            raise bad(key, "longer than zero")
        return value

    agent = data.get("agent_command", [])
    if not isinstance(agent, list) or not all(isinstance(part, str) and part for part in agent):
        raise bad("agent_command", 'a list of strings like ["claude", "-p"]')
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict) or not all(isinstance(value, str) for value in keymap.values()):
        raise bad("keymap", 'a table of binding id = "keys"')
    orders, order_problems = _orders(path, data.get("orders", {}))
    kennel = data.get("kennel", "auto")
    if kennel not in KENNEL_MODES:
        raise bad("kennel", '"auto" (commands start it when runs wait) or "external" (a supervisor runs gtui kennel)')
    return Settings(
        dogs=whole("dogs", 4, 1),
        patrol_interval=duration("patrol_interval", DEFAULT_PATROL_INTERVAL),
        agent_command=tuple(agent),
        retention_days=whole("retention_days", 7, 0),
        keymap=dict(keymap),
        stale_binaries=_stale_binaries(path, data.get("stale", {})),
        kill_grace=duration("kill_grace", DEFAULT_KILL_GRACE),
        delivery_timeout=duration("delivery_timeout", DEFAULT_DELIVERY_TIMEOUT),
        run_lease=duration("run_lease", DEFAULT_RUN_LEASE),
        ledger=_ledger_url(path, data.get("ledger")),
        kennel=kennel,
        kennel_idle=duration("kennel_idle", DEFAULT_KENNEL_IDLE),
        queue_timeout=duration("queue_timeout", DEFAULT_QUEUE_TIMEOUT),
        orders=MappingProxyType(orders),
        path=path,
        problems=tuple(unknown_keys(path, data, KNOWN_KEYS)) + order_problems,
    )


def _orders(path: Path, table: Any) -> tuple[dict[str, OrderSettings], tuple[Problem, ...]]:
    """``[orders.<name>]`` tables (``[orders."name@rig"]`` for one rig's instance): severity, notify_on_failure, digest."""
    if not isinstance(table, dict):
        raise SettingsError(path, 'must be tables like [orders.gate-sweep] (severity = "high", notify_on_failure = true)', field="orders")
    found, problems = {}, []
    for name, entry in table.items():
        where = f"orders.{name}"
        if not isinstance(entry, dict):
            raise SettingsError(path, f"must be a table ([{where}] with severity, notify_on_failure), not {brief(entry)}", field=where)
        severity = entry.get("severity", "medium")
        if not isinstance(severity, str) or severity.lower() not in SEVERITIES:
            raise SettingsError(path, f"must be one of {', '.join(SEVERITIES)}, not {brief(severity)}", field=f"{where}.severity")
        switches = {key: entry.get(key, False) for key in ("notify_on_failure", "digest")}
        for key, value in switches.items():
            if not isinstance(value, bool):
                raise SettingsError(path, f"must be true or false, not {brief(value)}", field=f"{where}.{key}")
        found[name] = OrderSettings(severity.lower(), **switches)
        problems += unknown_keys(path, entry, ORDER_KEYS, prefix=f"{where}.")
    return found, tuple(problems)


def _ledger_url(path: Path, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise SettingsError(path, 'must be a PostgreSQL URL like "postgresql://gtui@db-host/town" (or left out: the SQLite file)',
                            field="ledger")
    return value


def _stale_binaries(path: Path, stale: Any) -> tuple[StaleBinary, ...]:
    if not isinstance(stale, dict) or not isinstance(stale.get("binaries", []), list):
        raise SettingsError(path, "must be an array of tables ([[stale.binaries]])", field="stale.binaries")
    found = []
    for index, entry in enumerate(stale.get("binaries", [])):
        where = f"stale.binaries[{index}]"
        if not isinstance(entry, dict):
            raise SettingsError(path, "must be a table", field=where)
        for key in ("name", "binary", "repo"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise SettingsError(path, "is required and must be a string", field=f"{where}.{key}")
        command = entry.get("commit_command", [])
        if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
            raise SettingsError(path, "must be a list of strings", field=f"{where}.commit_command")
        found.append(StaleBinary(entry["name"], entry["binary"], entry["repo"], tuple(command)))
    return tuple(found)
