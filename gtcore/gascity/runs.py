"""What a dog runs for an order, in which environment, and what a patrol looks up for an order's gate.

- ``exec``: ``sh -c EXEC`` in the city root (a rig's instance: the rig's
  path), with Gas City's environment (:mod:`gtcore.gascity.env`) and gtui's
  run variables; judged by its exit status alone, as gc judges it.
- ``formula``: ``gc order run NAME [--rig R] --json`` through
  :mod:`gtcore.gascity.formula`, which records the wisp gc made on the run.
- A condition's check: ``sh -c CHECK`` in the same place and environment.
- An event order's count: its cursor is the highest ``seq:N`` label of its
  newest runs (each run is claimed with the log's ``seq`` at the scan that
  opened it, as gc stamps its tracking bead), counted against what the scan
  read of ``.gc/events.jsonl``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from gtcore.core.records import TYPE_CHECKING
from gtcore.gascity.env import environment
from gtcore.gascity.orderfile import go_quote, missing_params
from gtcore.gascity.triggers import EventCount
from gtcore.plugins.spec import Plugin

if TYPE_CHECKING:
    from gtcore.gascity.eventlog import Snapshot
    from gtcore.storage.contract import Ledger

RUN_KEYS = ("GT_TOWN", "GT_PLUGIN", "GT_RUN_ID", "GT_DOG", "GTUI_RUN_TOKEN")  # gtui's own variables an order's run carries
CURSOR_RUNS = 32  # how many of an event order's newest runs its cursor is read from


def command(plugin: Plugin) -> tuple[list[str] | None, None, str]:
    """The run's argv (stdin: none), or None and why nothing runs (a formula without gc, params gtui cannot pass)."""
    context = plugin.order
    order = context.order
    missing = missing_params(order)
    if missing:
        return None, None, f"order {go_quote(order.scoped)}: missing required param(s): {', '.join(missing)} (gtui passes none)"
    if order.exec:
        return ["sh", "-c", order.exec], None, ""
    if context.gc is None:
        return None, None, "formula order: gc is not on PATH (gtui runs formulas through gc order run)"
    rig = ["--rig", order.rig] if order.rig else []
    return [sys.executable, "-m", "gtcore.gascity.formula", context.gc, context.city, order.name, *rig], None, ""


def run_environment(plugin: Plugin, town_root: Path, own: Mapping[str, str]) -> dict[bytes, bytes]:
    """A run's environment: the kennel's, as gc's controller hands its own to an order, plus gtui's run variables."""
    context = plugin.order
    env = environment(context.order, Path(context.city), context.scope_root, context.prefix, os.environ,
                      str(town_root / ".gtui" / "bin"), {key: own[key] for key in RUN_KEYS if key in own})
    return {os.fsencode(key): os.fsencode(value) for key, value in env.items()}


def check_command(plugin: Plugin, town_root: Path, token: str) -> tuple[list[str], str, dict[str, str]]:
    """A condition order's check: argv, working directory and environment (gc's ``checkCondition``)."""
    from gtcore.dogs import processes

    context = plugin.order
    env = environment(context.order, Path(context.city), context.scope_root, context.prefix, os.environ,
                      str(town_root / ".gtui" / "bin"), {"GT_TOWN": str(town_root), "GT_PLUGIN": plugin.name, processes.RUN_TOKEN: token})
    return ["sh", "-c", context.order.check], context.scope_root, env


def event_counts(plugins: Iterable[Plugin], snapshot: Snapshot, ledger: Ledger) -> dict[str, EventCount]:
    """Each event order's count after its cursor, by key."""
    counts = {}
    for plugin in plugins:
        cursor = cursor_of(ledger, plugin.name)
        counts[plugin.name] = EventCount(snapshot.events_after(plugin.order.order.on, cursor), cursor)
    return counts


def cursor_of(ledger: Ledger, key: str) -> int:
    """gc's ``bdCursor``: the highest ``seq:N`` label among the order's newest runs (0: it never fired)."""
    best = 0
    for run in ledger.runs(key, limit=CURSOR_RUNS):
        for label in run.labels:
            if label.startswith("seq:") and label[4:].isdigit():
                best = max(best, int(label[4:]))
    return best
