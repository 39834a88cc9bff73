"""Discovery: find every plugin of a town and decide which copy of a name wins.

Order of precedence when two files share a ``name``: a rig's own
``plugins/`` beats a crew clone of that rig, and any rig copy beats the
town-level one.  Between equals the first found wins (rigs in registry order,
crew clones by name).  Losers are never dropped: they are listed on the
winner as ``shadowed``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from gtcore.errors import NotFound
from gtcore.plugins import InvalidPlugin, Plugin, parse_plugin
from gtcore.town import Town

RIG_ROOT, CREW_CLONE, TOWN_LEVEL = 0, 1, 2


@dataclass(frozen=True)
class Candidate:
    """Where a plugin file sits, and how strongly it claims its name."""

    path: Path
    rig: str
    rank: int
    crew: str | None = None


@dataclass
class PluginSet:
    """The outcome of one scan: usable plugins, invalid files and warnings."""

    plugins: list[Plugin] = field(default_factory=list)
    invalid: list[InvalidPlugin] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str) -> Plugin | None:
        return next((plugin for plugin in self.plugins if plugin.name == name), None)

    def require(self, name: str, town: Town) -> Plugin:
        """The plugin named ``name``, or the one-line error every command gives for a wrong name."""
        found = self.get(name)
        if found is None:
            raise NotFound(f"no plugin named {name!r} in town {town.root}")
        return found


def plugin_dirs(town: Town) -> list[tuple[Path, str, int, str | None]]:
    """Every directory that may hold plugins: (dir, rig, rank, crew)."""
    dirs: list[tuple[Path, str, int, str | None]] = [(town.root / "plugins", "town", TOWN_LEVEL, None)]
    for rig in town.rigs():
        rig_dir = town.root / rig
        dirs.append((rig_dir / "plugins", rig, RIG_ROOT, None))
        crew_dir = rig_dir / "crew"
        if crew_dir.is_dir():
            dirs += [
                (clone / "plugins", rig, CREW_CLONE, clone.name)
                for clone in sorted(crew_dir.iterdir(), key=lambda p: p.name)
                if clone.is_dir() and not clone.name.startswith(".")
            ]
    return dirs


def scan_entries(town: Town) -> Iterator[Candidate | InvalidPlugin | str]:
    """Every entry of every plugins directory, in discovery order, skipping dot-entries.

    Nothing vanishes: an entry that cannot be a plugin comes out as an
    :class:`InvalidPlugin` when it was meant as one (its ``plugin.md`` is a
    directory, a FIFO or a dangling link) and as a warning string when it only
    looks stray (a file, a directory with ``run.sh`` and no ``plugin.md``); a
    plugin directory that exists but cannot be read is a warning too, never an empty one.
    """
    for directory, rig, rank, crew in plugin_dirs(town):
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            yield f"{directory}: cannot read plugin directory: {exc.strerror or exc}"
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            verdict = _inspect(Path(entry.path))
            if isinstance(verdict, Path):
                yield Candidate(verdict, rig, rank, crew)
            elif isinstance(verdict, InvalidPlugin):
                yield replace(verdict, rig=rig)
            else:
                yield verdict


def find_candidates(town: Town) -> list[Candidate]:
    """The ``plugin.md`` files that will be parsed, in discovery order."""
    return [entry for entry in scan_entries(town) if isinstance(entry, Candidate)]


def _inspect(entry: Path) -> Path | InvalidPlugin | str:
    """One entry of a plugins directory: its plugin.md, why it is broken, or a warning about it."""
    kind = _file_kind(entry)
    if kind != "directory":
        if kind in ("a dangling symlink", "a symlink loop", "unreadable"):
            return InvalidPlugin(entry, f"plugin directory is {kind}")
        return f"{entry}: not a plugin (plugins are directories holding plugin.md; this is {kind})"
    manifest = entry / "plugin.md"
    kind = _file_kind(manifest)
    if kind == "a regular file":
        return manifest
    if kind == "missing":
        what = "holds run.sh but no plugin.md" if (entry / "run.sh").exists() else "holds no plugin.md"
        return f"{entry}: not a plugin: the directory {what}"
    return InvalidPlugin(manifest, f"plugin.md is {kind}, not a regular file")


_KINDS = {stat.S_IFDIR: "directory", stat.S_IFREG: "a regular file", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def _file_kind(path: Path) -> str:
    """What ``path`` is, following symlinks, in words for a message (``directory`` and ``missing`` are checked by name)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "a dangling symlink" if os.path.islink(path) else "missing"
    except OSError as exc:
        return "a symlink loop" if exc.errno == errno.ELOOP else "unreadable"
    return _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")


def discover(town: Town) -> PluginSet:
    """Scan the town, parse every candidate and dedupe by name."""
    result = PluginSet()
    parsed: list[tuple[Candidate, Plugin]] = []
    for entry in scan_entries(town):
        if isinstance(entry, str):
            result.warnings.append(entry)
            continue
        if isinstance(entry, InvalidPlugin):
            result.invalid.append(entry)
            continue
        plugin = parse_plugin(entry.path, entry.rig, entry.crew)
        if isinstance(plugin, InvalidPlugin):
            result.invalid.append(plugin)
        else:
            parsed.append((entry, plugin))
            result.warnings += [f"{plugin.path}: {warning}" for warning in plugin.warnings]
    result.plugins = dedupe(parsed)
    return result


def dedupe(parsed: list[tuple[Candidate, Plugin]]) -> list[Plugin]:
    """Keep the strongest copy of each name and record the others as shadowed."""
    ordered = sorted(enumerate(parsed), key=lambda item: (item[1][0].rank, item[0]))
    winners: dict[str, Plugin] = {}
    for _, (candidate, plugin) in ordered:
        winner = winners.get(plugin.name)
        if winner is None:
            winners[plugin.name] = plugin
        else:
            winners[plugin.name] = replace(winner, shadowed=(*winner.shadowed, candidate.path))
    position = {plugin.path: index for index, (_, plugin) in enumerate(parsed)}
    return sorted(winners.values(), key=lambda plugin: position[plugin.path])
