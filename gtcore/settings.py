"""Town settings: ``<town>/settings/gtui.toml``.

Every field is optional; a missing file means defaults.  A file that exists
but is broken is an error naming the file and the field — never a silent
fall-back to defaults, which would hide the operator's intent.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtcore.durations import Duration, parse_duration
from gtcore.errors import GtError

DEFAULT_PATROL_INTERVAL = parse_duration("60s")
DEFAULT_KILL_GRACE = parse_duration("5s")

KNOWN_KEYS = {"dogs", "patrol_interval", "agent_command", "retention_days", "keymap", "stale", "kill_grace"}


class SettingsError(GtError):
    """A settings file that cannot be used as written."""


@dataclass(frozen=True)
class StaleBinary:
    """One ``[[stale.binaries]]`` entry: a tool and the repository it is built from."""

    name: str
    binary: str
    repo: str
    commit_command: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """What ``gtui.toml`` says, with the documented defaults."""

    dogs: int = 4
    patrol_interval: Duration = DEFAULT_PATROL_INTERVAL
    agent_command: tuple[str, ...] = ()
    retention_days: int = 7
    keymap: dict[str, str] = field(default_factory=dict)
    stale_binaries: tuple[StaleBinary, ...] = ()
    kill_grace: Duration = DEFAULT_KILL_GRACE
    path: Path | None = None
    warnings: tuple[str, ...] = ()


def load_settings(settings_dir: Path) -> Settings:
    """Read ``gtui.toml`` from ``settings_dir``; defaults when the file is absent."""
    path = settings_dir / "gtui.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read settings: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    return _parse(path, data)


def _parse(path: Path, data: dict[str, Any]) -> Settings:
    def bad(key: str, expected: str) -> SettingsError:
        return SettingsError(f"{path}: field '{key}' must be {expected}, not {data[key]!r}")

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
            raise SettingsError(f"{path}: field '{key}' {exc}") from None
        if value.seconds <= 0:
            raise bad(key, "longer than zero")
        return value

    agent = data.get("agent_command", [])
    if not isinstance(agent, list) or not all(isinstance(part, str) and part for part in agent):
        raise bad("agent_command", 'a list of strings like ["claude", "-p"]')
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict) or not all(isinstance(value, str) for value in keymap.values()):
        raise bad("keymap", 'a table of binding id = "keys"')
    return Settings(
        dogs=whole("dogs", 4, 1),
        patrol_interval=duration("patrol_interval", DEFAULT_PATROL_INTERVAL),
        agent_command=tuple(agent),
        retention_days=whole("retention_days", 7, 0),
        keymap=dict(keymap),
        stale_binaries=_stale_binaries(path, data.get("stale", {})),
        kill_grace=duration("kill_grace", DEFAULT_KILL_GRACE),
        path=path,
        warnings=tuple(f"{path}: unknown field '{key}'" for key in data if key not in KNOWN_KEYS),
    )


def _stale_binaries(path: Path, stale: Any) -> tuple[StaleBinary, ...]:
    if not isinstance(stale, dict) or not isinstance(stale.get("binaries", []), list):
        raise SettingsError(f"{path}: field 'stale.binaries' must be an array of tables ([[stale.binaries]])")
    found = []
    for index, entry in enumerate(stale.get("binaries", [])):
        where = f"stale.binaries[{index}]"
        if not isinstance(entry, dict):
            raise SettingsError(f"{path}: field '{where}' must be a table")
        for key in ("name", "binary", "repo"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise SettingsError(f"{path}: field '{where}.{key}' is required and must be a string")
        command = entry.get("commit_command", [])
        if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
            raise SettingsError(f"{path}: field '{where}.commit_command' must be a list of strings")
        found.append(StaleBinary(entry["name"], entry["binary"], entry["repo"], tuple(command)))
    return tuple(found)
