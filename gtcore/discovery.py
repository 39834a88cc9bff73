"""Discovery: find every plugin of a town and decide which copy of a name wins.

Order of precedence when two files share a ``name``: a rig's own
``plugins/`` beats a crew clone of that rig, and any rig copy beats the
town-level one.  Between equals the first found wins (rigs in registry order,
crew clones by name).  Losers are never dropped: they are listed on the
winner as ``shadowed``.
"""

from __future__ import annotations

import os
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


def find_candidates(town: Town, problems: list[str] | None = None) -> list[Candidate]:
    """All ``plugin.md`` files in discovery order, skipping dot-directories.

    A plugin directory that exists but cannot be read is reported in
    ``problems`` rather than looking like an empty one.
    """
    found = []
    for directory, rig, rank, crew in plugin_dirs(town):
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            if problems is not None:
                problems.append(f"{directory}: cannot read plugin directory: {exc.strerror or exc}")
            continue
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            manifest = Path(entry.path) / "plugin.md"
            if manifest.is_file():
                found.append(Candidate(manifest, rig, rank, crew))
    return found


def discover(town: Town) -> PluginSet:
    """Scan the town, parse every candidate and dedupe by name."""
    result = PluginSet()
    parsed: list[tuple[Candidate, Plugin]] = []
    for candidate in find_candidates(town, result.warnings):
        plugin = parse_plugin(candidate.path, candidate.rig, candidate.crew)
        if isinstance(plugin, InvalidPlugin):
            result.invalid.append(plugin)
        else:
            parsed.append((candidate, plugin))
            result.warnings += [f"{candidate.path}: {warning}" for warning in plugin.warnings]
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
