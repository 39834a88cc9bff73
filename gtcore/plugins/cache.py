"""A cache of parsed plugin files in ``<town>/.gtui/plugins.cache``, so unchanged files are only stat'ed.

A patrol reads every plugin of the town; re-parsing a thousand unchanged
files (TOML, validation, cron checks) costs most of an idle ``gtui --once``.
Each entry is keyed by the file's identity — path, size, mtime in
nanoseconds, inode, and whether ``run.sh`` is beside it (which changes how
the file validates) — and holds the parsed record as plain values.  It also
keeps the cron slots the gates found (:data:`gtcore.gates.rules.SLOTS`) and the
last outcome of each condition's check.

The cache is only a cache: deleting it changes nothing but speed; a file
that is unreadable, from another gtui version, or damaged is ignored and
rebuilt; a state directory that cannot be written simply goes uncached.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import threading
from pathlib import Path

from gtcore import __version__
from gtcore.core.durations import Duration
from gtcore.core.records import TYPE_CHECKING
from gtcore.gates.decisions import CheckResult
from gtcore.gates.rules import SLOTS
from gtcore.plugins.spec import Execution, Gate, InvalidPlugin, Plugin, Tracking
from gtcore.town.document_cache import settled

if TYPE_CHECKING:
    from typing import Any

FORMAT = 4
Identity = tuple[int, int, int, "bool | str"]  # size, mtime_ns, inode, run.sh beside it (see discovery.run_script_state)


UNREADABLE = (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError)  # an absent, damaged or foreign file


def _checks(data: dict[str, Any]) -> dict[str, CheckResult]:
    return {name: CheckResult(*values) for name, values in data["checks"].items()}


def identity_of(manifest: os.stat_result, run_script: bool | str) -> Identity:
    return manifest.st_size, manifest.st_mtime_ns, manifest.st_ino, run_script


class PluginCache:
    """Parsed plugins by file identity, loaded on first use and written back only when it changed.

    A town repeats a handful of gates, executions and trackings across
    hundreds of plugins, so the file keeps each distinct one once (``parts``)
    and plugins point at them by index: a cached plugin is rebuilt from a few
    list lookups, its gate shared with every plugin that has the same one.
    """

    def __init__(self, path: Path, *, writable: bool = True) -> None:
        self.path, self.writable = path, writable
        self._entries: dict[str, tuple[Identity, tuple[Any, ...]]] = {}
        self._parts: list[tuple[str, tuple[Any, ...]]] = []
        self._built: list[Any] = []
        self._index: dict[tuple[str, tuple[Any, ...]], int] = {}
        self._dirty = False
        self.checks: dict[str, CheckResult] = {}  # the last check of each condition, for a process that runs none
        self._seen: tuple[int, int] | None = None  # the file as last read (mtime, inode): see fresh_checks
        self._load()
        self._slots_saved = len(SLOTS)

    def _read(self) -> dict[str, Any]:
        """The file's contents (noting which file it was); ValueError when another format or gtui wrote it."""
        with open(self.path, "rb") as handle:
            seen = os.fstat(handle.fileno())
            data = marshal.loads(handle.read())  # marshal.load() reads a file in small pieces: ten times slower
        self._seen = (seen.st_mtime_ns, seen.st_ino)
        if data.get("format") != FORMAT or data.get("gtui") != __version__:
            raise ValueError("another format or gtui version")
        return data

    def _load(self) -> None:
        try:
            data = self._read()
            entries, parts = dict(data["plugins"]), list(data["parts"])
            SLOTS.update(data["slots"])
            self.checks = _checks(data)
        except UNREADABLE:
            return  # absent, damaged or foreign: rebuilt as plugins are parsed
        self._entries, self._parts, self._built = entries, parts, [None] * len(parts)

    def lookup(self, manifest: str, identity: Identity, rig: str, crew: str | None) -> Plugin | InvalidPlugin | None:
        """The cached parse of ``manifest`` if the file is still the one that was parsed, else None."""
        entry = self._entries.get(manifest)
        if entry is None or entry[0] != identity:
            return None
        try:
            record = entry[1]
            if record[0] == "!":
                _, error, line = record
                return InvalidPlugin(Path(manifest), error, line, rig=rig)
            name, gate, execution, tracking, description, version, enabled, instructions, has_run_script, mtime, warnings = record
            return Plugin(name, manifest, rig, self._part(gate, "gate"), self._part(execution, "execution"),
                          self._part(tracking, "tracking"), description, version, enabled, instructions, has_run_script, crew,
                          mtime, tuple(warnings))
        except (TypeError, ValueError, IndexError, KeyError):
            return None  # a damaged entry: parsed again

    def _part(self, index: int, kind: str) -> Any:
        built = self._built[index]
        if built is None:
            stored_kind, values = self._parts[index]
            if stored_kind != kind:
                raise ValueError(f"part {index} is a {stored_kind}, not a {kind}")
            built = self._built[index] = _build(kind, values)
        return built

    def _refer(self, kind: str, values: tuple[Any, ...]) -> int:
        key = (kind, values)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._parts)
            self._parts.append(key)
            self._built.append(None)
        return index

    def store(self, manifest: str, identity: Identity, parsed: Plugin | InvalidPlugin) -> None:
        """Remember a parse; not for a file changed in the last seconds (:func:`gtcore.town.document_cache.settled`)."""
        if not settled(identity[1]):
            return
        if not self._index and self._parts:
            self._index = {part: index for index, part in enumerate(self._parts)}
        record = ("!", parsed.error, parsed.line) if isinstance(parsed, InvalidPlugin) else self._record(parsed)
        self._entries[manifest] = (identity, record)
        self._dirty = True

    def forget_missing(self, seen: set[str]) -> None:
        """Drop entries of files that are gone, so the cache does not grow with every plugin ever seen."""
        gone = [key for key in self._entries if key not in seen]
        for key in gone:
            del self._entries[key]
        self._dirty = self._dirty or bool(gone)

    def fresh_checks(self) -> dict[str, CheckResult]:
        """The last checks as the file has them now: a process that lives long and runs no check (a read-only control
        room) sees those the town's patrols kept since (one ``stat``; the file is read again only when it changed)."""
        with contextlib.suppress(*UNREADABLE):
            info = os.stat(self.path)
            if (info.st_mtime_ns, info.st_ino) != self._seen:
                self._newest(_checks(self._read()))
        return self.checks

    def _newest(self, found: dict[str, CheckResult]) -> None:
        """Keep, for each plugin, the later of the check known here and the one found (by when it ran)."""
        for name, check in found.items():
            known = self.checks.get(name)
            if known is None or (check.at or 0.0) > (known.at or 0.0):
                self.checks[name] = check

    def remember_checks(self, checks: dict[str, CheckResult]) -> None:
        """Keep the outcomes of a patrol's condition checks, so ``plugin list`` and a read-only control room can say
        the last check's time and outcome (only a cache: without it they say none was run)."""
        if checks:
            self.checks.update(checks)
            self._dirty = True

    def save(self) -> None:
        """Write the cache if it (or the gates' cron slots) changed; atomically, so a reader never sees half of it."""
        if not self.writable or not (self._dirty or len(SLOTS) != self._slots_saved):
            return
        self._compact()
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            data = {"format": FORMAT, "gtui": __version__, "plugins": self._entries, "parts": self._parts, "slots": dict(SLOTS),
                    "checks": {name: tuple(check) for name, check in self.checks.items()}}
            with open(temp, "wb") as handle:
                marshal.dump(data, handle)
            os.replace(temp, self.path)
            self._dirty, self._slots_saved = False, len(SLOTS)

    def _compact(self) -> None:
        """Drop the parts no plugin points at any more (a schedule edited ten times leaves nine)."""
        used = sorted({index for _, record in self._entries.values() if record[0] != "!" for index in record[1:4]})
        if len(used) == len(self._parts):
            return
        renumber = {old: new for new, old in enumerate(used)}
        self._entries = {path: (identity, record if record[0] == "!" else
                                (record[0], *(renumber[index] for index in record[1:4]), *record[4:]))
                         for path, (identity, record) in self._entries.items()}
        self._parts = [self._parts[old] for old in used]
        self._built = [self._built[old] for old in used]
        self._index = {}

    def _record(self, plugin: Plugin) -> tuple[Any, ...]:
        gate, execution = plugin.gate, plugin.execution
        return (
            plugin.name,
            self._refer("gate", (gate.type, _duration(gate.duration), gate.schedule, gate.timezone, gate.check,
                                 _duration(gate.check_timeout), gate.on, gate.disabled)),
            self._refer("execution", (execution.type, _duration(execution.timeout), execution.notify_on_failure, execution.severity,
                                         execution.hosts)),
            self._refer("tracking", (plugin.tracking.labels, plugin.tracking.digest)),
            plugin.description, plugin.version, plugin.enabled, plugin.instructions, plugin.has_run_script, plugin.mtime,
            plugin.warnings,
        )


def _duration(value: Duration | None) -> tuple[str, float] | None:
    return None if value is None else (value.text, value.seconds)


def _back(value: tuple[str, float] | None) -> Duration | None:
    return None if value is None else Duration(value[0], value[1])


def _build(kind: str, values: tuple[Any, ...]) -> Gate | Execution | Tracking:
    if kind == "gate":
        name, duration, schedule, timezone, check, check_timeout, on, disabled = values
        return Gate(name, _back(duration), schedule, timezone, check, _back(check_timeout), on, disabled)  # type: ignore[arg-type]
    if kind == "execution":
        return Execution(values[0], _back(values[1]), values[2], values[3], tuple(values[4]))  # type: ignore[arg-type]
    return Tracking(tuple(values[0]), values[1])
