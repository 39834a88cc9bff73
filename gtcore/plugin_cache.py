"""A cache of parsed plugin files in ``<town>/.gtui/plugins.cache``, so unchanged files are only stat'ed.

A patrol reads every plugin of the town; re-parsing a thousand unchanged
files (TOML, validation, cron checks) costs most of an idle ``gtui --once``.
Each entry is keyed by the file's identity — path, size, mtime in
nanoseconds, inode, and whether ``run.sh`` is beside it (which changes how
the file validates) — and holds the parsed record as plain values.  It also
keeps the cron slots the gates found (:data:`gtcore.gates.SLOTS`).

The cache is only a cache: deleting it changes nothing but speed; a file
that is unreadable, from another gtui version, or damaged is ignored and
rebuilt; a state directory that cannot be written simply goes uncached.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path
from typing import Any

from gtcore import __version__
from gtcore.durations import Duration
from gtcore.gates import SLOTS
from gtcore.plugins import Execution, Gate, InvalidPlugin, Plugin, Tracking

FORMAT = 1
Identity = tuple[int, int, int, bool]  # size, mtime_ns, inode, run.sh beside it


def identity_of(manifest: os.stat_result, run_script: bool) -> Identity:
    return manifest.st_size, manifest.st_mtime_ns, manifest.st_ino, run_script


class PluginCache:
    """Parsed plugins by file identity, loaded on first use and written back only when it changed."""

    def __init__(self, path: Path, *, writable: bool = True) -> None:
        self.path, self.writable = path, writable
        self._entries: dict[str, tuple[Identity, tuple[Any, ...]]] = {}
        self._dirty = False
        self._load()
        self._slots_saved = len(SLOTS)

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                data = marshal.loads(handle.read())  # marshal.load() reads a file in small pieces: ten times slower
            if data.get("format") != FORMAT or data.get("gtui") != __version__:
                return
            self._entries = dict(data["plugins"])
            SLOTS.update(data["slots"])
        except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
            self._entries = {}  # absent, damaged or foreign: rebuilt as plugins are parsed

    def lookup(self, manifest: Path, identity: Identity, rig: str, crew: str | None) -> Plugin | InvalidPlugin | None:
        entry = self._entries.get(str(manifest))
        if entry is None or entry[0] != identity:
            return None
        try:
            record = entry[1]
            if record[0] == "!":
                _, error, line = record
                return InvalidPlugin(manifest, error, line, rig=rig)
            return _plugin(manifest, rig, crew, record)
        except (TypeError, ValueError, IndexError):
            return None  # a damaged entry: parsed again

    def store(self, manifest: Path, identity: Identity, parsed: Plugin | InvalidPlugin) -> None:
        record = ("!", parsed.error, parsed.line) if isinstance(parsed, InvalidPlugin) else _record(parsed)
        self._entries[str(manifest)] = (identity, record)
        self._dirty = True

    def forget_missing(self, seen: set[str]) -> None:
        """Drop entries of files that are gone, so the cache does not grow with every plugin ever seen."""
        gone = [key for key in self._entries if key not in seen]
        for key in gone:
            del self._entries[key]
        self._dirty = self._dirty or bool(gone)

    def save(self) -> None:
        """Write the cache if it (or the gates' cron slots) changed; atomically, so a reader never sees half of it."""
        if not self.writable or not (self._dirty or len(SLOTS) != self._slots_saved):
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            with open(temp, "wb") as handle:
                marshal.dump({"format": FORMAT, "gtui": __version__, "plugins": self._entries, "slots": dict(SLOTS)}, handle)
            os.replace(temp, self.path)
            self._dirty, self._slots_saved = False, len(SLOTS)


def _duration(value: Duration | None) -> tuple[str, float] | None:
    return None if value is None else (value.text, value.seconds)


def _record(plugin: Plugin) -> tuple[Any, ...]:
    gate, execution = plugin.gate, plugin.execution
    return (
        plugin.name,
        (gate.type, _duration(gate.duration), gate.schedule, gate.timezone, gate.check, _duration(gate.check_timeout), gate.on,
         gate.disabled),
        (execution.type, _duration(execution.timeout), execution.notify_on_failure, execution.severity),
        (plugin.tracking.labels, plugin.tracking.digest),
        plugin.description, plugin.version, plugin.enabled, plugin.instructions, plugin.has_run_script, plugin.mtime,
        plugin.warnings,
    )


def _back(value: tuple[str, float] | None) -> Duration | None:
    return None if value is None else Duration(value[0], value[1])


_PARTS: dict[tuple[Any, ...], Any] = {}  # gate, execution and tracking records by value: a town repeats a few of each


def _part(kind: type, values: tuple[Any, ...]) -> Any:
    key = (kind, values)
    part = _PARTS.get(key)
    if part is None:
        if kind is Gate:
            name, duration, schedule, timezone, check, check_timeout, on, disabled = values
            part = Gate(name, _back(duration), schedule, timezone, check, _back(check_timeout), on, disabled)  # type: ignore[arg-type]
        elif kind is Execution:
            part = Execution(values[0], _back(values[1]), values[2], values[3])  # type: ignore[arg-type]
        else:
            part = Tracking(tuple(values[0]), values[1])
        _PARTS[key] = part
    return part


def _plugin(manifest: Path, rig: str, crew: str | None, record: tuple[Any, ...]) -> Plugin:
    name, gate, execution, tracking, description, version, enabled, instructions, has_run_script, mtime, warnings = record
    return Plugin(name, manifest, rig, _part(Gate, gate), _part(Execution, execution), _part(Tracking, tracking), description, version,
                  enabled, instructions, has_run_script, crew, mtime, tuple(warnings))
