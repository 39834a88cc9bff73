"""Plugins as records: what a valid ``plugin.md`` says, and what makes a file invalid.

A plugin file is TOML frontmatter between ``+++`` lines followed by markdown
instructions; :mod:`gtcore.plugins.parse` reads one into these records.  They
are kept apart from the parser so that a patrol over unchanged files (whose
records come from the plugin cache) never loads the TOML, frontmatter and
cron parsers at all.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from gtcore.core.durations import Duration, parse_duration
from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32
CRON_HORIZON_YEARS = 5  # a schedule that fires less often than this is a mistake (April 31st never comes)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
GATE_TYPES = ("cooldown", "cron", "condition", "event", "manual")
EXECUTION_TYPES = ("script", "agent")
DEFAULT_TIMEOUT = parse_duration("10m")
DEFAULT_CHECK_TIMEOUT = parse_duration("30s")

TOP_KEYS = {"name", "description", "version", "enabled", "gate", "tracking", "execution"}
GATE_KEYS = {"type", "duration", "schedule", "timezone", "check", "check_timeout", "on", "disabled"}
GATE_FIELDS_BY_TYPE = {
    "cooldown": {"duration"},
    "cron": {"schedule", "timezone"},
    "condition": {"check", "check_timeout"},
    "event": {"on"},
    "manual": set(),
    "webhook": set(),  # a Gas City order's trigger only: gc's webhook receiver fires it (see gtcore.gascity)
}
TRACKING_KEYS = {"labels", "digest"}
EXECUTION_KEYS = {"type", "timeout", "notify_on_failure", "severity", "hosts"}


class Gate(Record):
    """When a plugin may run by itself (see ``gtcore.gates.rules``)."""

    type: str
    duration: Duration | None = None
    schedule: str | None = None
    timezone: str | None = None
    check: str | None = None
    check_timeout: Duration = DEFAULT_CHECK_TIMEOUT
    on: str | None = None
    disabled: bool = False  # Gas Town's ``[gate] disabled = true``: like ``enabled = false``

    def to_json(self) -> dict[str, Any]:
        """The gate's type and the fields that mean something for that type."""
        out: dict[str, Any] = {"type": self.type}
        if self.disabled:
            out["disabled"] = True
        for key in sorted(GATE_FIELDS_BY_TYPE[self.type]):
            value = getattr(self, key)
            out[key] = str(value) if isinstance(value, Duration) else value
        return out

    def describe(self) -> str:
        """A short human summary such as ``cooldown 1h`` or ``cron 0 3 * * *``."""
        detail = {
            "cooldown": self.duration,
            "cron": self.schedule,
            "condition": self.check,
            "event": self.on,
            "manual": "",
            "webhook": "",
        }[self.type]
        return f"{self.type} {detail}".strip()


class Tracking(Record):
    """Labels added to every run wisp, and whether runs are squashed into digests."""

    labels: tuple[str, ...] = ()
    digest: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "digest": self.digest}


class Execution(Record):
    """How a dog runs the plugin and what a failure means."""

    type: str = "script"
    timeout: Duration = DEFAULT_TIMEOUT
    notify_on_failure: bool = False
    severity: str = "medium"
    hosts: tuple[str, ...] = ()  # pinned: only dogs of these hosts (GT_HOST, else the hostname) run it; () runs anywhere

    def runs_on(self, host: str) -> bool:
        return not self.hosts or host in self.hosts

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "timeout": str(self.timeout),
            "notify_on_failure": self.notify_on_failure,
            "severity": self.severity,
            "hosts": list(self.hosts),
        }


class Plugin(Record):
    """A valid plugin as found on disk.

    ``file`` is its ``plugin.md`` as text (``path`` as a Path: a patrol reads
    thousands of plugins and needs no Path for any of them).  ``rig`` is
    ``"town"`` for town-level plugins; ``crew`` names the crew clone the file
    came from, if any.  ``shadowed`` lists the paths of same-named copies
    this one hides.
    """

    name: str
    file: str
    rig: str
    gate: Gate
    execution: Execution
    tracking: Tracking = Tracking()
    description: str = ""
    version: str | int | None = None
    enabled: bool = True
    instructions: str = ""
    has_run_script: bool = False
    crew: str | None = None
    mtime: float = 0.0
    warnings: tuple[str, ...] = ()
    shadowed: tuple[Path, ...] = ()
    order: Any = None  # a Gas City order's own part (gtcore.gascity.mapping.OrderContext); None for a plugin

    @property
    def kind(self) -> str:
        """``order`` for a Gas City order, ``plugin`` for a plugin: listings and the control room say which."""
        return "plugin" if self.order is None else "order"

    @property
    def runs_by_itself(self) -> bool:
        """False when the author switched it off: ``enabled = false``, or Gas Town's ``[gate] disabled = true``."""
        return self.enabled and not self.gate.disabled

    @property
    def disabled_reason(self) -> str:
        """Why it never opens by itself, in the words of the file ("" when it is on)."""
        if not self.enabled:
            return "disabled in plugin.md (enabled = false)" if self.order is None else "disabled by [[orders.overrides]] (enabled = false)"
        return "disabled in plugin.md (gate.disabled = true)" if self.gate.disabled else ""

    @property
    def workdir(self) -> str:
        """Where its runs start: a plugin's directory; a Gas City order's city root or rig path."""
        return os.path.dirname(self.file) if self.order is None else self.order.scope_root

    @property
    def path(self) -> Path:
        return Path(self.file)

    @property
    def directory(self) -> Path:
        return Path(self.file).parent

    @property
    def run_script(self) -> Path:
        return Path(self.file).parent / "run.sh"


class InvalidPlugin(Record):
    """A plugin file that could not be used, and exactly why."""

    path: Path
    error: str
    line: int | None = None
    rig: str = "town"

    @property
    def name(self) -> str:
        """The plugin's name as its place gives it (its directory, an order file's stem): a file that could not be read
        names nothing better, and every listing and command says it by this name."""
        if self.path.name in ("plugin.md", "order.toml"):
            return self.path.parent.name
        if self.path.suffix == ".toml":  # orders/<name>.toml names an order; city.toml and a pack's files name none
            return self.path.stem if self.path.parent.name == "orders" else ""
        return self.path.name  # an entry of a plugins directory that is no plugin directory

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name or None, "path": str(self.path), "line": self.line, "error": self.error, "rig": self.rig}


FILE_KINDS = {stat.S_IFDIR: "directory", stat.S_IFREG: "a regular file", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}
"""What a path that is not a regular file is, in words for a message."""


def run_script_state(path: str) -> bool | str:
    """Whether a plugin has a ``run.sh`` it can run: True (a regular file gtui may read), False (no ``run.sh`` at all), or
    why the one it has cannot be run (a dangling or looping link, a directory, a FIFO, a device, unreadable).

    Only the absence of ``run.sh`` makes an agent plugin: a deploy caught half
    done (a dangling link) must never send a plugin's markdown to an agent.
    One ``stat`` in the common case; the rest only for what is not a file.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "run.sh is a symbolic link to a path that does not exist" if os.path.islink(path) else False
    except OSError as exc:
        return "run.sh is a symbolic link loop" if exc.errno == errno.ELOOP else f"run.sh cannot be read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        kind = FILE_KINDS.get(stat.S_IFMT(info.st_mode), "something else")
        return f"run.sh is {'a directory' if kind == 'directory' else kind}, not a regular file"
    mine = info.st_uid == os.geteuid() and info.st_mode & stat.S_IRUSR  # the usual case, without one more system call
    if not mine and not os.access(path, os.R_OK):
        return "run.sh cannot be read (its permissions)"
    return True


def parse_plugin(path: Path, rig: str = "town", crew: str | None = None,
                 run_script: bool | str | None = None) -> Plugin | InvalidPlugin:
    """Read and validate one ``plugin.md`` (:func:`gtcore.plugins.parse.parse_plugin`); never raises.

    The parser module (and the TOML and frontmatter packages behind it) loads
    at the first file that must be parsed; a patrol of unchanged files never does.
    """
    global _parse
    if _parse is None:
        from gtcore.plugins.parse import parse_plugin

        _parse = parse_plugin
    return _parse(path, rig, crew, run_script)


_parse: Callable[[Path, str, str | None, bool | str | None], Plugin | InvalidPlugin] | None = None  # plugin_file's, once loaded
