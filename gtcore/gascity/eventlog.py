"""Gas City's event log, ``<city>/.gc/events.jsonl``, read by ``seq`` as event orders need it.

gc's recorder gives every event a ``seq`` that only grows, across
rotations: the active file is renamed ``events.jsonl.rotating-<ts>-seq-<a>-<b>``
and gzipped to ``events.jsonl.archive-<ts>-seq-<a>-<b>.gz`` while a new
active file starts.  An event order is due when events of its type came
after its cursor (the ``seq`` the log had reached when it last fired), not
after some time.

gtui keeps what it has read in ``<town>/.gtui/gascity/events.json``: how
far (the last ``seq`` read, and the active file's inode and offset), and,
for each type an order listens for, the ``seq`` of its events (the newest
:data:`KEPT`).  Each refresh reads only what is new: the segments whose
range ends past what was read (so a rotation loses nothing and reads
nothing twice), then the active file from where it was left (from its start
when it is a new file).  Only whole lines count; events whose payload is
labelled ``order-tracking`` (gc's own bookkeeping) are left out, as gc
leaves them out.  Deleting the state file re-reads the log.  Sources:
``internal/events/reader.go``, ``recorder.go``, ``rotation_archive.go``,
``internal/orders/triggers.go:checkEvent``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
from collections import deque
from pathlib import Path

from gtcore.core.records import Record
from gtcore.core.state_files import save_json

ACTIVE = "events.jsonl"
KEPT = 10_000  # seqs kept per type: an order's "N events" saturates there, its gate does not
TAIL_LINES = 64  # the active file's last lines kept while reading, to find the last one that says its seq
_SEGMENT = re.compile(r"^events\.jsonl\.(?:archive|rotating)-\d{8}T\d{6}Z-seq-(\d+)-(\d+)(\.gz)?$")


class Snapshot(Record):
    """What the log holds as far as gtui has read it: the last ``seq`` read, and the ``seq`` of each wanted type's events."""

    head: int
    seqs: dict[str, tuple[int, ...]]

    def events_after(self, kind: str, cursor: int) -> int:
        """How many events of ``kind`` came after ``cursor`` (up to :attr:`head`)."""
        return sum(1 for seq in self.seqs.get(kind, ()) if cursor < seq <= self.head)


def log_dir(city: Path) -> Path:
    return city / ".gc"


def refresh(city: Path, state_file: Path, wanted: frozenset[str], *, keep: bool = True) -> Snapshot:
    """Read what is new in the city's log for the ``wanted`` types; the snapshot after it (kept in ``state_file`` unless
    ``keep`` is false)."""
    read_to, inode, offset, kept = _load(state_file, wanted)
    reader = _Reader(wanted, read_to, {kind: list(seqs) for kind, seqs in kept.items()})
    for _, last, path in _segments(log_dir(city)):
        if last > reader.read_to:
            reader.segment(path, last)
    active = log_dir(city) / ACTIVE
    with contextlib.suppress(OSError):
        info = os.stat(active)
        start = offset if info.st_ino == inode and offset <= info.st_size else 0
        if start < info.st_size:
            offset = reader.active(active, start)
            inode = info.st_ino
    seqs = {kind: tuple(found[-KEPT:]) for kind, found in reader.seqs.items()}
    if keep:
        save_json(state_file, {"wanted": sorted(wanted), "read_to": reader.read_to, "inode": inode, "offset": offset,
                           "seqs": {kind: list(found) for kind, found in seqs.items()}})
    return Snapshot(reader.read_to, seqs)


class _Reader:
    """Streams segments and the active file line by line, recording the wanted events past ``read_to``."""

    def __init__(self, wanted: frozenset[str], read_to: int, seqs: dict[str, list[int]]) -> None:
        self.wanted, self.read_to, self.seqs = wanted, read_to, seqs
        self.needles = [json.dumps(kind).encode() for kind in wanted]
        self.highest = 0  # the highest seq recorded: what was read reaches at least there
        for kind in wanted:
            self.seqs.setdefault(kind, [])

    def segment(self, path: Path, last: int) -> None:
        """A rotated segment, whole (gzip or not): every wanted event past ``read_to``, then ``read_to`` is its last seq."""
        floor = self.read_to
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as handle:
                for line in handle:
                    self._line(line, floor)
        except (OSError, EOFError, gzip.BadGzipFile):
            return  # half-written or gone (gc gzips in the background): its rotating twin or the next refresh has it
        self.read_to = max(self.read_to, last)

    def active(self, path: Path, start: int) -> int:
        """The active file from ``start``, whole lines only; the offset after the last whole line read.  What was read
        reaches the last line that says its ``seq`` (a blank or broken last line says none)."""
        floor, offset = self.read_to, start
        tail: deque[bytes] = deque(maxlen=TAIL_LINES)
        try:
            with open(path, "rb") as handle:
                handle.seek(start)
                for line in handle:
                    if not line.endswith(b"\n"):
                        break  # torn: the writer is still at it; the next refresh reads it whole
                    offset += len(line)
                    self._line(line, floor)
                    tail.append(line)
        except OSError:
            return start
        last = next((seq for line in reversed(tail) if (seq := _seq(line)) is not None), 0)
        self.read_to = max(self.read_to, last, self.highest)
        return offset

    def _line(self, line: bytes, floor: int) -> None:
        if not any(needle in line for needle in self.needles):
            return
        event = _event(line)
        if event is None or event[1] not in self.wanted or event[0] <= floor or _tracking(event[2]):
            return  # floor: what an earlier refresh (or the rotating twin of this archive) already counted
        self.seqs[event[1]].append(event[0])
        self.highest = max(self.highest, event[0])


def _event(line: bytes) -> tuple[int, str, object] | None:
    try:
        record = json.loads(line)
        seq, kind = record["seq"], record["type"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(kind, str):
        return None
    return seq, kind, record.get("payload")


def _seq(line: bytes) -> int | None:
    event = _event(line)
    return None if event is None else event[0]


def _tracking(payload: object) -> bool:
    """gc's own tracking-bead events (``payload.labels`` holding ``order-tracking``) never fire an event order."""
    labels = payload.get("labels") if isinstance(payload, dict) else None
    return isinstance(labels, list) and "order-tracking" in labels


def _segments(directory: Path) -> list[tuple[int, int, Path]]:
    """Rotated segments by their ``seq`` range, oldest first (a rotating file before its archive twin)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        match = _SEGMENT.match(name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), match.group(3) is not None, directory / name))
    return [(first, last, path) for first, last, _, path in sorted(found)]


def _load(path: Path, wanted: frozenset[str]) -> tuple[int, int, int, dict[str, list[int]]]:
    """The kept state (``read_to``, the active file's inode and offset, the seqs by type), or a fresh one (none yet,
    damaged, or kept for other types: those types were never read)."""
    fresh: tuple[int, int, int, dict[str, list[int]]] = (0, -1, 0, {})
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("wanted") != sorted(wanted):
            return fresh
        read_to, inode, offset = int(data["read_to"]), int(data["inode"]), int(data["offset"])
        seqs = {str(kind): [int(seq) for seq in seqs] for kind, seqs in dict(data["seqs"]).items()}
        return read_to, inode, offset, seqs
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return fresh


def latest_fired(city: Path, subjects: set[str]) -> dict[str, tuple[int, str]]:
    """For each subject, the ``seq`` and ``ts`` of its newest ``order.fired`` event in the active file and rotated segments
    (how gtui finds where an event order's cursor stood when gc's controller last fired it)."""
    found: dict[str, tuple[int, str]] = {}
    paths = [path for _, _, path in _segments(log_dir(city))] + [log_dir(city) / ACTIVE]
    for path in paths:
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as handle:
                for line in handle:
                    _note_fired(line, subjects, found)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
    return found


def _note_fired(line: bytes, subjects: set[str], found: dict[str, tuple[int, str]]) -> None:
    if b'"order.fired"' not in line:
        return
    with contextlib.suppress(ValueError, TypeError, RecursionError, AttributeError):
        record = json.loads(line)
        subject, seq = record.get("subject"), record.get("seq")
        newer = isinstance(seq, int) and (subject not in found or seq > found[subject][0])
        if record.get("type") == "order.fired" and subject in subjects and newer:
            found[subject] = (seq, str(record.get("ts", "")))
