"""The recovery journal: results the ledger refused, kept where the ledger's trouble cannot reach them.

A kennel that cannot record a run's end (a full disk, a read-only remount, a
database server gone) keeps the result in memory and retries; it also writes
it here at once, so that the result outlives the kennel, and so that a
command waiting for the run can say "ended success, not yet recorded" instead
of waiting for ever.  The next patrol of any gtui on the host replays what it
finds here before it looks for abandoned runs, so the ledger ends with the
true result, never ``abandoned``.

Where: ``/dev/shm/gtui-<uid>/<town>/`` (else ``$XDG_RUNTIME_DIR/gtui/<town>/``,
else the temporary directory).  ``/dev/shm`` is memory: it fills with neither
the town's disk nor the database server's, and it is read-only only when the
machine is broken.  It does not survive a reboot — neither does a run's
process tree, and a reboot is the one failure this journal does not cover.
One small JSON file per run, written whole and renamed into place, readable by
the town's user only.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from gtcore.core.digests import sha256_hex
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.dogs.output import log_text
from gtcore.storage.contract import Close

if TYPE_CHECKING:
    from typing import Any

    from gtcore.town.layout import Town

MAX_ENTRY_BYTES = 256 * 1024  # a result's data is a few hundred bytes: anything larger is not one of ours


class Entry(Record):
    """A run's end the ledger has yet to record."""

    run_id: int
    ref: str
    plugin: str
    result: str
    data: dict[str, Any]
    at: float
    owed: bool
    error: str  # why the ledger refused it (the line a command prints)
    path: Path

    def words(self) -> str:
        """The one line a command says of it."""
        if self.path.parent.name == "lost":
            return f"{self.error}; {self.ref} {self.plugin} ended {self.result}, which it cannot record; kept in {self.path}"
        return f"{self.error}; {self.ref} {self.plugin} ended {self.result}, not yet recorded; kept in {self.path}"

    def close(self, *, with_log: bool) -> Close:
        """The close the ledger refused, to try again (``with_log``: the run's log goes with it, for a ledger every host reads)."""
        log = self.data.get("log")
        text = log_text(log) if with_log and isinstance(log, str) else None
        return Close(self.run_id, self.result, self.data, self.at, owed=self.owed, log=text)


def directory(town: Town) -> Path:
    """This town's journal directory on this host (not created)."""
    digest = sha256_hex(str(town.root).encode())[:16]
    return _root() / f"{town.root.name}-{digest}"


def _root() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"gtui-{os.getuid()}"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "gtui"
    import tempfile  # rarely needed, and costly to import on every patrol

    return Path(tempfile.gettempdir()) / f"gtui-{os.getuid()}"


def keep(town: Town, entry: Entry) -> Path | None:
    """Write ``entry`` into the journal (whole, then renamed into place); where it went, or None when it could not be."""
    folder = directory(town)
    target = folder / f"{entry.ref}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = json.dumps({"run_id": entry.run_id, "ref": entry.ref, "plugin": entry.plugin, "result": entry.result,
                              "data": entry.data, "at": entry.at, "owed": entry.owed, "error": entry.error}).encode()
        temp = folder / f".{entry.ref}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except (OSError, TypeError, ValueError):
        return None
    return target


def waiting(town: Town) -> set[int]:
    """The ids of the runs whose end waits in the journal (one directory listing)."""
    try:
        names = os.listdir(directory(town))
    except OSError:
        return set()
    return {int(name[4:-5]) for name in names if name.startswith("run-") and name.endswith(".json") and name[4:-5].isdigit()}


def entries(town: Town) -> list[Entry]:
    """Every result of this town waiting in the journal, oldest run first (what cannot be read is left alone)."""
    found = []
    with contextlib.suppress(OSError):
        for path in directory(town).glob("run-*.json"):
            entry = _read(path)
            if entry is not None:
                found.append(entry)
    return sorted(found, key=lambda entry: entry.run_id)


def find(town: Town, run_id: int) -> Entry | None:
    """The journal's entry of one run, if it has one."""
    return _read(directory(town) / f"run-{run_id}.json")


def _read(path: Path) -> Entry | None:
    try:
        with open(path, "rb") as handle:
            raw = json.loads(handle.read(MAX_ENTRY_BYTES + 1))
        return Entry(int(raw["run_id"]), str(raw["ref"]), str(raw["plugin"]), str(raw["result"]), dict(raw["data"]),
                     float(raw["at"]), bool(raw["owed"]), str(raw["error"]), path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def set_aside(town: Town, entry: Entry) -> Entry:
    """The ledger has no such run (it lost it: restored from an older copy, or its disk failed before the run's start was
    written): the entry can never be replayed, so it moves to ``lost/`` beside the journal, kept for a person; the entry
    as it is now, with the words to say once."""
    target = directory(town) / "lost" / entry.path.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(entry.path, target)
    except OSError:
        target = entry.path
    return entry._replace(path=target, error=f"the ledger has no {entry.ref} (it lost it: restored from an older copy, or"
                                             " its disk failed before the run's start reached it)")


def forget(town: Town, run_id: int) -> None:
    """The ledger has the run's end now: its entry goes (and the town's directory, once it holds nothing more)."""
    folder = directory(town)
    with contextlib.suppress(OSError):
        (folder / f"run-{run_id}.json").unlink()
        folder.rmdir()
