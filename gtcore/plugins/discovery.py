"""Discovery: find every plugin of a town and decide which copy of a name wins.

Order of precedence when two files share a ``name``: a rig's own
``plugins/`` beats a crew clone of that rig, and any rig copy beats the
town-level one, which beats a Gas City order of that key (a town that is a
city has its orders too: :mod:`gtcore.gascity`).  Between equals the first
found wins (rigs in registry order, crew clones by name).  Losers are never
dropped: they are listed on the winner as ``shadowed``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from stat import S_ISREG

from gtcore.core.errors import GtError, NotFound
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.plugins.cache import Identity, PluginCache, identity_of
from gtcore.plugins.spec import FILE_KINDS, InvalidPlugin, Plugin, parse_plugin, run_script_state
from gtcore.town.layout import Town, may_be_rig

if TYPE_CHECKING:
    from gtcore.gascity.mapping import CityScan
    from gtcore.town.settings import OrderSettings

RIG_ROOT, CREW_CLONE, TOWN_LEVEL, CITY_ORDER = 0, 1, 2, 3


class Candidate(Record):
    """Where a plugin file sits, and how strongly it claims its name."""

    path: str  # the plugin.md, as text: a town has thousands, and the cache needs no Path to know them
    rig: str
    rank: int
    crew: str | None = None
    identity: Identity | None = None  # the file as the plugin cache knows it


class PluginSet:
    """The outcome of one scan: usable plugins, invalid files and warnings."""

    def __init__(self, plugins: list[Plugin] | None = None, invalid: list[InvalidPlugin] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.plugins = plugins or []
        self.invalid = invalid or []
        self.warnings = warnings or []
        self.city: CityScan | None = None  # a city's side of the scan, when the town is a city
        self._by_name: dict[str, Plugin] | None = None

    def __repr__(self) -> str:
        return f"PluginSet(plugins={self.plugins!r}, invalid={self.invalid!r}, warnings={self.warnings!r})"

    def get(self, name: str) -> Plugin | None:
        """The plugin called ``name``: a dictionary, built once (a busy patrol asks for every finished run)."""
        if self._by_name is None or len(self._by_name) != len(self.plugins):
            self._by_name = {plugin.name: plugin for plugin in self.plugins}
        return self._by_name.get(name)

    def require(self, name: str, town: Town) -> Plugin:
        """The plugin named ``name``, or the one-line error every command gives for a wrong name."""
        found = self.get(name)
        if found is not None:
            return found
        broken = [bad for bad in self.invalid if bad.name == name]
        if broken:
            raise GtError(f"plugin {name} is invalid: {broken[0].location()}: {broken[0].error}; fix the file (gtui plugin list shows"
                          " every invalid one)")
        raise NotFound(f"no plugin named {name!r} in town {town.root}")


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


PLUGIN_FILES = frozenset({"plugin.md", "run.sh"})  # all a scan looks for in a plugin's directory
RIG_ENTRIES = frozenset({"plugins", "crew"})
CLONE_ENTRIES = frozenset({"plugins"})
FILE: frozenset[str] = frozenset()  # a file's own changes are all its watch tells


def scan_reads(town: Town) -> list[tuple[str, frozenset[str] | None]] | None:
    """Every path a scan of the town reads, with the entries in it whose changes matter (None: every entry but
    dot-entries), so that watching them shows any change that could change a scan (:mod:`gtcore.plugins.scan_keeper`); None
    for a town whose scan depends on more (a city: its orders and their settings; a rig named by a path).

    The town root, ``mayor/`` and its ``rigs.json``, each rig (every directory at the root when there is no registry),
    its ``crew/`` and crew clones, each plugins directory, every directory or link in it with its ``plugin.md`` and
    ``run.sh`` (a watch follows a link to its target: an edited linked file shows too).
    """
    root, registry = town.root, town.root / "mayor" / "rigs.json"
    if town.is_city():
        return None
    if registry.exists():
        rigs = town.rigs()
        if any(Path(rig).name != rig or rig in ("", ".", "..") for rig in rigs):
            return None
        reads: list[tuple[str, frozenset[str] | None]] = [(str(root), frozenset({"mayor", "plugins", "city.toml", *rigs}))]
        rig_dirs = [str(root / rig) for rig in rigs]
    else:
        reads, rig_dirs = [(str(root), None)], [path for path in _linked_or_dirs(str(root)) if may_be_rig(Path(path).name)]
    reads += [(str(root / "mayor"), frozenset({"rigs.json"})), (str(registry), FILE)]
    for rig_dir in rig_dirs:
        reads += [(rig_dir, RIG_ENTRIES), (rig_dir + "/crew", None)]
        reads += [(clone, CLONE_ENTRIES) for clone in _linked_or_dirs(rig_dir + "/crew")]
    for directory, *_ in plugin_dirs(town):
        reads.append((str(directory), None))
        for entry in _linked_or_dirs(str(directory)):
            reads += [(entry, PLUGIN_FILES), (entry + "/plugin.md", FILE), (entry + "/run.sh", FILE)]
    return reads


def _linked_or_dirs(directory: str) -> list[str]:
    """The entries of ``directory`` but dot-entries that are directories or symbolic links (a dangling one included: it
    cannot be watched, which is the point), as paths; none when it cannot be listed."""
    try:
        with os.scandir(directory) as entries:
            return [entry.path for entry in entries if not entry.name.startswith(".") and (entry.is_dir() or entry.is_symlink())]
    except OSError:
        return []


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
            entries = sorted(os.scandir(directory), key=_name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            yield f"{directory}: cannot read plugin directory: {exc.strerror or exc}"
            continue
        for entry in entries:
            if not entry.name.startswith("."):
                yield _inspect(entry, rig, rank, crew)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _inspect(entry: os.DirEntry[str], rig: str, rank: int, crew: str | None) -> Candidate | InvalidPlugin | str:
    """One entry of a plugins directory: its plugin.md as a candidate, why it is broken, or a warning about it.

    The common case is written out flat, for it runs for every plugin of the
    town on every patrol: a plain directory is known from the listing itself,
    and only ``plugin.md`` and ``run.sh`` are stat'ed (two system calls).
    """
    try:
        plain = entry.is_dir(follow_symlinks=False)
    except OSError:
        plain = False
    if plain:
        manifest = entry.path + "/plugin.md"  # strings, not Paths or os.path.join: a thousand entries per patrol
        try:
            info = os.stat(manifest)
        except OSError:
            info = None
        if info is not None and S_ISREG(info.st_mode):
            return Candidate(manifest, rig, rank, crew, identity_of(info, run_script_state(entry.path + "/run.sh")))
    verdict = _inspect_slowly(Path(entry.path))
    if isinstance(verdict, InvalidPlugin):
        return verdict._replace(rig=rig)
    if isinstance(verdict, str):
        return verdict
    manifest, identity = verdict
    return Candidate(manifest, rig, rank, crew, identity)


def _inspect_slowly(path: Path) -> tuple[str, Identity] | InvalidPlugin | str:
    """The rare entries, following symlinks: a linked plugin directory, a broken entry, a stray file, an empty directory."""
    kind = _file_kind(path)
    if kind != "directory":
        if kind in ("a dangling symlink", "a symlink loop", "unreadable"):
            return InvalidPlugin(path, f"plugin directory is {kind}")
        return f"{path}: not a plugin (plugins are directories holding plugin.md; this is {kind})"
    manifest = path / "plugin.md"
    kind = _file_kind(manifest)
    if kind == "a regular file":  # a symlinked plugin directory
        return str(manifest), identity_of(os.stat(manifest), run_script_state(str(path / "run.sh")))
    if kind == "missing":
        what = "holds run.sh but no plugin.md" if (path / "run.sh").exists() else "holds no plugin.md"
        return f"{path}: not a plugin: the directory {what}"
    return InvalidPlugin(manifest, f"plugin.md is {kind}, not a regular file")


def _file_kind(path: Path) -> str:
    """What ``path`` is, following symlinks, in words for a message (``directory`` and ``missing`` are checked by name)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "a dangling symlink" if os.path.islink(path) else "missing"
    except OSError as exc:
        return "a symlink loop" if exc.errno == errno.ELOOP else "unreadable"
    return FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")


def discover(town: Town, cache: PluginCache | None = None, orders: Mapping[str, OrderSettings] | None = None) -> PluginSet:
    """Scan the town, parse every candidate (or take it from ``cache`` when the file did not change) and dedupe by name;
    a city's orders (``orders``: their settings from gtui.toml) join them."""
    result = PluginSet()
    parsed: list[tuple[Candidate, Plugin]] = []
    seen: set[str] = set()
    for entry in scan_entries(town):
        if type(entry) is not Candidate:
            (result.warnings if isinstance(entry, str) else result.invalid).append(entry)  # type: ignore[arg-type]
            continue
        plugin = _parsed(entry, cache)
        seen.add(entry.path)
        if type(plugin) is Plugin:
            parsed.append((entry, plugin))
            if plugin.warnings:
                result.warnings += [f"{plugin.file}: {warning}" for warning in plugin.warnings]
        else:
            result.invalid.append(plugin)  # type: ignore[arg-type]
    if town.is_city():
        parsed += _orders(town, result, orders or {}, writable=cache is None or cache.writable)
    result.plugins = dedupe(parsed)
    if cache is not None:
        cache.forget_missing(seen)
    return result


def _orders(town: Town, result: PluginSet, settings: Mapping[str, OrderSettings], *, writable: bool) -> list[tuple[Candidate, Plugin]]:
    """The city's orders, as candidates weaker than any plugin of the same name."""
    from gtcore.gascity.mapping import scan_orders

    city = scan_orders(town.root, town.state_dir, settings, writable=writable)
    result.city = city
    result.invalid += city.invalid
    result.warnings += city.warnings
    result.warnings += [f"{plugin.file}: {warning}" for plugin in city.plugins for warning in plugin.warnings]
    return [(Candidate(plugin.file, plugin.rig, CITY_ORDER), plugin) for plugin in city.plugins]


def _parsed(candidate: Candidate, cache: PluginCache | None) -> Plugin | InvalidPlugin:
    if cache is not None and candidate.identity is not None:
        known = cache.lookup(candidate.path, candidate.identity, candidate.rig, candidate.crew)
        if known is not None:
            return known
    run_script = None if candidate.identity is None else candidate.identity[3]
    plugin = parse_plugin(Path(candidate.path), candidate.rig, candidate.crew, run_script)
    if cache is not None and candidate.identity is not None:
        cache.store(candidate.path, candidate.identity, plugin)
    return plugin


def dedupe(parsed: list[tuple[Candidate, Plugin]]) -> list[Plugin]:
    """Keep the strongest copy of each name and record the others as shadowed; winners keep discovery order."""
    if len({plugin.name for _, plugin in parsed}) == len(parsed):
        return [plugin for _, plugin in parsed]  # every name once, as in most towns: nothing to decide
    ordered = sorted(range(len(parsed)), key=lambda index: (parsed[index][0].rank, index))
    winners: dict[str, tuple[int, Plugin]] = {}
    for index in ordered:
        plugin = parsed[index][1]
        won = winners.get(plugin.name)
        if won is None:
            winners[plugin.name] = (index, plugin)
        else:
            winners[plugin.name] = (won[0], won[1]._replace(shadowed=(*won[1].shadowed, plugin.path)))
    return [plugin for _, plugin in sorted(winners.values(), key=lambda won: won[0])]
