"""A city's orders as gtui's plugins: each resolved order a :class:`Plugin` (kind ``order``), each refused one an
:class:`InvalidPlugin`, so gates, patrol, kennel, runner, ledger, digest and the control room take them as they are.

The key (a plugin's name: what the ledger, pauses and commands go by) is the
order's name for a city's order and ``name@rig`` for a rig's instance of a
pack order, which gc calls ``name:rig:<rig>``; both parts must be names gtui
can key (lowercase letters, digits, ``.``, ``_``, ``-``).  The set comes from
``gc order list --json`` when gc is on PATH and answers (packs, imports,
locks, overrides as gc resolves them), else from the city's own and local
pack directories (:mod:`gtcore.gascity.layers`).  Severity,
``notify_on_failure`` and ``digest`` come from ``gtui.toml``
(``[orders.<name>]``), the order file having no such fields.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gtcore.core.durations import Duration
from gtcore.core.errors import Problem
from gtcore.core.records import Record
from gtcore.gascity import godur
from gtcore.gascity.city import City, CityError, load_city, suspended_rigs
from gtcore.gascity.eventlog import Snapshot, refresh
from gtcore.gascity.gclient import GcFailure, Listed, find_gc, order_list
from gtcore.gascity.layers import Invalid, Scan, finish, scan_city
from gtcore.gascity.orderfile import Order, OrderFileError, go_quote, parse_order
from gtcore.plugins.spec import NAME_PATTERN, Execution, Gate, InvalidPlugin, Plugin, Tracking
from gtcore.town.settings import OrderSettings

RIG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class OrderContext(Record):
    """What a run of an order needs beyond its gtui record: the order as gc resolved it, and where and how it runs."""

    order: Order
    city: str  # the city root
    scope_root: str  # the working directory: the city root, or the rig's path for a rig's instance
    prefix: str  # GC_BEADS_PREFIX: the city's or the rig's bead prefix
    gc: str | None  # the gc on PATH when the city was read (formula orders, events written back), or None
    head: int = 0  # an event order's cursor to be: the last seq of the city's event log read at this scan
    blocked: str = ""  # why gc would not dispatch it now (a suspended city or rig, a rig without a path, no gc for a formula)

    @property
    def scoped(self) -> str:
        return self.order.scoped

    def to_json(self) -> dict[str, object]:
        """What ``gtui plugin list/show --json`` says of an order beyond a plugin's fields (gc's names where gc has them)."""
        order = self.order
        return {"scoped_name": order.scoped, "type": "exec" if order.exec else "formula", "exec": order.exec or None,
                "formula": order.formula or None, "target": order.pool or None, "trigger": order.trigger, "scope": order.scope or None,
                "tz": order.tz or None, "source": order.source, "formula_layer": order.formula_layer or None, "work_dir": self.scope_root,
                "env": dict(order.env), "params": {name: {"required": required} for name, required in order.params},
                "blocked": self.blocked or None}


@dataclass
class CityScan:
    """A city's orders as gtui's plugins, what is wrong with the others, and what the scan read."""

    plugins: list[Plugin] = field(default_factory=list)
    invalid: list[InvalidPlugin] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    events: Snapshot = field(default_factory=lambda: Snapshot(0, {}))
    gc: str | None = None
    root: str = ""

    def problems(self) -> list[Problem]:
        """What the operator should know of the city as a whole: without gc, what gtui cannot do."""
        if self.gc is not None or not self.plugins:
            return []
        return [Problem(self.root, None, "gc is not on PATH: formula orders cannot run, Gas City's order history cannot be"
                        " imported (only its events log is read) and order.fired/completed/failed are not written back (docs/gascity.md)",
                        "warning")]


def key_of(name: str, rig: str) -> str:
    """gtui's key of an order: ``name``, or ``name@rig`` for one rig's instance."""
    return f"{name}@{rig}" if rig else name


def scan_orders(root: Path, state_dir: Path, settings: Mapping[str, OrderSettings], environ: Mapping[str, str] | None = None, *,
                writable: bool = True) -> CityScan:
    """Every order of the city at ``root`` (see the module's docstring); never raises for what the city's files hold.
    ``writable`` false (``--read-only``): what was read is not kept in ``state_dir`` (gc's answer, the events log's place)."""
    env = os.environ if environ is None else environ
    result = CityScan(gc=find_gc(env), root=str(root / "city.toml"))
    try:
        city = load_city(root, env)
    except CityError as exc:
        result.invalid.append(InvalidPlugin(exc.path, exc.reason, exc.line))
        return result
    orders, scan = _resolved(city, result.gc, state_dir, writable)
    result.warnings, result.roots = scan.warnings, scan.roots
    wanted = frozenset(order.on for order in orders if order.trigger == "event" and order.on)
    if wanted:
        result.events = refresh(root, state_dir / "gascity" / "events.json", wanted, keep=writable)
    blocked_rigs = suspended_rigs(root) | {rig.name for rig in city.rigs if rig.suspended}
    for order in orders:
        mapped = to_plugin(order, city, settings, result.gc, result.events.head, blocked_rigs)
        (result.plugins if isinstance(mapped, Plugin) else result.invalid).append(mapped)  # type: ignore[arg-type]
    result.invalid += [InvalidPlugin(Path(bad.path), bad.reason, bad.line, bad.rig or "town") for bad in scan.invalid]
    return result


def _resolved(city: City, gc: str | None, state_dir: Path, writable: bool) -> tuple[list[Order], Scan]:
    """The orders: gc's resolved set when gc answers, else the city's own reading (where a remote pack is said)."""
    own = scan_city(city)
    if gc is not None:
        listed = order_list(gc, city.root, own.roots, state_dir / "gascity" / "order-list.json", keep=writable)
        if not isinstance(listed, GcFailure):
            scan = Scan(invalid=list(own.invalid), warnings=own.warnings, roots=own.roots)
            return _from_list(listed, city, scan), scan
        own.warnings.append(f"{listed}; gtui read the city's own and local pack directories instead")
    own.warnings += own.remote
    return own.orders, own


def _from_list(listed: Listed, city: City, scan: Scan) -> list[Order]:
    """gc's resolved rows as orders: the fields its JSON leaves out (``tz``, ``scope``, ``params``, ``skip_aliases``, ...)
    read from each order's file, the fields it shows (overrides applied) taken as gc shows them."""
    orders = []
    for row in listed.orders:
        name, source, layer = str(row.get("name", "")), str(row.get("source", "")), str(row.get("formula_layer", ""))
        base = parse_order(Path(source), name, layer) if source else OrderFileError(source, "")
        if isinstance(base, OrderFileError):
            base = Order(name=name, source=source, formula_layer=layer)
        env = given if isinstance(given := row.get("env"), dict) else {}
        order = base._replace(
            rig=str(row.get("rig") or ""), description=str(row.get("description") or ""), formula=str(row.get("formula") or ""),
            exec=str(row.get("exec") or ""), trigger=str(row.get("trigger") or ""), interval=str(row.get("interval") or ""),
            schedule=str(row.get("schedule") or ""), check=str(row.get("check") or ""), on=str(row.get("on") or ""),
            pool=str(row.get("target") or ""), timeout=str(row.get("timeout") or ""), check_timeout=str(row.get("check_timeout") or ""),
            env=tuple(sorted((str(key), str(value)) for key, value in env.items())), enabled=row.get("enabled") is not False)
        orders.append(order)
    known = {bad.reason for bad in scan.invalid}
    scan.invalid += [Invalid(str(city.file), f"gc order list dropped it: {line}") for line in listed.dropped
                     if line.split(": ", 1)[-1] not in known]
    return finish(city, orders, scan, overrides=False)


def to_plugin(order: Order, city: City, settings: Mapping[str, OrderSettings], gc: str | None, head: int,
              suspended: set[str]) -> Plugin | InvalidPlugin:
    """One resolved order as gtui's plugin record, or why gtui cannot key it."""
    rig_word = order.rig or "town"
    if not NAME_PATTERN.match(order.name):
        return InvalidPlugin(Path(order.source), f"order name {go_quote(order.name)} cannot be a gtui key: name the file with lowercase"
                             " letters, digits, '.', '_' and '-', starting with a letter or digit", rig=rig_word)
    if order.rig and not RIG_PATTERN.match(order.rig):
        return InvalidPlugin(Path(order.source), f"rig name {go_quote(order.rig)} cannot be part of a gtui key (letters, digits, '.',"
                             " '_', '-')", rig=rig_word)
    key = key_of(order.name, order.rig)
    chosen = settings.get(key) or settings.get(order.name) or OrderSettings()
    scope_root, prefix, blocked = _target(order, city, gc, suspended)
    timeout = order.timeout_ns if city.max_timeout <= 0 else min(order.timeout_ns, city.max_timeout)
    context = OrderContext(order, str(city.root), scope_root, prefix, gc, head if order.trigger == "event" else 0, blocked)
    return Plugin(
        name=key, file=order.source, rig=rig_word, gate=_gate(order),
        execution=Execution(type="exec" if order.exec else "formula", timeout=_duration(timeout),
                            notify_on_failure=chosen.notify_on_failure, severity=chosen.severity),
        tracking=Tracking(labels=(f"seq:{head}",) if order.trigger == "event" else (), digest=chosen.digest),
        description=order.description, enabled=order.is_enabled, instructions=order.exec or f"formula {order.formula}",
        mtime=_mtime(order.source), warnings=order.warnings, order=context)


def _target(order: Order, city: City, gc: str | None, suspended: set[str]) -> tuple[str, str, str]:
    """Where the order runs, its bead prefix, and why gc would not dispatch it now ("" when it would)."""
    blocked = "city suspended (gc dispatches no order of a suspended city)" if city.suspended else ""
    if order.formula and gc is None:
        blocked = blocked or "formula order: gc is not on PATH (gtui runs formulas through gc order run)"
    if not order.rig:
        return str(city.root), city.prefix, blocked
    rig = city.rig(order.rig)
    if rig is None:
        return str(city.root), city.prefix, blocked or f"rig {go_quote(order.rig)} not found in {city.file}"
    if not rig.path:
        return str(city.root), rig.prefix, blocked or (f"rig {go_quote(rig.name)} is declared but has no path binding — run"
                                                       f" `gc rig add <dir> --name {rig.name}` to bind it before dispatching"
                                                       " rig-scoped orders")
    if rig.name in suspended:
        blocked = blocked or f"rig {rig.name} suspended"
    return rig.path, rig.prefix, blocked


def _gate(order: Order) -> Gate:
    kind = order.trigger
    interval = _duration(godur.parse(order.interval), order.interval) if kind == "cooldown" else None
    return Gate(type=kind, duration=interval, schedule=order.schedule if kind == "cron" else None,
                timezone=(order.tz or None) if kind == "cron" else None, check=order.check if kind == "condition" else None,
                check_timeout=_duration(order.check_timeout_ns, order.check_timeout or None), on=order.on if kind == "event" else None)


def _duration(nanoseconds: int, text: str | None = None) -> Duration:
    return Duration(text or godur.to_string(nanoseconds), nanoseconds / godur.SECOND)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
