"""The town: its root directory, its rigs and where gtui keeps its own state.

A Gas City city (a directory holding ``city.toml``) is a town too: its
orders are found beside the town's plugins (:mod:`gtcore.gascity`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from gtcore.core.errors import GtError, NotFound, Problem
from gtcore.core.records import Record


class Town(Record):
    """Paths of one Gas Town installation."""

    root: Path

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None, *, cwd: Path | None = None,
               environ: Mapping[str, str] | None = None) -> Town:
        """Find the town as Gas Town does: ``--town PATH``, else ``$GT_TOWN_ROOT``, ``$GT_ROOT``, ``$GT_TOWN``, else a city
        as Gas City finds one (``$GC_CITY``, ``$GC_CITY_PATH``, ``$GC_CITY_ROOT``), else the nearest directory at or above
        the working directory (``$GC_DIR`` when set) holding ``mayor/town.json`` or ``city.toml`` (a ``city.toml`` is not
        looked for above ``$HOME``, the temporary directory or ``$GC_CEILING_DIRECTORIES``, as gc does not), else ``~/gt``."""
        chosen, source = _choose_root(explicit, os.environ if environ is None else environ, cwd)
        root = Path(chosen).expanduser()
        if not root.is_dir():
            raise NotFound(f"no town at {root} ({source}): the directory does not exist")
        return cls(root.resolve())

    def looks_like_a_town(self) -> bool:
        """A Gas Town (``mayor/town.json``), a Gas City (``city.toml``), or a directory gtui already knows (``plugins/``,
        ``settings/``, ``.gtui/``)."""
        return self.is_city() or any(path.exists() for path in (self.root / "mayor" / "town.json", self.root / "plugins",
                                                                 self.settings_dir, self.state_dir))

    def is_city(self) -> bool:
        """Whether the town is a Gas City city (its root holds ``city.toml``): it has orders."""
        return (self.root / "city.toml").is_file()

    def controller_problem(self) -> Problem | None:
        """A warning while Gas City's controller runs for this city: it dispatches the city's orders too."""
        if not self.is_city():
            return None
        from gtcore.gascity.controller import problem

        return problem(self.root)

    @property
    def state_dir(self) -> Path:
        """``<town>/.gtui``: the ledger, run logs and gtui's own files."""
        return self.root / ".gtui"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def settings_dir(self) -> Path:
        return self.root / "settings"

    def daemon_problem(self) -> Problem | None:
        """A warning when Gas Town's own daemon would dispatch cooldown plugins beside gtui (its handler patrol).

        The handler patrol is on unless ``mayor/daemon.json`` says
        ``patrols.handler.enabled = false`` or ``settings/config.json`` lists
        ``"handler"`` in ``disabled_patrols`` (Gas Town's defaults: on).
        """
        daemon = self.root / "mayor" / "daemon.json"
        if not daemon.is_file():
            return None
        patrols = _json_object(daemon).get("patrols")
        handler = patrols.get("handler") if isinstance(patrols, dict) else None
        if isinstance(handler, dict) and handler.get("enabled") is False:
            return None
        disabled = _json_object(self.settings_dir / "config.json").get("disabled_patrols")
        if isinstance(disabled, list) and "handler" in disabled:
            return None
        return Problem(str(daemon), "patrols.handler.enabled",
                       "Gas Town's daemon runs cooldown plugins too while it runs (its handler patrol is on): set it to false,"
                       ' or add "handler" to disabled_patrols in settings/config.json, so that only gtui runs them', "warning")

    def dolt_environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with ``GT_DOLT_HOST`` and ``GT_DOLT_PORT`` as Gas Town's daemon hands them to its dogs (those set,
        the others absent).

        What ``environ`` says, overridden by the ``env`` of ``mayor/daemon.json``
        (which the daemon sets on itself, where ``gt config set dolt.port``
        writes), both replaced by the town's managed Dolt server, the
        ``listener`` of ``.dolt-data/config.yaml``, unless
        ``GT_DOLT_IGNORE_CONFIG=1`` (the daemon's ``ApplyConfiguredDoltEnv``,
        which then also drops bd's ``BEADS_DOLT_*`` endpoint variables: an
        inherited one must not point a dog at another town's server).
        """
        endpoint = {key: environ[key] for key in DOLT_KEYS if environ.get(key)}
        daemon_env = _json_object(self.root / "mayor" / "daemon.json").get("env")
        if isinstance(daemon_env, dict):
            endpoint.update({key: value for key in DOLT_KEYS if isinstance(value := daemon_env.get(key), str) and value.strip()})
        managed = self.root / ".dolt-data" / "config.yaml"
        dropped: tuple[str, ...] = DOLT_KEYS
        if environ.get("GT_DOLT_IGNORE_CONFIG") != "1" and managed.is_file():
            endpoint, dropped = {key: value for key, value in _listener(managed).items() if value}, DOLT_KEYS + BEADS_DOLT_KEYS
        return {key: value for key, value in environ.items() if key not in dropped} | endpoint

    def rig_root(self, rig: str) -> Path:
        """A rig's canonical clone: ``<rig>/mayor/rig`` when Gas Town made one, else the rig directory."""
        clone = self.root / rig / "mayor" / "rig"
        return clone if clone.is_dir() else self.root / rig

    def rig_details(self) -> list[dict[str, object]]:
        """Each rig as ``gt rig list --json`` shows it, plus ``repo_path`` (its canonical clone), gtui's extension."""
        registry = self.root / "mayor" / "rigs.json"
        entries = _registry_entries(registry) if registry.exists() else {}
        details = []
        for rig in self.rigs():
            entry = entries.get(rig)
            if not isinstance(entry, dict):
                entry = {}
            beads = entry.get("beads")
            if not isinstance(beads, dict):
                beads = {}
            details.append({
                "name": rig, "beads_prefix": beads.get("prefix") or "gt",
                "status": "operational" if (self.root / rig).is_dir() else "error",
                "witness": "stopped", "refinery": "stopped",
                "polecats": _count_dirs(self.root / rig / "polecats"), "crew": _count_dirs(self.root / rig / "crew"),
                "repo_path": str(self.rig_root(rig)),
            })
        return details

    def rigs(self) -> list[str]:
        """Rig names: from ``mayor/rigs.json`` when it exists, else by looking."""
        registry = self.root / "mayor" / "rigs.json"
        if registry.exists():
            return _rigs_from_registry(registry)
        return sorted(
            child.name
            for child in self.root.iterdir()
            if child.is_dir() and may_be_rig(child.name) and _holds_plugins(child)
        )


TOWN_ENV = ("GT_TOWN_ROOT", "GT_ROOT", "GT_TOWN")
DOLT_KEYS = ("GT_DOLT_HOST", "GT_DOLT_PORT")
BEADS_DOLT_KEYS = ("BEADS_DOLT_SERVER_HOST", "BEADS_DOLT_SERVER_PORT", "BEADS_DOLT_PORT")  # bd's, derived from Gas Town's


def _listener(config: Path) -> dict[str, str]:
    """The host and port of the ``listener:`` block of a Dolt ``config.yaml``, read line by line as Gas Town reads it
    (``gt dolt start`` writes it; a port must be a number, and above 0)."""
    try:
        lines = config.read_text(encoding="utf-8", errors="replace").split("\n")
    except OSError:
        return {}
    found: dict[str, str] = {}
    inside = False
    for line in lines:
        trimmed = line.strip()
        if trimmed == "listener:":
            inside = True
            continue
        if not inside:
            continue
        key, _, value = trimmed.partition(":")
        host, port = value.strip().strip("\"'"), value.strip()
        if key == "host" and "GT_DOLT_HOST" not in found:
            found["GT_DOLT_HOST"] = host
        elif key == "port" and _go_int(port) and "GT_DOLT_PORT" not in found:
            found["GT_DOLT_PORT"] = str(int(port)) if int(port) > 0 else ""  # a port Gas Town sets only when above 0
        if line and line[0] not in " \t":
            inside = False
    return found


def _go_int(text: str) -> bool:
    """Whether Go's ``strconv.Atoi`` reads ``text``: one optional sign, then ASCII digits."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()


def _choose_root(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str],
                 cwd: Path | None) -> tuple[str | os.PathLike[str], str]:
    """The town root to use and where it came from (for the message when it does not exist)."""
    if explicit:
        return explicit, "--town"
    for name in TOWN_ENV:
        if environ.get(name):
            return environ[name], f"${name}"
    from gtcore.gascity.locate import ceilings, explicit_city

    city = explicit_city(environ)
    if city is not None:
        return city
    try:
        here = (Path(environ["GC_DIR"]) if cwd is None and environ.get("GC_DIR") else cwd or Path.cwd()).resolve()
    except OSError:  # the working directory was deleted under us
        return Path.home() / "gt", "default ~/gt"
    stops, cities = ceilings(environ), True
    for directory in (here, *here.parents):
        if (directory / "mayor" / "town.json").is_file() or (cities and (directory / "city.toml").is_file()):
            return directory, f"found above {here}"
        cities = cities and directory not in stops
    return Path.home() / "gt", "default ~/gt"


def may_be_rig(name: str) -> bool:
    """Dot-directories are skipped, and ``plugins`` is the town's own plugin directory:
    a town-level plugin that happens to be called ``plugins`` must not turn it into a rig."""
    return not name.startswith(".") and name != "plugins"


def _holds_plugins(directory: Path) -> bool:
    return (directory / "plugins").is_dir() or any(
        clone.is_dir() and not clone.parent.name.startswith(".") for clone in directory.glob("crew/*/plugins")
    )


def _json_object(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _count_dirs(directory: Path) -> int:
    try:
        return sum(1 for child in directory.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError:
        return 0


def _registry_entries(path: Path) -> dict[str, object]:
    """The ``rigs`` object of Gas Town's registry ({} when it is a list or unreadable: the names still come from :meth:`rigs`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    rigs = data.get("rigs", data) if isinstance(data, dict) else None
    return rigs if isinstance(rigs, dict) else {}


def _rigs_from_registry(path: Path) -> list[str]:
    """Read Gas Town's rig registry: an object whose keys, or whose ``rigs``, name the rigs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GtError(f"{path}: cannot read the rig list: {exc}") from None
    if isinstance(data, dict) and "rigs" in data:
        data = data["rigs"]
    if isinstance(data, dict):
        names = list(data)
    elif isinstance(data, list):
        names = [item.get("name") if isinstance(item, dict) else item for item in data]
    else:
        raise GtError(f"{path}: the rig list must be a JSON object or list, not {type(data).__name__}")
    bad = [name for name in names if not isinstance(name, str) or not name or "/" in name or name.startswith(".")]
    if bad:
        raise GtError(f"{path}: {bad[0]!r} is not a rig name")
    return list(dict.fromkeys(names))  # a rig listed twice would otherwise shadow its own plugins
