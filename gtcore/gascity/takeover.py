"""Taking over from Gas City's controller: never twice, never from zero.

- **Never from zero.**  An order gtui has never run may well have run under
  gc's controller a minute ago: before its gate is decided, its last run is
  imported from Gas City as a receipt (a run recorded closed, which cooldowns
  and cron count) at the time gc started it: ``gc order history NAME
  [--rig R] --limit 1 --json`` (gc's tracking beads), else the newest
  ``order.fired`` event of ``.gc/events.jsonl``.  An event order's cursor
  comes along as the receipt's ``seq:N`` label: the ``seq`` of that
  ``order.fired``, else the log's head (what came before gtui took over
  is taken as handled).  Each order is asked once (kept in
  ``<town>/.gtui/gascity/imported.json``; asked again when gc appears).
- **Gas City's tools still see the runs.**  The kennel writes ``order.fired``
  when a run starts and ``order.completed`` or ``order.failed`` when it ends,
  with ``gc event emit`` as gc's dispatcher records them (actor
  ``controller``, subject the scoped name, no payload, the failure in the
  message), on a thread of their own: a slow gc never holds the dogs.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from gtcore.core.beads import Report
from gtcore.core.events import RunFinished, RunStarted
from gtcore.core.records import TYPE_CHECKING
from gtcore.core.state_files import save_json
from gtcore.gascity import eventlog
from gtcore.gascity.gclient import GcFailure, emit_event, order_history
from gtcore.gascity.triggers import exit_error
from gtcore.plugins.spec import Plugin

if TYPE_CHECKING:
    from gtcore.core.events import EventBus
    from gtcore.gascity.mapping import CityScan
    from gtcore.storage.contract import Ledger

ACTOR = "gascity"  # who recorded an imported run (the receipt's actor)


def import_last_runs(ledger: Ledger, plugins: Iterable[Plugin], city: CityScan, state_file: Path, now: float) -> list[str]:
    """Import the last Gas City run of every order gtui has never run (see the module's docstring); what was imported, in words."""
    from gtcore.storage.contract import Receipt

    asked = _load(state_file)
    summary = ledger.plugin_summary()
    todo = [plugin for plugin in plugins if plugin.order is not None and plugin.name not in summary
            and (plugin.name not in asked or (city.gc is not None and not asked[plugin.name]))]
    if not todo:
        return []
    fired = eventlog.latest_fired(Path(todo[0].order.city), {plugin.order.scoped for plugin in todo})
    imported = []
    for plugin in todo:
        found = _last_run(plugin, city.gc, fired, city.events.head)
        if found is not None:
            at, how, labels = found
            ledger.record_receipt(Receipt(plugin.name, plugin.rig, Report("success", f"imported from Gas City: {how}", labels=labels),
                                          ACTOR, at))
            imported.append(f"{plugin.name}: {how}")
        asked[plugin.name] = city.gc is not None
    save_json(state_file, asked)
    return imported


def _last_run(plugin: Plugin, gc: str | None, fired: dict[str, tuple[int, str]], head: int) -> tuple[float, str, tuple[str, ...]] | None:
    """When Gas City last started the order, how gtui knows, and the receipt's labels (an event order's cursor)."""
    context = plugin.order
    order = context.order
    at, how = None, ""
    if gc is not None:
        entries = order_history(gc, Path(context.city), order.name, order.rig)
        if not isinstance(entries, GcFailure) and entries:
            at = _time(str(entries[0].get("created_at") or entries[0].get("executed") or ""))
            how = f"gc order history: tracking bead {entries[0].get('bead_id', '?')}"
    seq_ts = fired.get(order.scoped)
    if at is None and seq_ts is not None:
        at, how = _time(seq_ts[1]), f".gc/events.jsonl: order.fired seq {seq_ts[0]}"
    if at is None:
        return None
    labels: tuple[str, ...] = ()
    if order.trigger == "event":
        labels = (f"seq:{seq_ts[0] if seq_ts else head}",)
        how += f"; event cursor seq {seq_ts[0]} (its order.fired)" if seq_ts else f"; event cursor seq {head} (the log's head)"
    return at, how, labels


def _time(text: str) -> float | None:
    """An RFC 3339 time as gc writes it (nanoseconds, ``Z`` or an offset): Python reads at most microseconds."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))  # the fraction's digits, not the offset's after them
        text = f"{head}.{tail[:min(digits, 6)]}{tail[digits:]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _load(path: Path) -> dict[str, bool]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(key): bool(value) for key, value in data.items()} if isinstance(data, dict) else {}


class OrderEvents:
    """Writes ``order.fired`` / ``order.completed`` / ``order.failed`` back to Gas City as the kennel's order runs start and end."""

    def __init__(self, lookup: Callable[[str], Plugin | None]) -> None:
        self.lookup = lookup
        self._queue: SimpleQueue[tuple[str, Path, str, str, str]] = SimpleQueue()
        self._pending = 0
        self._settled = threading.Condition()
        self._thread: threading.Thread | None = None

    def attach(self, bus: EventBus) -> OrderEvents:
        bus.subscribe(self.heard, RunStarted, RunFinished)
        return self

    def heard(self, event: Any) -> None:
        """On the dogs' loop: note what to write, never wait for gc."""
        plugin = self.lookup(event.plugin)
        if plugin is None or plugin.order is None or plugin.order.gc is None:
            return
        context = plugin.order
        if isinstance(event, RunStarted):
            self._put((context.gc, Path(context.city), "order.fired", context.scoped, ""))
        elif event.result in ("success", "warning", "check-only"):
            self._put((context.gc, Path(context.city), "order.completed", context.scoped, ""))
        elif event.result in ("failure", "timeout", "abandoned"):
            self._put((context.gc, Path(context.city), "order.failed", context.scoped, failure_message(event)))

    def _put(self, item: tuple[str, Path, str, str, str]) -> None:
        with self._settled:
            self._pending += 1
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="gascity-events", daemon=True)
                self._thread.start()

    def _write(self) -> None:
        """The writer thread: one gc call at a time, in the order the runs said them (fired before completed)."""
        while True:
            gc, city, kind, subject, message = self._queue.get()
            try:
                failed = emit_event(gc, city, kind, subject, message)
                if failed is not None:
                    sys.stderr.write(f"gtui kennel: {kind} for {subject} not written back to Gas City: {failed}\n")
            finally:
                with self._settled:
                    self._pending -= 1
                    self._settled.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was noted is written (a kennel closing); False when gc did not finish in time."""
        with self._settled:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)


def failure_message(event: RunFinished) -> str:
    """The ``message`` of ``order.failed``: gc's words for how a run failed (``exit status 2``, ``context deadline exceeded``),
    ``seq=<n>: `` first for an event order, as gc's dispatcher writes it."""
    if event.result == "timeout":
        words = "context deadline exceeded"
    elif event.exit_code is not None and event.result == "failure":
        words = exit_error(event.exit_code)
    else:
        words = event.reason or event.result
    labels = getattr(event.run, "labels", ()) or ()
    seq = next((label[4:] for label in labels if label.startswith("seq:")), None)
    return f"seq={seq}: {words}" if seq else words
