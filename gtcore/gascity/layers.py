"""Which orders a city has: the layers gc scans, lowest first, a higher layer's file replacing a lower one's whole.

City layers: every pack directory the city imports (``[pack] includes`` of
its ``pack.toml`` and ``[workspace] includes``, then ``[imports.*]`` by
binding name, each pack's own includes and imports before it), then the
city's own ``orders/``, which wins.  Then each rig: its packs (``includes``,
then ``[rigs.imports.*]``) and the ``orders/`` beside its ``formulas_dir``;
an order found there is one instance per rig (``name:rig:<rig>``) unless it
says ``scope = "city"`` (registered once, the first rig by name winning,
never over a city order of that name).  Then ``[orders] skip`` (and each
order's ``skip_aliases``), file-level ``enabled = false``, the
``[workspace] timezone`` stamped on orders without ``tz``, the
``[[orders.overrides]]`` and the validation.  Source:
``internal/orderdiscovery/discovery.go``, ``internal/orders/scanner.go``,
``discovery.go``, ``override.go``, ``internal/config/pack.go``.

Where gtui differs on purpose (docs/gascity.md): a broken file, a legacy
directory layout, a failing override or a bad ``[workspace] timezone`` cost
the orders they touch, each listed with its file and reason, never the whole
city; a remote pack is read through ``gc order list --json`` only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gtcore.core.records import Record
from gtcore.gascity.city import CITY_FILE, PACK_FILE, City, CityError, Import, Override, Rig, is_remote, read_toml, resolve_path
from gtcore.gascity.orderfile import Order, OrderFileError, go_quote, order_name, parse_order, validate, zone_error

LEGACY_MESSAGE = ("unsupported PackV1 order path {path}; {hint} (gc refuses to load a city with PackV1 order directories: migrate all"
                  " legacy order directories to flat orders/<name>.toml files)")


class Root(Record):
    """One order root: an ``orders`` directory and the formula layer it belongs to (``PACK_DIR`` is its parent)."""

    dir: str
    formula_layer: str


class Invalid(Record):
    """An order (or a city setting about orders) gtui cannot run, with the file, the line when known, the rig and why."""

    path: str
    reason: str
    line: int | None = None
    rig: str = ""


@dataclass
class Scan:
    """The resolved orders of a city (override-disabled ones included, as ``gc order show`` sees them) and what went wrong."""

    orders: list[Order] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # every orders directory looked at: what a face watches
    remote: list[str] = field(default_factory=list)  # remote packs this scan could not read (gc order list can)


def scan_city(city: City) -> Scan:
    """The city's orders from its own files and local packs (``ScanAll`` without gc)."""
    scan = Scan(warnings=list(city.warnings))
    if city.fragments:
        scan.warnings.append(f"{city.file}: include = [...] fragments are not read by gtui (gc order list --json, with gc on PATH,"
                             " resolves them)")
    city_roots = [_pack_root(pack) for pack in _pack_dirs(city, city.includes, city.imports, city.root, scan)]
    city_roots.append(Root(str(city.root / "orders"), str(city.root / "formulas")))
    found = _scan_roots(_unique(city_roots), city, "", scan)
    seen = {order.name for order in found}
    promoted, instances = [], []
    for rig in sorted(city.rigs, key=lambda rig: rig.name):
        roots = _rig_roots(city, rig, scan)
        for order in _scan_roots(roots, city, rig.name, scan) if roots else []:
            if order.scope == "city":
                if order.name not in seen:
                    seen.add(order.name)
                    promoted.append(order)
            else:
                instances.append(order._replace(rig=rig.name))
    scan.orders = finish(city, [*found, *promoted, *instances], scan)
    return scan


def finish(city: City, orders: list[Order], scan: Scan, *, overrides: bool = True) -> list[Order]:
    """The steps after layering: the city's time zone stamped, the overrides applied (unless gc did), every order validated."""
    orders = _stamp_zone(city, orders, scan)
    if overrides:
        orders = apply_overrides(orders, city.overrides, scan, city.file)
    valid = []
    for order in orders:
        problem = validate(order)
        if problem:
            scan.invalid.append(Invalid(order.source, problem, None, order.rig))
        else:
            valid.append(order)
    return valid


def _scan_roots(roots: list[Root], city: City, rig: str, scan: Scan) -> list[Order]:
    """``ScanRoots``: lowest root first, a name's higher file replacing the lower whole; then enabled and skip.

    A file gc would refuse to load still takes its name (so a broken mask
    never lets the order it meant to hide run) and is listed as invalid.
    """
    found: dict[str, Order | None] = {}
    for root in roots:
        scan.roots.append(root.dir)
        scan.invalid += [Invalid(path, LEGACY_MESSAGE.format(path=path, hint=hint), rig=rig) for path, hint in _legacy(root)]
        for name, path in _flat_files(Path(root.dir), scan, rig):
            parsed = parse_order(path, name, root.formula_layer)
            if isinstance(parsed, OrderFileError):
                scan.invalid.append(Invalid(parsed.path, parsed.reason, parsed.line, rig))
                found[name] = None
            else:
                scan.warnings += [f"{parsed.source}: {warning}" for warning in parsed.warnings]
                found[name] = parsed
    return [order for order in found.values() if order is not None and order.is_enabled and not skipped(order, city.skip)]


def skipped(order: Order, skip: frozenset[str]) -> bool:
    """``[orders] skip`` names the order or one of its ``skip_aliases`` (bare names, every rig alike)."""
    return order.name in skip or any(alias in skip for alias in order.skip_aliases)


def _flat_files(directory: Path, scan: Scan, rig: str) -> list[tuple[str, Path]]:
    """``discoverFlatFiles``: every non-directory ``*.toml`` by name, ``x.toml`` winning over ``x.order.toml``."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        scan.invalid.append(Invalid(str(directory), f"reading order root {directory}: {exc.strerror or exc}", rig=rig))
        return []
    chosen: dict[str, str] = {}
    for entry in entries:
        name = order_name(entry.name)
        if name is None or _is_dir(entry):
            continue
        if name not in chosen or entry.name == name + ".toml":
            chosen[name] = entry.name
    return [(name, directory / file_name) for name, file_name in chosen.items()]


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _legacy(root: Root) -> list[tuple[str, str]]:
    """PackV1 layouts gc refuses: ``orders/<n>/order.toml`` and ``formulas/orders/<n>/order.toml``."""
    found = _legacy_in(Path(root.dir), "rename to orders/{}.toml")
    legacy = Path(root.formula_layer) / "orders" if root.formula_layer else None
    if legacy is not None and os.path.normpath(legacy) != os.path.normpath(root.dir):
        found += _legacy_in(legacy, "move to orders/{}.toml")
    return found


def _legacy_in(directory: Path, hint: str) -> list[tuple[str, str]]:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return []
    return [(str(Path(entry.path) / "order.toml"), hint.format(entry.name)) for entry in entries
            if _is_dir(entry) and (Path(entry.path) / "order.toml").is_file()]


def _pack_root(pack: Path) -> Root:
    return Root(str(pack / "orders"), str(pack / "formulas"))


def _unique(roots: list[Root]) -> list[Root]:
    seen, kept = set(), []
    for root in roots:
        key = (os.path.normpath(root.dir), os.path.normpath(root.formula_layer))
        if key not in seen:
            seen.add(key)
            kept.append(root)
    return kept


def _rig_roots(city: City, rig: Rig, scan: Scan) -> list[Root]:
    """A rig's own roots: its packs, then the ``orders/`` beside its ``formulas_dir`` (``rigOrderRoots``)."""
    roots = [_pack_root(pack) for pack in _pack_dirs(city, rig.includes, rig.imports, city.root, scan)]
    if rig.formulas_dir:
        roots.append(Root(str(Path(rig.formulas_dir).parent / "orders"), rig.formulas_dir))
    return _unique(roots)


def _pack_dirs(city: City, includes: tuple[str, ...], imports: tuple[Import, ...], declared_in: Path, scan: Scan,
               seen: set[str] | None = None) -> list[Path]:
    """The pack directories of some includes and imports, each pack's own before it (``topoDirs``), first occurrence kept."""
    seen = set() if seen is None else seen
    found: list[Path] = []
    sources = [(source, True, f"include {source!r}") for source in includes]
    sources += [(item.source, item.transitive, f"[imports.{item.binding}] ({item.source})") for item in imports]
    for source, transitive, what in sources:
        if is_remote(source):
            scan.remote.append(f"{city.file}: {what} is a remote pack: gtui reads its orders through gc order list --json only"
                               " (gc is not on PATH or did not answer)")
            continue
        pack = resolve_path(source, declared_in, city.root)
        if not (pack / PACK_FILE).is_file() and not pack.is_dir():
            scan.warnings.append(f"{city.file}: {what}: {pack} does not exist")
            continue
        key = os.path.normpath(pack)
        if key in seen:
            continue
        seen.add(key)
        if transitive:
            found += _nested(city, pack, scan, seen)
        found.append(pack)
    return list(dict.fromkeys(found))


def _nested(city: City, pack: Path, scan: Scan, seen: set[str]) -> list[Path]:
    """A pack's own includes and imports (relative to the pack), as its ``pack.toml`` declares them."""
    if not (pack / PACK_FILE).is_file():
        return []
    try:
        data = read_toml(pack / PACK_FILE)
    except CityError as exc:
        scan.invalid.append(Invalid(str(exc.path), exc.reason, exc.line))
        return []
    meta = declared if isinstance(declared := data.get("pack"), dict) else {}
    includes = tuple(item for item in meta.get("includes", []) if isinstance(item, str))
    tables = found if isinstance(found := data.get("imports"), dict) else {}
    imports = tuple(Import(binding, table["source"], table.get("transitive", True) is not False)
                    for binding, table in sorted(tables.items()) if isinstance(table, dict) and isinstance(table.get("source"), str))
    return _pack_dirs(city, includes, imports, pack, scan, seen)


def _stamp_zone(city: City, orders: list[Order], scan: Scan) -> list[Order]:
    """``[workspace] timezone`` on every order without ``tz``; a zone Go cannot load costs the cron orders that would use it."""
    if not city.timezone:
        return orders
    problem = zone_error(city.timezone)
    if problem is None:
        return [order if order.tz else order._replace(tz=city.timezone) for order in orders]
    reason = f"[workspace] timezone {go_quote(city.timezone)}: {problem} (gc dispatches no order of the city while it is so)"
    scan.invalid += [Invalid(str(city.root / CITY_FILE), f"order {go_quote(order.scoped)}: {reason}", rig=order.rig)
                     for order in orders if order.trigger == "cron" and not order.tz]
    return [order for order in orders if order.trigger != "cron" or order.tz]


def apply_overrides(orders: list[Order], overrides: tuple[Override, ...], scan: Scan, file: Path) -> list[Order]:
    """``ApplyOverrides``: each override, in file order, changes every order of its name and rig; one that matches
    nothing is listed with gc's words (the others still apply: gtui does not stop at the first, as gc's CLI does)."""
    result = list(orders)
    for override in overrides:
        if not override.name:
            scan.invalid.append(Invalid(str(file), f"orders.overrides[{override.index}]: name is required", override.line))
            continue
        matched = [index for index, order in enumerate(result)
                   if order.name == override.name and (override.rig == "*" or override.rig == order.rig)]
        for index in matched:
            result[index] = _overridden(result[index], override)
        if not matched:
            scan.invalid.append(Invalid(str(file), _not_found(override, result), override.line))
    return result


def _overridden(order: Order, override: Override) -> Order:
    changes = {key: value for key, value in override.fields.items() if key != "env"}
    if override.fields.get("env"):
        changes["env"] = tuple(sorted({**dict(order.env), **override.fields["env"]}.items()))
    return order._replace(**changes)


def _not_found(override: Override, orders: list[Order]) -> str:
    where = f"orders.overrides[{override.index}]: order {go_quote(override.name)}"
    if override.rig == "*":
        return f'{where} not found (rig "*" matches no instances)'
    if override.rig:
        return f"{where} (rig {go_quote(override.rig)}) not found"
    rigs = sorted({order.rig for order in orders if order.name == override.name and order.rig})
    if not rigs:
        return f"{where} not found"
    count = "1 instance" if len(rigs) == 1 else f"{len(rigs)} instances"
    suggestions = ", ".join(f"rig = {go_quote(rig)}" for rig in rigs)
    return f'{where} not found at city scope ({count} rig-scoped); set {suggestions} to target a per-rig instance, or use rig = "*" to' \
           " target all instances"
