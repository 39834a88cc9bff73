"""A Gas City city as gtui reads it: where it is, its ``city.toml`` (and ``pack.toml``, ``.gc/site.toml``), its rigs.

Only what orders need is read: ``[workspace]`` (name, timezone, suspension),
``[[rigs]]`` (name, path, formulas_dir, includes, imports, suspension),
``[imports.*]`` (of ``city.toml`` and the city's own ``pack.toml``, the
former winning a binding both name), ``[pack] includes``, ``[orders]``
(skip, max_timeout, overrides) and the site bindings of rig paths.  Keys
gtui does not need are left alone, as Gas City leaves unknown keys; a key
it needs with the wrong type is an error naming the file and the key, never
a guess.  Sources: ``internal/config/config.go``, ``site_binding.go``,
``cmd/gc/city_discovery.go``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtcore.core.errors import GtError, brief
from gtcore.gascity import godur
from gtcore.gascity.locate import CITY_FILE

PACK_FILE = "pack.toml"
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class CityError(GtError):
    """A city file gtui cannot use: the file, the line when known, and why."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        super().__init__(f"{path}{f':{line}' if line else ''}: {reason}")
        self.path, self.reason, self.line = path, reason, line


@dataclass(frozen=True)
class Import:
    """One ``[imports.<binding>]`` table: where the pack is and whether its own imports come along."""

    binding: str
    source: str
    transitive: bool = True


@dataclass(frozen=True)
class Rig:
    """A ``[[rigs]]`` entry with its path bound (``.gc/site.toml`` first, then ``city.toml``'s legacy ``path``)."""

    name: str
    path: str = ""  # absolute, or "" when the rig has no path binding
    prefix: str = ""
    formulas_dir: str = ""  # absolute, or ""
    includes: tuple[str, ...] = ()
    imports: tuple[Import, ...] = ()
    suspended: bool = False


@dataclass(frozen=True)
class Override:
    """One ``[[orders.overrides]]`` entry: only the keys it sets (``gate`` read as ``trigger``)."""

    index: int
    name: str
    rig: str
    fields: Mapping[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class City:
    """What gtui reads of one city (see the module's docstring)."""

    root: Path
    name: str
    prefix: str = ""  # the city's own bead prefix (GC_BEADS_PREFIX of its city-level orders)
    timezone: str = ""
    suspended: bool = False
    rigs: tuple[Rig, ...] = ()
    imports: tuple[Import, ...] = ()  # sorted by binding, as gc processes them
    includes: tuple[str, ...] = ()  # [pack] includes of the city's pack.toml, then [workspace] includes
    skip: frozenset[str] = frozenset()
    max_timeout: int = 0  # nanoseconds; 0: uncapped
    overrides: tuple[Override, ...] = ()
    warnings: tuple[str, ...] = ()
    fragments: tuple[str, ...] = field(default=())  # include = [...] config fragments (not read by gtui)

    @property
    def file(self) -> Path:
        return self.root / CITY_FILE

    def rig(self, name: str) -> Rig | None:
        return next((rig for rig in self.rigs if rig.name == name), None)


# -- reading the files ----------------------------------------------------------------------------


def load_city(root: Path, environ: Mapping[str, str] | None = None) -> City:
    """Read the city at ``root``; :class:`CityError` when one of its files cannot be used."""
    env = os.environ if environ is None else environ
    data = read_toml(root / CITY_FILE)
    pack = read_toml(root / PACK_FILE) if (root / PACK_FILE).is_file() else {}
    site = read_toml(root / ".gc" / "site.toml") if (root / ".gc" / "site.toml").is_file() else {}
    reader = _Reader(root / CITY_FILE, data)
    workspace = reader.table("workspace")
    imports = {**_imports(_Reader(root / PACK_FILE, pack), "imports", root), **_imports(reader, "imports", root)}
    orders = reader.table("orders")
    warnings = []
    max_timeout = 0
    text = reader.string(orders, "max_timeout", "orders")
    if text:
        try:
            max_timeout = godur.parse(text)
        except godur.GoDurationError as exc:
            warnings.append(f"{root / CITY_FILE}: [orders] max_timeout {godur.quote(text)}: {exc} (uncapped, as gc reads it)")
    pack_meta = _Reader(root / PACK_FILE, pack).table("pack")
    name = _site_string(site, "workspace_name", root) or reader.string(workspace, "name", "workspace") or root.name
    return City(
        root=root,
        name=name,
        prefix=_site_string(site, "workspace_prefix", root) or reader.string(workspace, "prefix", "workspace") or derive_prefix(name),
        timezone=reader.string(workspace, "timezone", "workspace"),
        suspended=_suspended(root, reader, workspace, env),
        rigs=tuple(_rigs(reader, root, _site_rigs(root, site))),
        imports=tuple(imports[binding] for binding in sorted(imports)),
        includes=(*_Reader(root / PACK_FILE, pack).strings(pack_meta, "includes", "pack"),
                  *reader.strings(workspace, "includes", "workspace")),
        skip=frozenset(reader.strings(orders, "skip", "orders")),
        max_timeout=max_timeout,
        overrides=tuple(_overrides(reader, orders)),
        warnings=tuple(warnings),
        fragments=tuple(reader.strings(data, "include", "")),
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a table; :class:`CityError` (with the line) when it cannot be read or parsed."""
    import re
    import tomllib

    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CityError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise CityError(path, f"is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CityError(path, f"is not valid UTF-8 (byte offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise CityError(path, f"invalid TOML: {reason}", int(found.group(1)) if found else None) from None
    except (RecursionError, ValueError) as exc:
        raise CityError(path, f"invalid TOML: {brief(exc, 80)}") from None


class _Reader:
    """Typed access to one TOML document: a value of the wrong type is a :class:`CityError` naming the key."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def _bad(self, where: str, expected: str, value: object) -> CityError:
        return CityError(self.path, f"{where} must be {expected}, not {brief(value)}")

    def table(self, key: str, parent: Mapping[str, Any] | None = None, where: str = "") -> dict[str, Any]:
        value = (self.data if parent is None else parent).get(key, {})
        if not isinstance(value, dict):
            raise self._bad(f"[{where or key}]", "a table", value)
        return value

    def string(self, table: Mapping[str, Any], key: str, section: str) -> str:
        value = table.get(key, "")
        if not isinstance(value, str):
            raise self._bad(_where(section, key), "a string", value)
        return value

    def boolean(self, table: Mapping[str, Any], key: str, section: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self._bad(_where(section, key), "true or false", value)
        return value

    def strings(self, table: Mapping[str, Any], key: str, section: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._bad(_where(section, key), "a list of strings", value)
        return value

    def tables(self, table: Mapping[str, Any], key: str, section: str) -> list[dict[str, Any]]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self._bad(_where(section, key), "an array of tables", value)
        return value


def _where(section: str, key: str) -> str:
    return f"[{section}] {key}" if section else key


def _imports(reader: _Reader, key: str, root: Path, parent: Mapping[str, Any] | None = None, section: str = "") -> dict[str, Import]:
    found = {}
    for binding, table in reader.table(key, parent, section or key).items():
        where = f"{section or key}.{binding}"
        if not isinstance(table, dict):
            raise CityError(reader.path, f"[{where}] must be a table, not {brief(table)}")
        source = reader.string(table, "source", where)
        if not source:
            raise CityError(reader.path, f"[{where}] source is required")
        transitive = table.get("transitive", True)
        if not isinstance(transitive, bool):
            raise CityError(reader.path, f"[{where}] transitive must be true or false, not {brief(transitive)}")
        found[binding] = Import(binding, source, transitive)
    return found


def _site_string(site: dict[str, Any], key: str, root: Path) -> str:
    value = site.get(key, "")
    if not isinstance(value, str):
        raise CityError(root / ".gc" / "site.toml", f"{key} must be a string, not {brief(value)}")
    return value.strip()


def _site_rigs(root: Path, site: dict[str, Any]) -> dict[str, str]:
    """Rig path bindings of ``.gc/site.toml`` (``[[rig]] name, path``), by rig name."""
    reader = _Reader(root / ".gc" / "site.toml", site)
    bindings = {}
    for entry in reader.tables(site, "rig", ""):
        name, path = reader.string(entry, "name", "rig"), reader.string(entry, "path", "rig")
        if name and path:
            bindings[name] = path
    return bindings


def _rigs(reader: _Reader, root: Path, bound: dict[str, str]) -> list[Rig]:
    rigs = []
    for index, entry in enumerate(reader.tables(reader.data, "rigs", "")):
        where = f"rigs[{index}]"
        name = reader.string(entry, "name", where)
        if not name:
            raise CityError(reader.path, f"{where}: name is required")
        path = bound.get(name) or reader.string(entry, "path", where)
        formulas = reader.string(entry, "formulas_dir", where)
        rigs.append(Rig(
            name=name,
            path=str(resolve_path(path, root, root)) if path else "",
            prefix=reader.string(entry, "prefix", where) or derive_prefix(name),
            formulas_dir=str(resolve_path(formulas, root, root)) if formulas else "",
            includes=tuple(reader.strings(entry, "includes", where)),
            imports=tuple(sorted(_imports(reader, "imports", root, entry, f"{where}.imports").values(), key=lambda item: item.binding)),
            suspended=reader.boolean(entry, "suspended", where) or reader.boolean(entry, "suspended_on_start", where),
        ))
    return rigs


def _overrides(reader: _Reader, orders: dict[str, Any]) -> list[Override]:
    found = []
    strings = ("rig", "trigger", "gate", "interval", "schedule", "check", "on", "pool", "timeout", "check_timeout")
    for index, entry in enumerate(reader.tables(orders, "overrides", "orders")):
        where = f"orders.overrides[{index}]"
        fields: dict[str, Any] = {}
        for key in strings:
            if key in entry:
                fields[key] = reader.string(entry, key, where)
        for key in ("enabled", "idempotent"):
            if key in entry:
                fields[key] = reader.boolean(entry, key, where)
        env = entry.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(value, str) for value in env.values()):
            raise CityError(reader.path, f"{where} env must be a table of strings, not {brief(env)}")
        if env:
            fields["env"] = dict(env)
        if "trigger" not in fields and "gate" in fields:
            fields["trigger"] = fields["gate"]
        fields.pop("gate", None)
        name = reader.string(entry, "name", where)
        found.append(Override(index, name, str(fields.pop("rig", "")), fields, _override_line(reader.path, index)))
    return found


def _override_line(path: Path, index: int) -> int | None:
    """The line of the ``index``-th ``[[orders.overrides]]`` header, for the message of a failing override."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    seen = -1
    for number, text in enumerate(lines, start=1):
        if text.strip().replace(" ", "") == "[[orders.overrides]]":
            seen += 1
            if seen == index:
                return number
    return None


def _suspended(root: Path, reader: _Reader, workspace: dict[str, Any], environ: Mapping[str, str]) -> bool:
    """The city's suspension as gc's dispatcher reads it: ``GC_SUSPENDED=1``, the runtime state file, else city.toml."""
    if environ.get("GC_SUSPENDED") == "1":
        return True
    state = _runtime_state(root).get("city")
    if isinstance(state, dict) and isinstance(state.get("suspended"), bool):
        return state["suspended"]
    return reader.boolean(workspace, "suspended_on_start", "workspace") or reader.boolean(workspace, "suspended", "workspace")


def suspended_rigs(root: Path) -> set[str]:
    """Rigs the runtime state (``.gc/runtime/suspension-state.json``) says are suspended now."""
    rigs = _runtime_state(root).get("rigs")
    if not isinstance(rigs, dict):
        return set()
    return {name for name, state in rigs.items() if isinstance(state, dict) and state.get("suspended") is True}


def _runtime_state(root: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads((root / ".gc" / "runtime" / "suspension-state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_path(value: str, declared_in: Path, city_root: Path) -> Path:
    """A local path as gc resolves it (``compose.go:resolveConfigPath``): ``//x`` from the city root, relative from
    where it was declared, absolute as is."""
    if value.startswith("//"):
        return Path(os.path.normpath(city_root / value[2:]))
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else declared_in / path))  # Go's filepath.Join cleans


REMOTE_PREFIXES = ("git@", "ssh://", "https://", "http://", "file://", "github.com/")


def is_remote(source: str) -> bool:
    """A source gc fetches (``remotesource.IsRemote``): gtui reads those packs only through ``gc order list``."""
    return source.startswith(REMOTE_PREFIXES)


def derive_prefix(name: str) -> str:
    """``DeriveBeadsPrefix``: a rig's (or city's) bead prefix from its name (``my-frontend`` → ``mf``)."""
    trimmed = name.removesuffix("-py").removesuffix("-go")
    parts = [part for part in trimmed.replace("_", "-").split("-") if part]
    if len(parts) == 1:
        parts = _split_compound(parts[0])
    if len(parts) >= 2:
        return "".join(part[0] for part in parts).lower()
    return trimmed.lower() if len(trimmed.encode()) <= 3 else trimmed.encode()[:2].decode("utf-8", "replace").lower()


def _split_compound(word: str) -> list[str]:
    """``splitCompoundWord``: ``myFrontend`` → ``my``, ``Frontend``."""
    parts, start = [], 0
    for index in range(1, len(word)):
        if word[index].isupper() and not word[index - 1].isupper():
            parts.append(word[start:index])
            start = index
    parts.append(word[start:])
    return parts if len(parts) > 1 else [word]
