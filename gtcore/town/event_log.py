"""Gas Town's event log, ``<town>/.events.jsonl``, as a source of town events for event gates.

Gas Town appends one JSON object a line (``{"ts": "2026-04-30T13:02:38Z",
"source": "gt", "type": "convoy.created", ...}``).  Each patrol reads what
was appended since it last looked (a cursor in ``.gtui/``: the file's inode
and the offset read up to) and records the events some plugin's event gate
listens for, stamped with their own time, exactly as ``gtui event emit``
records its own.  A gate compares events with runs by the ledger's order, not
by those times (a line written by a host whose clock is behind is still new):
each patrol records what was appended before it decides, so a line appended
after a run was claimed is recorded after it.  Only whole lines are read; a
torn last line waits for the next patrol.  Deleting the cursor re-reads the
log: its events are recorded again, after the runs they opened, and open
their gates once more.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from gtcore.core.state_files import save_json
from gtcore.storage.contract import Ledger
from gtcore.town.layout import Town

MAX_READ = 8 * 1024 * 1024  # per patrol: a huge backlog is read over several patrols, never all at once


def ingest(town: Town, ledger: Ledger, wanted: set[str]) -> int:
    """Record the new events of ``wanted`` types from the town's event log; returns how many."""
    log = town.root / ".events.jsonl"
    cursor_path = town.state_dir / "events-cursor.json"
    try:
        info = os.stat(log)
    except OSError:
        return 0
    inode, offset = _cursor(cursor_path)
    if inode != info.st_ino or offset > info.st_size:
        offset = 0  # a new or truncated log: from its start
    if offset == info.st_size:
        return 0
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read(MAX_READ)
    except OSError:
        return 0
    whole = chunk[: chunk.rfind(b"\n") + 1]
    events = [event for line in whole.splitlines() if (event := _event(line, wanted)) is not None]
    if events:
        ledger.emit_events(events, source=".events.jsonl")
    save_json(cursor_path, {"inode": info.st_ino, "offset": offset + len(whole)})
    return len(events)


def _event(line: bytes, wanted: set[str]) -> tuple[str, float] | None:
    """One log line as (type, time), when it is an event some gate wants; anything unreadable is passed over."""
    try:
        record = json.loads(line)
        kind, stamp = record["type"], record["ts"]
        if kind not in wanted:
            return None
        return kind, datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def _cursor(path: Path) -> tuple[int, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["inode"]), int(data["offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1, 0
