"""The SQLite ledger: the storage contract (:mod:`gtcore.storage.contract`) in one file in WAL mode.

Records are **beads**: ``wisp`` (one plugin run), ``digest``, ``escalation``,
``mail`` and ``event``.  Plugin state is derived from them, never kept on the
side.  The per-plugin summary (run count, failures, last run) lives in
``plugin_stats``, a materialised view that SQLite triggers keep in step with
the wisps inside the very transaction that writes them; it is therefore part
of the ledger and always agrees with it, and it survives squashing wisps into
digests.

Labels are deleted explicitly with their beads (:meth:`SqliteLedger.squash_day`);
foreign key enforcement stays off, which keeps squashing 100,000 wisps fast.
An escalation's pending deliveries are rows of ``deliveries``, leased one by
one; read back, they are its ``data["pending"]``.

Concurrency: one connection per thread, WAL so readers never block writers,
every write a ``BEGIN IMMEDIATE`` transaction with a busy timeout and a
bounded retry, so several threads and processes can share one town.

The operations both backends share are :mod:`gtcore.storage.sql_ledger`'s, the
schema is :mod:`gtcore.storage.sqlite_schema`; this module holds what is the
file's own: opening, checking and creating it, connections, the write lock and
its retries, what its errors mean, and the few answers SQLite gives its own way.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import quote

from gtcore.core.beads import Bead, PluginStats
from gtcore.core.errors import GtError, LedgerError
from gtcore.core.records import TYPE_CHECKING
from gtcore.storage.contract import EventMark, LedgerDump, LedgerFacts
from gtcore.storage.dialect import COLUMNS, SQLITE, Statements
from gtcore.storage.shared import LATEST_EVENTS, LATEST_PAUSES, STATS_COLUMNS, pause_of
from gtcore.storage.sql_ledger import SqlLedger

if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["SCHEMA_VERSION", "SqliteLedger", "lock_holder"]

SCHEMA_VERSION = 7
"""``len(sqlite_schema.MIGRATIONS)`` (a test holds them equal): an opened ledger is checked against it, and its
migrations are imported only when one is behind."""

_FETCH = f"SELECT {COLUMNS}, (SELECT json_group_array(label) FROM labels WHERE bead_id = beads.id) FROM beads WHERE id = ?"
"""One bead with its labels, in one query (every run's close reads its wisp)."""

_GATE_FACTS = (f"SELECT 's', {STATS_COLUMNS} FROM plugin_stats"
               " UNION ALL SELECT 'r', plugin, id, created_at, rig, status, data, NULL, NULL FROM beads"
               "   WHERE kind = 'wisp' AND status IN ('queued', 'running')"
               f" UNION ALL SELECT 'p', plugin, title, body, created_at, data, NULL, NULL, NULL FROM beads WHERE id IN ({LATEST_PAUSES})"
               f" UNION ALL SELECT 'e', title, created_at, id, NULL, NULL, NULL, NULL, NULL FROM ({LATEST_EVENTS})")


class SqliteLedger(SqlLedger):
    """Thread-safe access to ``<town>/.gtui/ledger.db``.

    ``readonly`` opens the file for reading only: it is never created or
    migrated, reads never take a lock a writer waits on, and a ledger that
    does not exist yet reads as empty.  A writer waits at most ``wait``
    seconds for the write lock, then says who holds it when that is knowable.
    """

    _d = SQLITE
    _q = Statements(SQLITE)
    _db_error = sqlite3.Error
    _in_flight = sqlite3.IntegrityError
    _refused_in_turn = ()
    _lone_write_bare = True  # a single request needs no savepoint

    def __init__(self, path: Path, *, readonly: bool = False, wait: float = 10.0) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.readonly = readonly
        self.wait = wait
        self._memory = False  # read-only and no file yet: an empty in-memory ledger answers
        self._immutable = False  # read-only in a directory where not even the WAL index may be created
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []  # every thread's connection, so close() lets go of them all
        self._readers_lock = threading.Lock()
        # Writers of this process take turns here, woken the moment the last one commits, and share one
        # connection: left to SQLite, a dog finding the write lock taken sleeps in its busy handler (1 ms,
        # 2 ms, 5 ms...) while the lock is long free.  Other processes still meet SQLite's busy timeout.
        self._writer = threading.Lock()
        self._write_conn: sqlite3.Connection | None = None  # the writers' one connection, used under _writer
        self._prepare()

    # -- opening ----------------------------------------------------------------------

    def _prepare(self) -> None:
        if self.readonly:
            if not self.path.exists():
                self._memory = True
                return
            self._check_file()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"ledger {self.path}: cannot create {self.path.parent}: {exc.strerror or exc}") from None
            if not self.path.exists():
                self._create()
            self._check_file()
        version = self._version()
        if version > SCHEMA_VERSION:
            raise LedgerError(f"ledger {self.path}: schema version {version} is newer than this gtui understands ({SCHEMA_VERSION});"
                              " upgrade gtui")
        if version < SCHEMA_VERSION:
            if self.readonly:
                raise LedgerError(f"ledger {self.path}: schema version {version} needs an upgrade to {SCHEMA_VERSION}, which a"
                                  " read-only gtui does not write; run any gtui command that writes (gtui --once) once")
            self._retry(self._migrate)

    def _check_file(self) -> None:
        """Refuse, with what to do, a file that is not a ledger: gtui never lays a fresh schema over one.

        Only ``stat`` here, never ``open``: closing any descriptor of the file
        drops every POSIX lock this process holds on it, SQLite's included,
        and another process would then think itself the last one and delete
        the WAL under our feet.  A file that is not a database is found by
        SQLite itself, on the first read.
        """
        try:
            info = os.stat(self.path)
        except OSError as exc:
            raise LedgerError(f"ledger {self.path}: cannot be read: {exc.strerror or exc}") from None
        if stat.S_ISDIR(info.st_mode):
            raise LedgerError(f"ledger {self.path}: is a directory, not a ledger file; move it aside")
        if info.st_size:
            return
        if self._locked_by_another():
            raise LedgerError(f"ledger {self.path}: still locked by another process{self._holder_note()}; is something holding it open?")
        raise LedgerError(f"ledger {self.path}: is empty (0 bytes), so it is not a gtui ledger; nothing was changed. Move it aside"
                          f" (mv {self.path} {self.path}.bad) to start a new ledger, or restore it from a backup")

    def _locked_by_another(self) -> bool:
        """An empty file another process holds in a transaction (it is creating a database)."""
        try:
            conn = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True, timeout=0.05)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            return "locked" in str(exc) or "busy" in str(exc)
        return False

    def _create(self) -> None:
        """Build the schema in a file of its own, then link it into place: no one ever sees a half-made ledger.

        Two processes creating at once both build one; the first link wins and
        the other's is thrown away (``link`` never replaces an existing file).
        """
        temp = self.path.with_name(f".{self.path.name}.new-{os.getpid()}-{threading.get_ident()}")
        try:
            conn = sqlite3.connect(temp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                self._migrate(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):
                os.link(temp, self.path)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise self._os_error(exc, "cannot be created") from None
        finally:
            for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _version(self) -> int:
        try:
            return self._connect().execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    # -- connections and transactions -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_readonly() if self.readonly else self._open_writer()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.wait, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _open_readonly(self) -> sqlite3.Connection:
        if self._memory:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._migrate(conn)
            return conn
        uri = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if self._immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=self.wait, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            conn.close()
            if self._immutable or not any(word in str(exc) for word in ("unable to open", "disk I/O error", "readonly")):
                raise
            # The WAL index (-shm) cannot be made or grown: a read-only directory, a full disk.  Read the file
            # as it stands, without locking (records still only in the WAL are not seen until it can be read).
            self._immutable = True
            return self._open_readonly()
        return conn

    def close(self) -> None:
        """Close every thread's connection and the writers' (each reopened on its next use): the last to close a WAL-mode
        file folds the WAL into it and removes it, so a process that goes leaves the ledger whole."""
        with self._readers_lock:
            readers, self._readers = self._readers, []
        self._local = threading.local()
        for conn in readers:
            conn.close()
        with self._writer:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None

    def _error(self, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            problem = ("is corrupt (not a usable SQLite database); nothing was changed. Move it aside"
                       f" (mv {self.path} {self.path}.bad) to start a new ledger, or restore it from a backup")
        elif "locked" in text or "busy" in text:
            problem = f"still locked by another process{self._holder_note()} after {self.wait:g}s; is something holding it open?"
        elif _read_only_file_system(self.path.parent) and ("readonly" in text or "unable to open" in text or "I/O error" in text):
            problem = (f"read-only file system: {self.path.parent} refuses writes (mounted read-only, or a disk its kernel turned"
                       " read-only after an error); nothing was recorded by this attempt")
        elif "readonly" in text or "unable to open" in text:
            problem = "cannot be written (check permissions of the file and its directory)"
        elif "full" in text or ("disk I/O error" in text and _disk_full(self.path.parent)):
            problem = f"disk full: no space left on the device of {self.path.parent}; nothing was recorded by this attempt"
        else:
            problem = text
        return LedgerError(f"ledger {self.path}: {problem}")

    def _os_error(self, exc: OSError, doing: str) -> LedgerError:
        if exc.errno == errno.EROFS:
            return LedgerError(f"ledger {self.path}: {doing}: read-only file system ({self.path.parent} is mounted read-only)")
        if exc.errno == errno.ENOSPC:
            return LedgerError(f"ledger {self.path}: {doing}: disk full (no space left on the device of {self.path.parent})")
        return LedgerError(f"ledger {self.path}: {doing}: {exc.strerror or exc}")

    def _holder_note(self) -> str:
        holder = lock_holder(self.path)
        return f" ({holder})" if holder else ""

    def _retry(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction, retrying while busy, for at most ``wait`` seconds."""
        if self.readonly:
            raise LedgerError(f"ledger {self.path}: opened read-only; this would write")
        deadline = time.monotonic() + self.wait
        if not self._writer.acquire(timeout=self.wait):
            raise LedgerError(f"ledger {self.path}: another writer of this process held it for {self.wait:g}s; nothing was recorded")
        try:
            return self._transaction(work, deadline)
        finally:
            self._writer.release()

    def _transaction(self, work: Callable[[sqlite3.Connection], T], deadline: float) -> T:
        delay = 0.01
        while True:
            conn = None
            try:
                if self._write_conn is None:
                    self._write_conn = self._open_writer()
                conn = self._write_conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    value = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return value
            except sqlite3.OperationalError as exc:
                if conn is not None and conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + delay >= deadline:
                    raise self._error(exc) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.DatabaseError as exc:
                if conn is not None and conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._error(exc) from None

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._connect().execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def changes(self) -> int:
        """SQLite's ``data_version``: it moves whenever another connection commits."""
        return self._read("PRAGMA data_version")[0][0]

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same moment."""
        try:
            conn = self._connect()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path}: schema version {version} is newer than this gtui understands ({SCHEMA_VERSION}); upgrade gtui"
            )
        if version == SCHEMA_VERSION:
            return
        from gtcore.storage.sqlite_schema import MIGRATIONS, split_script

        for number in range(version, SCHEMA_VERSION):
            for statement in split_script(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")


    def _fetch(self, conn: sqlite3.Connection, bead_id: int, *, lock: bool = False) -> Bead | None:
        """``lock`` holds nothing: the transaction is the one writer."""
        row = conn.execute(_FETCH, (bead_id,)).fetchone()
        if row is None:
            return None
        bead = Bead.from_row(row, json.loads(row[11]), tuple(sorted(json.loads(row[12]))))
        return self._with_pending(conn, [bead])[0] if bead.kind == "escalation" else bead

    def _new_id(self, cursor: sqlite3.Cursor) -> int:
        bead_id = cursor.lastrowid
        assert bead_id is not None  # an INSERT's cursor always has it
        return bead_id

    def _now(self, conn: sqlite3.Connection) -> float:
        return time.time()

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("SAVEPOINT one_write")
        try:
            yield
        except sqlite3.Error:
            raise  # the whole transaction answers: it rolls back
        except Exception:
            conn.execute("ROLLBACK TO one_write")
            conn.execute("RELEASE one_write")
            raise
        conn.execute("RELEASE one_write")

    def _failable(self, conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
        return nullcontext()  # a statement SQLite refuses leaves the transaction as it was

    # -- what SQLite answers its own way ------------------------------------------------

    def clock(self) -> float:
        """One host writes this file: its clock is the ledger's."""
        return time.time()

    def beat_kennel(self, host: str, pid: int, started_at: float, data: dict[str, Any]) -> float:
        stamp = time.time()
        self._retry(lambda conn: conn.execute(
            "INSERT INTO kennels VALUES (?, ?, ?, ?, ?) ON CONFLICT(host) DO UPDATE SET pid = excluded.pid,"
            " started_at = excluded.started_at, beat_at = excluded.beat_at, data = excluded.data",
            (host, pid, started_at, stamp, json.dumps(data))))
        return stamp

    def renew_leases(self, run_ids: list[int], lease: float) -> list[int]:
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))

        def renew(conn: sqlite3.Connection) -> list[int]:
            conn.execute(f"UPDATE beads SET data = json_set(data, '$.lease_until', ?) WHERE id IN ({marks}) AND status = 'running'",
                         (self.clock() + lease, *run_ids))
            return [row[0] for row in conn.execute(f"SELECT id FROM beads WHERE id IN ({marks}) AND status != 'running'", run_ids)]

        return self._retry(renew)

    def gate_facts(self) -> LedgerFacts:
        """The per-plugin summary, the runs in flight (with what a reconcile needs of them), pauses and last events: ONE query."""
        facts = LedgerFacts()
        for tag, name, *rest in self._read(_GATE_FACTS):
            if tag == "s":
                facts.summary[name] = PluginStats(name, *rest)
            elif tag == "r":
                run_id, created, rig, status, data, *_ = rest
                facts.running[name] = Bead(run_id, "wisp", f"run {name}", status, "", created, created, None, name, rig, status,
                                           json.loads(data))
            elif tag == "p":
                facts.add_pause(name, pause_of(*rest[:4]))
            else:
                facts.events[name] = EventMark(rest[0], rest[1])
        return facts

    def load(self, parts: Iterable[LedgerDump]) -> int:
        raise GtError(f"ledger {self.path}: copying into a SQLite ledger is not supported; copy into a postgresql:// ledger")


def _read_only_file_system(directory: Path) -> bool:
    """SQLite says "readonly database" for a file it may not write and for one on a read-only mount alike, and "disk I/O
    error" when a disk fails read-only under it: ask the mount, then the kernel (a disk that failed read-only may still be
    mounted ``rw``, its driver refusing every write with EROFS)."""
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return True
        probe = directory / f".gtui-write-probe-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        os.unlink(probe)
    except OSError as exc:
        return exc.errno == errno.EROFS
    return False


def _disk_full(directory: Path) -> bool:
    """SQLite sometimes says "disk I/O error" when a write hits a full disk: ask the file system."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < 64 * 1024


def lock_holder(path: Path) -> str | None:
    """Which other process holds a POSIX lock on the ledger or its WAL index, from ``/proc/locks`` (Linux)."""
    inodes = set()
    for candidate in (path, path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            inodes.add(os.stat(candidate).st_ino)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    me = os.getpid()
    holders: list[tuple[bool, int]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "POSIX" or not fields[4].isdigit():
            continue
        pid, inode = int(fields[4]), fields[5].rsplit(":", 1)[-1]
        if pid != me and inode.isdigit() and int(inode) in inodes:
            holders.append((fields[3] != "WRITE", pid))  # a writer's lock first: readers (a kennel, a control room) hold read locks
    if not holders:
        return None
    pid = min(holders)[1]
    return f"held by pid {pid}: {_command_line(pid)}"


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "a process of another user or container"
    words = [word.decode("utf-8", "replace") for word in raw.split(b"\0") if word]
    return " ".join(words)[:120] or "unknown command"
