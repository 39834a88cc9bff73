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
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from gtcore.core.beads import Bead, Drift, PluginStats, Report, Result, format_ref
from gtcore.core.errors import GtError, LedgerError, NotFound, RunInFlight
from gtcore.core.records import TYPE_CHECKING
from gtcore.storage.contract import (
    IN_FLIGHT,
    OWED,
    ROUTE_LATER,
    Claim,
    Close,
    Delivery,
    DigestDraft,
    EscalationChange,
    EventMark,
    FinishedRun,
    KennelBeat,
    Ledger,
    LedgerDump,
    LedgerFacts,
    Pause,
    QueuedRun,
    Receipt,
    RunState,
    Squash,
    Take,
)
from gtcore.storage.shared import (
    LATEST_EVENTS,
    LATEST_PAUSES,
    PAUSES,
    STATS_COLUMNS,
    STOPPED_QUEUED,
    capped_label,
    check_bead,
    check_final,
    claim_labels,
    closed,
    pause_of,
    receipt_wisp,
    refuse_moved,
    reported,
    reporting_run,
    sameness,
    stop_note,
    stored,
    streak_backfill,
    taken,
    with_drift,
    with_outcome,
)

if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE beads (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        title       TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL,
        body        TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        closed_at   REAL,
        plugin      TEXT,
        rig         TEXT,
        result      TEXT,
        data        TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE labels (
        bead_id INTEGER NOT NULL REFERENCES beads(id) ON DELETE CASCADE,
        label   TEXT NOT NULL,
        PRIMARY KEY (bead_id, label)
    ) WITHOUT ROWID;
    CREATE INDEX labels_by_label ON labels(label, bead_id);
    CREATE INDEX beads_by_kind ON beads(kind, status, created_at);
    CREATE INDEX runs_by_plugin ON beads(plugin, created_at) WHERE kind = 'wisp';
    CREATE UNIQUE INDEX one_running_run ON beads(plugin) WHERE kind = 'wisp' AND status = 'running';

    CREATE TABLE plugin_stats (
        plugin          TEXT PRIMARY KEY,
        run_count       INTEGER NOT NULL,
        failure_count   INTEGER NOT NULL,
        last_run_id     INTEGER NOT NULL,
        last_started_at REAL NOT NULL,
        last_result     TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TRIGGER wisp_recorded AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT INTO plugin_stats VALUES (
            NEW.plugin, 1, NEW.result IN ('failure', 'timeout'), NEW.id, NEW.created_at, NEW.result)
        ON CONFLICT(plugin) DO UPDATE SET
            run_count = run_count + 1,
            failure_count = failure_count + excluded.failure_count,
            last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_result ELSE last_result END,
            last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_run_id ELSE last_run_id END,
            last_started_at = max(last_started_at, excluded.last_started_at);
    END;

    CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        UPDATE plugin_stats SET
            failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))
                                          - (OLD.result IN ('failure', 'timeout')),
            last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END
        WHERE plugin = NEW.plugin;
    END;
    """,
    # 2: the control room's feed asks "what changed since" every second
    """
    CREATE INDEX beads_by_update ON beads(kind, updated_at);
    """,
    # 3: a run's summary (its own report, or gtui's) lives in the wisp's body; the plugin table shows the last one
    """
    ALTER TABLE plugin_stats ADD COLUMN last_summary TEXT NOT NULL DEFAULT '';
    DROP TRIGGER wisp_recorded;
    DROP TRIGGER wisp_result_changed;
    CREATE TRIGGER wisp_recorded AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT INTO plugin_stats (plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary)
        VALUES (NEW.plugin, 1, NEW.result IN ('failure', 'timeout'), NEW.id, NEW.created_at, NEW.result, NEW.body)
        ON CONFLICT(plugin) DO UPDATE SET
            run_count = run_count + 1,
            failure_count = failure_count + excluded.failure_count,
            last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_result ELSE last_result END,
            last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                                THEN excluded.last_summary ELSE last_summary END,
            last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_run_id ELSE last_run_id END,
            last_started_at = max(last_started_at, excluded.last_started_at);
    END;
    CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        UPDATE plugin_stats SET
            failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))
                                          - (OLD.result IN ('failure', 'timeout')),
            last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
            last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
        WHERE plugin = NEW.plugin;
    END;
    """,
    # 4: a run's own labels (type, plugin, rig, result) kept by the database itself, in the statement that
    #    records or closes the run: a run costs fewer statements, and no writer can forget one
    """
    CREATE TRIGGER wisp_labels AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT OR IGNORE INTO labels VALUES
            (NEW.id, 'type:plugin-run'), (NEW.id, 'plugin:' || NEW.plugin), (NEW.id, 'rig:' || NEW.rig),
            (NEW.id, 'result:' || NEW.result);
    END;
    CREATE TRIGGER wisp_result_label AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        DELETE FROM labels WHERE bead_id = NEW.id AND label = 'result:' || OLD.result;
        INSERT OR IGNORE INTO labels VALUES (NEW.id, 'result:' || NEW.result);
    END;
    """,
    # 5: pending deliveries in a table of their own, leased row by row, moved out of the escalations' JSON
    """
    CREATE TABLE deliveries (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        escalation_id  INTEGER NOT NULL,
        channel        TEXT NOT NULL,
        severity       TEXT NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0,
        next_at        REAL NOT NULL,
        UNIQUE (escalation_id, channel, severity)
    );
    CREATE INDEX deliveries_due ON deliveries (next_at);
    INSERT OR IGNORE INTO deliveries (escalation_id, channel, severity, attempts, next_at)
        SELECT beads.id, json_extract(item.value, '$.channel'), json_extract(item.value, '$.severity'),
               coalesce(json_extract(item.value, '$.attempts'), 0), coalesce(json_extract(item.value, '$.next_at'), beads.updated_at)
        FROM beads, json_each(beads.data, '$.pending') AS item
        WHERE beads.kind = 'escalation' AND beads.status != 'closed';
    UPDATE beads SET data = json_remove(data, '$.pending') WHERE kind = 'escalation' AND json_type(data, '$.pending') IS NOT NULL;
    """,
    # 6: the kennel. A run is claimed queued and taken by a kennel: one queued or running run per plugin. Every run's end
    #    gets a number in the order the ends commit (run_ends), which readers (gtui --once) follow with a cursor of their
    #    own (readers); kennels beat here, one per host.
    """
    DROP INDEX one_running_run;
    CREATE UNIQUE INDEX one_run_in_flight ON beads(plugin) WHERE kind = 'wisp' AND status IN ('queued', 'running');
    CREATE INDEX runs_in_flight ON beads(status, id) WHERE kind = 'wisp' AND status IN ('queued', 'running');
    CREATE TABLE run_ends (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id  INTEGER NOT NULL
    );
    CREATE INDEX run_ends_by_run ON run_ends(run_id);
    CREATE TRIGGER wisp_ended AFTER UPDATE OF status ON beads
    WHEN NEW.kind = 'wisp' AND NEW.status = 'closed' AND OLD.status != 'closed'
    BEGIN
        INSERT INTO run_ends (run_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER wisp_recorded_ended AFTER INSERT ON beads WHEN NEW.kind = 'wisp' AND NEW.status = 'closed'
    BEGIN
        INSERT INTO run_ends (run_id) VALUES (NEW.id);
    END;
    CREATE TABLE readers (
        name  TEXT PRIMARY KEY,
        seq   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE kennels (
        host        TEXT PRIMARY KEY,
        pid         INTEGER NOT NULL,
        started_at  REAL NOT NULL,
        beat_at     REAL NOT NULL,
        data        TEXT NOT NULL DEFAULT '{}'
    ) WITHOUT ROWID;
    """,
    # 7: each plugin's failure streak (runs in a row that ended failure, timeout or abandoned, as they ended), kept with the
    #    rest of its summary by the same triggers
    """
    ALTER TABLE plugin_stats ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
    DROP TRIGGER wisp_recorded;
    DROP TRIGGER wisp_result_changed;
    CREATE TRIGGER wisp_recorded AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT INTO plugin_stats (plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary,
                                  failure_streak)
        VALUES (NEW.plugin, 1, NEW.result IN ('failure', 'timeout'), NEW.id, NEW.created_at, NEW.result, NEW.body,
                NEW.result IN ('failure', 'timeout', 'abandoned'))
        ON CONFLICT(plugin) DO UPDATE SET
            run_count = run_count + 1,
            failure_count = failure_count + excluded.failure_count,
            failure_streak = CASE WHEN excluded.last_result IN ('success', 'warning', 'check-only') THEN 0
                                  ELSE failure_streak + excluded.failure_streak END,
            last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_result ELSE last_result END,
            last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                                THEN excluded.last_summary ELSE last_summary END,
            last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_run_id ELSE last_run_id END,
            last_started_at = max(last_started_at, excluded.last_started_at);
    END;
    CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        UPDATE plugin_stats SET
            failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))
                                          - (OLD.result IN ('failure', 'timeout')),
            failure_streak = CASE WHEN NEW.result IN ('success', 'warning', 'check-only') THEN 0
                                  WHEN NEW.result IN ('failure', 'timeout', 'abandoned') AND OLD.result IN ('queued', 'running')
                                       AND coalesce(json_extract(NEW.data, '$.reason'), '') NOT LIKE 'stopped:%'
                                  THEN failure_streak + 1 ELSE failure_streak END,
            last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
            last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
        WHERE plugin = NEW.plugin;
    END;
    """ + streak_backfill("json_extract(b.data, '$.reason')") + ";",
]
SCHEMA_VERSION = len(_MIGRATIONS)


_BEAD_COLUMNS = "id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data"


class SqliteLedger(Ledger):
    """Thread-safe access to ``<town>/.gtui/ledger.db``.

    ``readonly`` opens the file for reading only: it is never created or
    migrated, reads never take a lock a writer waits on, and a ledger that
    does not exist yet reads as empty.  A writer waits at most ``wait``
    seconds for the write lock, then says who holds it when that is knowable.
    """

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
        for number in range(version, SCHEMA_VERSION):
            for statement in _split_script(_MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")

    # -- beads ------------------------------------------------------------------------

    def create(self, kind: str, *, title: str = "", status: str = "open", body: str = "", labels: Iterable[str] = (),
               data: dict[str, Any] | None = None, plugin: str | None = None, rig: str | None = None,
               result: str | None = None, now: float | None = None) -> Bead:
        return self._retry(lambda conn: _insert_bead(conn, kind, title=title, status=status, body=body, labels=labels, data=data,
                                                     plugin=plugin, rig=rig, result=result, now=now))

    def fetch(self, bead_id: int) -> Bead | None:
        with self._snapshot() as conn:
            return _fetch_bead(conn, bead_id)

    def beads(self, kind: str, *, status: str | Iterable[str] | None = None, label: str | None = None, plugin: str | None = None,
              limit: int | None = None, newest_first: bool = True) -> list[Bead]:
        where, params = ["kind = ?"], [kind]
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({_marks(statuses)})")
            params += statuses
        if label is not None:
            where.append("id IN (SELECT bead_id FROM labels WHERE label = ?)")
            params.append(label)
        if plugin is not None:
            where.append("plugin = ?")
            params.append(plugin)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_BEAD_COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at {order}, id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._snapshot() as conn:
            return _attach_labels(conn, conn.execute(sql, params).fetchall())

    def any_bead(self, kind: str, *, status: Iterable[str], label: str) -> bool:
        statuses = list(status)
        sql = (f"SELECT 1 FROM labels JOIN beads ON beads.id = labels.bead_id WHERE labels.label = ? AND beads.kind = ?"
               f" AND beads.status IN ({_marks(statuses)}) LIMIT 1")
        return bool(self._read(sql, [label, kind, *statuses]))

    def find(self, kinds: Iterable[str], *, labels: Iterable[str] = (), statuses: Iterable[str] | None = None,
             created_after: float | None = None, limit: int | None = None) -> list[Bead]:
        kinds = list(kinds)
        where = [f"kind IN ({_marks(kinds)})"]
        params: list[Any] = [*kinds]
        for label in dict.fromkeys(labels):
            where.append("id IN (SELECT bead_id FROM labels WHERE label = ?)")
            params.append(label)
        if statuses is not None:
            chosen = list(statuses)
            where.append(f"status IN ({_marks(chosen)})")
            params += chosen
        if created_after is not None:
            where.append("created_at > ?")
            params.append(created_after)
        sql = f"SELECT {_BEAD_COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._snapshot() as conn:
            return _attach_labels(conn, conn.execute(sql, params).fetchall())

    def close_bead(self, bead: Bead, *, reason: str = "", now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def close(conn: sqlite3.Connection) -> Bead:
            current = _fetch_bead(conn, bead.id)
            if current is None:
                raise NotFound(f"no such record: {bead.ref} is not on the ledger")
            if current.status != "closed":
                _update_bead(conn, current, now=stamp, status="closed", data={**current.data, "close_reason": reason})
            return _fetch_bead(conn, bead.id)  # type: ignore[return-value]

        return self._retry(close)

    # -- runs -------------------------------------------------------------------------

    def clock(self) -> float:
        """One host writes this file: its clock is the ledger's."""
        return time.time()

    def record_turn(self, closes: list[Close], claims: list[Claim], takes: Iterable[Take] = ()) -> list[Bead | Exception]:
        """One transaction, each request in its own savepoint; a single request needs none."""
        works = [_closing(close) for close in closes] + [_claiming(claim) for claim in claims] + [_taking(take) for take in takes]

        def each(conn: sqlite3.Connection) -> list[Any]:
            answers: list[Any] = []
            for work in works:
                conn.execute("SAVEPOINT one_write")
                try:
                    answers.append(work(conn))
                except sqlite3.Error:
                    raise  # the database's trouble, not this write's: the whole transaction answers
                except Exception as exc:
                    conn.execute("ROLLBACK TO one_write")
                    answers.append(exc)
                conn.execute("RELEASE one_write")
            return answers

        if len(works) == 1:
            try:
                return [self._retry(works[0])]
            except Exception as exc:
                return [exc]
        if not works:
            return []
        try:
            return self._retry(each)
        except LedgerError as exc:
            return [exc] * len(works)

    def queued_runs(self, limit: int | None = None) -> list[QueuedRun]:
        rows = self._read("SELECT id, plugin, rig FROM beads WHERE kind = 'wisp' AND status = 'queued' ORDER BY id"
                          + ("" if limit is None else f" LIMIT {int(limit)}"))
        return list(map(QueuedRun._make, rows))

    def run_states(self, run_ids: list[int]) -> list[RunState]:
        found: list[RunState] = []
        for start in range(0, len(run_ids), _CHUNK):
            chunk = run_ids[start:start + _CHUNK]
            found += map(RunState._make, self._read(
                "SELECT id, status, closed_at, EXISTS (SELECT 1 FROM labels WHERE bead_id = beads.id AND label = ?) FROM beads"
                f" WHERE kind = 'wisp' AND id IN ({_marks(chunk)})", (OWED, *chunk)))
        return [state._replace(owed=bool(state.owed)) for state in found]

    def fetch_runs(self, run_ids: list[int]) -> list[Bead]:
        with self._snapshot() as conn:
            return _attach_labels(conn, _run_rows(conn, run_ids))

    def bare_runs(self, run_ids: list[int]) -> list[Bead]:
        with self._snapshot() as conn:
            return [Bead.from_row(row, json.loads(row[11])) for row in _run_rows(conn, run_ids)]

    def request_stop(self, run_id: int, reason: str, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def stop(conn: sqlite3.Connection) -> Bead:
            bead = _fetch_bead(conn, run_id)
            if bead is None or bead.kind != "wisp":
                raise NotFound(f"no such run: {format_ref('wisp', run_id)} is not on the ledger")
            if bead.status == Result.QUEUED:
                return _closing(Close(run_id, Result.ABANDONED, {"reason": f"{STOPPED_QUEUED}: {reason}"}, stamp))(conn)
            if bead.status == Result.RUNNING:
                conn.execute("UPDATE beads SET data = json_set(data, '$.stop', json(?)), updated_at = ? WHERE id = ?",
                             (json.dumps(stop_note(reason, stamp)), stamp, run_id))
                return _fetch_bead(conn, run_id)  # type: ignore[return-value]
            return bead

        return self._retry(stop)

    def stop_requests(self, run_ids: list[int]) -> dict[int, str]:
        if not run_ids:
            return {}
        rows = self._read(f"SELECT id, json_extract(data, '$.stop.reason') FROM beads WHERE id IN ({_marks(run_ids)})"
                          " AND status = 'running' AND json_type(data, '$.stop') IS NOT NULL", run_ids)
        return {run_id: str(reason or "") for run_id, reason in rows}

    def take_finished(self, reader: str, limit: int) -> tuple[list[Bead], bool]:
        def take(conn: sqlite3.Connection) -> tuple[list[Bead], bool]:
            conn.execute("INSERT OR IGNORE INTO readers VALUES (?, 0)", (reader,))
            after = conn.execute("SELECT seq FROM readers WHERE name = ?", (reader,)).fetchone()[0]
            ends = conn.execute("SELECT seq, run_id FROM run_ends WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit + 1)).fetchall()
            more = len(ends) > limit
            ends = ends[:limit]
            if not ends:
                return [], False
            conn.execute("UPDATE readers SET seq = ? WHERE name = ?", (ends[-1][0], reader))
            ids = [run_id for _, run_id in ends]
            found = {bead.id: bead for bead in _attach_labels(conn, conn.execute(
                f"SELECT {_BEAD_COLUMNS} FROM beads WHERE id IN ({_marks(ids)})", ids).fetchall())}
            return [found[run_id] for run_id in ids if run_id in found], more  # a run a digest squashed since is gone

        return self._retry(take)

    # -- kennels ------------------------------------------------------------------------

    def beat_kennel(self, host: str, pid: int, started_at: float, data: dict[str, Any]) -> float:
        stamp = time.time()
        self._retry(lambda conn: conn.execute(
            "INSERT INTO kennels VALUES (?, ?, ?, ?, ?) ON CONFLICT(host) DO UPDATE SET pid = excluded.pid,"
            " started_at = excluded.started_at, beat_at = excluded.beat_at, data = excluded.data",
            (host, pid, started_at, stamp, json.dumps(data))))
        return stamp

    def kennels(self) -> list[KennelBeat]:
        return [KennelBeat(host, pid, started, beat, json.loads(data))
                for host, pid, started, beat, data in self._read("SELECT host, pid, started_at, beat_at, data FROM kennels ORDER BY host")]

    def forget_kennel(self, host: str, pid: int) -> None:
        self._retry(lambda conn: conn.execute("DELETE FROM kennels WHERE host = ? AND pid = ?", (host, pid)))

    def report_run(self, run_id: int, token: str, report: Report, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def keep(conn: sqlite3.Connection) -> Bead:
            bead = reporting_run(_fetch_bead(conn, run_id), run_id, token, "report")
            relabel = reported(bead, report, stamp)
            conn.execute("UPDATE beads SET data = ?, updated_at = ? WHERE id = ?", (json.dumps(relabel.data), stamp, run_id))
            conn.executemany("DELETE FROM labels WHERE bead_id = ? AND label = ?", [(run_id, label) for label in relabel.drop])
            conn.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", [(run_id, label) for label in relabel.add])
            return _fetch_bead(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def note_drift(self, run_id: int, token: str, drift: Drift, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def keep(conn: sqlite3.Connection) -> Bead:
            bead = reporting_run(_fetch_bead(conn, run_id), run_id, token, "drift note")
            conn.execute("UPDATE beads SET data = ?, updated_at = ? WHERE id = ?",
                         (json.dumps(with_drift(bead, drift, stamp)), stamp, run_id))
            return _fetch_bead(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def record_receipt(self, receipt: Receipt) -> Bead:
        wisp = receipt_wisp(receipt)

        def write(conn: sqlite3.Connection) -> Bead:
            bead = _insert_bead(conn, "wisp", title=f"run {receipt.plugin}", status="closed", body=wisp.body, labels=wisp.labels,
                                data=wisp.data, plugin=receipt.plugin, rig=receipt.rig, result=wisp.result, now=wisp.at)
            conn.execute("UPDATE beads SET closed_at = ? WHERE id = ?", (wisp.at, bead.id))
            return _fetch_bead(conn, bead.id)  # type: ignore[return-value]

        return self._retry(write)

    def renew_leases(self, run_ids: list[int], lease: float) -> list[int]:
        if not run_ids:
            return []

        def renew(conn: sqlite3.Connection) -> list[int]:
            conn.execute(f"UPDATE beads SET data = json_set(data, '$.lease_until', ?) WHERE id IN ({_marks(run_ids)})"
                         " AND status = 'running'", (self.clock() + lease, *run_ids))
            return [row[0] for row in conn.execute(f"SELECT id FROM beads WHERE id IN ({_marks(run_ids)}) AND status != 'running'",
                                                   run_ids)]

        return self._retry(renew)

    def settle_follow_up(self, run_id: int, escalation: str | None = None) -> None:
        def settle(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM labels WHERE bead_id = ? AND label = ?", (run_id, OWED))
            if escalation is not None:
                conn.execute("UPDATE beads SET data = json_set(data, '$.escalation', ?) WHERE id = ?", (escalation, run_id))

        self._retry(settle)

    def owed_follow_ups(self) -> list[Bead]:
        """From the label's index: beads(label=...) would let SQLite walk every closed wisp by time."""
        columns = ", ".join(f"beads.{column.strip()}" for column in _BEAD_COLUMNS.split(","))
        with self._snapshot() as conn:
            rows = conn.execute(f"SELECT {columns} FROM labels CROSS JOIN beads ON beads.id = labels.bead_id WHERE labels.label = ?"
                                " AND beads.kind = 'wisp' AND beads.status = 'closed' ORDER BY beads.id", (OWED,)).fetchall()
            return _attach_labels(conn, rows)

    def changed_runs(self, since: float, limit: int = 500) -> list[Bead]:
        with self._snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_BEAD_COLUMNS} FROM beads WHERE kind = 'wisp' AND updated_at >= ? ORDER BY updated_at, id LIMIT ?",
                (since, limit),
            ).fetchall()
            return _attach_labels(conn, rows)

    # -- town events, pauses and the gates' facts -------------------------------------

    def emit_events(self, events: Iterable[tuple[str, float]], *, source: str) -> None:
        listed = list(events)

        def record(conn: sqlite3.Connection) -> None:
            for name, at in listed:
                _insert_bead(conn, "event", title=name, status="closed", labels=[f"event:{name}"], data={"source": source}, now=at)

        self._retry(record)

    def last_events(self) -> dict[str, EventMark]:
        return {name: EventMark(at, seq) for name, at, seq in self._read(LATEST_EVENTS)}

    def pauses(self) -> dict[str, Pause]:
        found = ((plugin, pause_of(*rest)) for plugin, *rest in self._read(PAUSES))
        return {plugin: pause for plugin, pause in found if pause is not None}

    def gate_facts(self) -> LedgerFacts:
        """The per-plugin summary, the runs in flight (with what a reconcile needs of them), pauses and last events: ONE query."""
        facts = LedgerFacts()
        rows = self._read(
            f"SELECT 's', {STATS_COLUMNS} FROM plugin_stats"
            " UNION ALL SELECT 'r', plugin, id, created_at, rig, status, data, NULL, NULL FROM beads"
            "   WHERE kind = 'wisp' AND status IN ('queued', 'running')"
            f" UNION ALL SELECT 'p', plugin, title, body, created_at, data, NULL, NULL, NULL FROM beads WHERE id IN ({LATEST_PAUSES})"
            f" UNION ALL SELECT 'e', title, created_at, id, NULL, NULL, NULL, NULL, NULL FROM ({LATEST_EVENTS})")
        for tag, name, *rest in rows:
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

    def plugin_summary(self) -> dict[str, PluginStats]:
        rows = self._read(f"SELECT {STATS_COLUMNS} FROM plugin_stats")
        return {row[0]: PluginStats(*row) for row in rows}

    # -- escalations and their deliveries ---------------------------------------------

    def raise_escalation(self, subject: str, source: str, *, fresh: Callable[[], EscalationChange],
                         again: Callable[[Bead], EscalationChange], labels: Iterable[str], now: float,
                         fingerprint: str | None = None) -> tuple[Bead, bool]:
        same = sameness(subject, source, fingerprint)
        titled = "" if same.title is None else " AND title = ?"
        params = (same.label,) if same.title is None else (same.label, same.title)

        def write(conn: sqlite3.Connection) -> tuple[Bead, bool]:
            row = conn.execute("SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed'"
                               f" AND id IN (SELECT bead_id FROM labels WHERE label = ?){titled} ORDER BY id DESC LIMIT 1",
                               params).fetchone()
            if row is not None:
                existing = _fetch_bead(conn, row[0])
                assert existing is not None
                return _apply_change(conn, existing, again(existing), now), False
            change = fresh()
            bead = _insert_bead(conn, "escalation", title=subject, body=change.body or "", labels=labels, data=change.data, now=now)
            return _apply_change(conn, bead, change._replace(body=None), now), True

        return self._retry(write)

    def change_escalation(self, escalation_id: int, change: Callable[[Bead], EscalationChange | None], *, now: float) -> Bead:
        def write(conn: sqlite3.Connection) -> Bead:
            bead = _fetch_bead(conn, escalation_id)
            if bead is None or bead.kind != "escalation":
                raise NotFound(f"no such escalation: {format_ref('escalation', escalation_id)} is not on the ledger")
            decided = change(bead)
            return bead if decided is None else _apply_change(conn, bead, decided, now)

        return self._retry(write)

    def lease_deliveries(self, now: float, lease: float, *, route: Callable[[Bead, str], EscalationChange],
                         only: int | None = None) -> list[Delivery]:
        """Leased by moving each due row's next attempt past the lease, in the transaction that read it."""
        scope = "" if only is None else " AND escalation_id = ?"
        params: tuple[Any, ...] = () if only is None else (only,)
        live = " AND escalation_id IN (SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed')"

        def write(conn: sqlite3.Connection) -> list[Delivery]:
            held = conn.execute(f"SELECT id, escalation_id, severity FROM deliveries WHERE channel = ?{live}{scope}",
                                (ROUTE_LATER, *params)).fetchall()
            for row_id, escalation_id, severity in held:
                conn.execute("DELETE FROM deliveries WHERE id = ?", (row_id,))
                bead = _fetch_bead(conn, escalation_id)
                assert bead is not None  # an unclosed escalation, read in this transaction
                _apply_change(conn, bead, route(bead, severity), now)
            due = conn.execute(f"SELECT escalation_id, channel, severity, attempts, next_at FROM deliveries"
                               f" WHERE next_at <= ? AND channel != ?{live}{scope} ORDER BY id", (now, ROUTE_LATER, *params)).fetchall()
            conn.executemany("UPDATE deliveries SET next_at = ? WHERE escalation_id = ? AND channel = ? AND severity = ?",
                             [(now + lease, row[0], row[1], row[2]) for row in due])
            return [Delivery(*row) for row in due]

        return self._retry(write)

    def record_delivery(self, delivery: Delivery, error: str | None, *, now: float, retry_at: float | None) -> None:
        key = (delivery.escalation_id, delivery.channel, delivery.severity)

        def write(conn: sqlite3.Connection) -> None:
            bead = _fetch_bead(conn, delivery.escalation_id)
            if bead is None:
                return
            _update_bead(conn, bead, now=now, data=with_outcome(bead, delivery, error, now))
            if error is None or retry_at is None:
                conn.execute("DELETE FROM deliveries WHERE escalation_id = ? AND channel = ? AND severity = ?", key)
            else:
                conn.execute("UPDATE deliveries SET attempts = ?, next_at = ? WHERE escalation_id = ? AND channel = ? AND severity = ?",
                             (delivery.attempts + 1, retry_at, *key))

        self._retry(write)

    # -- copying ----------------------------------------------------------------------

    def dump(self, batch: int = 5000) -> Iterator[LedgerDump]:
        after = 0
        while True:
            with self._snapshot() as conn:
                rows = conn.execute(f"SELECT {_BEAD_COLUMNS} FROM beads WHERE id > ? ORDER BY id LIMIT ?", (after, batch)).fetchall()
                beads = _attach_labels(conn, rows)
            if len(beads) < batch:
                yield LedgerDump(beads, stats=list(self.plugin_summary().values()))
                return
            yield LedgerDump(beads)
            after = beads[-1].id

    def load(self, parts: Iterable[LedgerDump]) -> int:
        raise GtError(f"ledger {self.path}: copying into a SQLite ledger is not supported; copy into a postgresql:// ledger")

    # -- digests and retention ----------------------------------------------------------

    def squash_day(self, title: str, plugins: list[str], start: float, end: float,
                   fold: Callable[[list[FinishedRun], Bead | None], DigestDraft], *, dry_run: bool, now: float) -> Squash:
        def squash(conn: sqlite3.Connection) -> Squash:
            runs = _finished_runs(conn, plugins, start, end)
            row = conn.execute("SELECT id FROM beads WHERE kind = 'digest' AND title = ? ORDER BY id LIMIT 1", (title,)).fetchone()
            existing = _fetch_bead(conn, row[0]) if row else None
            if not runs:
                return Squash(runs, existing, existing)
            draft = fold(runs, existing)
            if dry_run:
                return Squash(runs, existing, None)
            if existing is None:
                digest = _insert_bead(conn, "digest", title=title, status="closed", body=draft.body, data=draft.data,
                                      labels=draft.labels, now=now)
            else:
                _update_bead(conn, existing, now=now, data=draft.data)
                conn.execute("UPDATE beads SET body = ? WHERE id = ?", (draft.body, existing.id))
                digest = existing
            _delete(conn, [run.id for run in runs])
            return Squash(runs, existing, digest)

        if dry_run:  # reads only: it must work on a read-only ledger too
            with self._snapshot() as conn:
                return squash(conn)
        return self._retry(squash)

    def run_days(self, plugins: list[str], before: float) -> list[int]:
        rows = self._read("SELECT DISTINCT CAST(created_at / 86400 AS INTEGER) FROM beads WHERE kind = 'wisp' AND status = 'closed'"
                          f" AND created_at < ? AND plugin IN ({_marks(plugins)})", (before, *plugins))
        return [row[0] for row in rows]

    def digest_beads(self, plugin: str | None = None, limit: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        """Ordered by the day in the title (a day can be digested late); a plugin is pre-selected by its key in the JSON text."""
        sql = "SELECT id, title, data FROM beads WHERE kind = 'digest'"
        params: list[Any] = []
        if plugin is not None:
            sql += " AND instr(data, ?) > 0"
            params.append(json.dumps(plugin) + ":")
        sql += " ORDER BY title DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [(bead_id, title, json.loads(raw)) for bead_id, title, raw in self._read(sql, params)]

    def prune_runs(self, cutoff: float, keep: list[str], only: list[str] | None, batch: int) -> list[str | None]:
        # Not "NOT IN (NULL)" for an empty list: that is never true, and would keep every run.
        where = f" AND plugin NOT IN ({_marks(keep)})" if keep else ""
        params: list[Any] = [cutoff, *keep]
        if only is not None:
            where += f" AND plugin IN ({_marks(only)})"
            params += only

        def delete(conn: sqlite3.Connection) -> list[str | None]:
            rows = conn.execute(
                "SELECT id, json_extract(data, '$.log') FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < ?"
                + where + f" LIMIT {int(batch)}", params).fetchall()
            _delete(conn, [row[0] for row in rows])
            return [row[1] for row in rows]

        return self._retry(delete)


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


def _split_script(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _insert_bead(
    conn: sqlite3.Connection,
    kind: str,
    *,
    title: str = "",
    status: str = "open",
    body: str = "",
    labels: Iterable[str] = (),
    data: dict[str, Any] | None = None,
    plugin: str | None = None,
    rig: str | None = None,
    result: str | None = None,
    now: float | None = None,
) -> Bead:
    """Insert a bead inside the caller's transaction."""
    check_bead(kind, plugin, result)
    stamp = time.time() if now is None else now
    cursor = conn.execute(
        "INSERT INTO beads (kind, title, status, body, created_at, updated_at, plugin, rig, result, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, title, status, body, stamp, stamp, plugin, rig, result, _stored(data or {})),
    )
    bead_id = cursor.lastrowid
    assert bead_id is not None  # an INSERT's cursor always has it
    unique = tuple(dict.fromkeys(map(capped_label, labels)))
    if unique:  # OR IGNORE: a wisp's own labels are the trigger's already
        conn.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", [(bead_id, label) for label in unique])
    return Bead(bead_id, kind, title, status, body, stamp, stamp, None, plugin, rig, result, dict(data or {}), unique)


def _stored(data: dict[str, Any]) -> str:
    return json.dumps(stored(data))


def _update_bead(
    conn: sqlite3.Connection,
    bead: Bead,
    *,
    now: float,
    status: str | None = None,
    data: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Change a bead inside the caller's transaction.

    ``labels`` maps a label key to its new value: ``{"severity": "high"}``
    replaces every ``severity:*`` label of the bead.
    """
    new_status = status or bead.status
    closed_at = now if new_status == "closed" and bead.status != "closed" else bead.closed_at
    conn.execute(
        "UPDATE beads SET status = ?, data = ?, updated_at = ?, closed_at = ? WHERE id = ?",
        (new_status, _stored(bead.data if data is None else data), now, closed_at, bead.id),
    )
    for key, value in (labels or {}).items():
        prefix = f"{key}:"
        conn.execute("DELETE FROM labels WHERE bead_id = ? AND substr(label, 1, ?) = ?", (bead.id, len(prefix), prefix))
        conn.execute("INSERT INTO labels VALUES (?, ?)", (bead.id, f"{key}:{value}"))


def _apply_change(conn: sqlite3.Connection, bead: Bead, change: EscalationChange, now: float) -> Bead:
    """Write an escalation's change inside the caller's transaction and read it back, deliveries and all."""
    _update_bead(conn, bead, now=now, data=change.data, status=change.status, labels=change.labels)
    if change.body is not None:
        conn.execute("UPDATE beads SET body = ? WHERE id = ?", (change.body, bead.id))
    if change.drop_pending:
        conn.execute("DELETE FROM deliveries WHERE escalation_id = ?", (bead.id,))
    conn.executemany("INSERT OR IGNORE INTO deliveries (escalation_id, channel, severity, attempts, next_at) VALUES (?, ?, ?, 0, ?)",
                     [(bead.id, channel, severity, now) for channel, severity in change.queue])
    return _fetch_bead(conn, bead.id)  # type: ignore[return-value]


def _claiming(claim: Claim) -> Callable[[sqlite3.Connection], Bead]:
    """The write that records a run as ``queued`` for a kennel, refusing if one is in flight.

    The partial unique index ``one_run_in_flight`` makes the refusal hold
    across every thread and process on the town.  ``expect_last_run`` is
    the plugin's last run id the gate decision was based on (None: never
    ran); if another run was claimed since, the claim fails with
    :class:`GateMoved`.  The wisp keeps the plugin's previous result
    (``previous_result``, None for its first run): what follows a run knows
    whether it ends a streak.
    """
    plugin, rig = claim.plugin, claim.rig
    own, extra = claim_labels(claim)  # own: written by the wisp_labels trigger

    def write(conn: sqlite3.Connection) -> Bead:
        row = conn.execute("SELECT last_run_id, last_result FROM plugin_stats WHERE plugin = ?", (plugin,)).fetchone()
        latest, previous = row if row else (None, None)
        refuse_moved(claim, latest)
        try:
            run = _insert_bead(conn, "wisp", title=f"run {plugin}", status="queued", labels=extra,
                               data={**(claim.data or {}), "previous_result": previous, "queued_at": time.time()}, plugin=plugin,
                               rig=rig, result="queued", now=claim.now)
            return run._replace(labels=(*own, *extra))
        except sqlite3.IntegrityError:
            raise RunInFlight(f"plugin {plugin} already has a run in flight") from None

    return write


def _taking(take: Take) -> Callable[[sqlite3.Connection], Bead]:
    """The write that makes a queued run running for the kennel that takes it (:func:`~gtcore.storage.shared.taken`)."""
    stamp = time.time() if take.now is None else take.now

    def write(conn: sqlite3.Connection) -> Bead:
        bead = _fetch_bead(conn, take.run_id)
        if bead is None or bead.kind != "wisp":
            raise NotFound(f"no such run: {format_ref('wisp', take.run_id)} is not on the ledger")
        running = taken(bead, take, stamp, time.time() + take.lease)
        conn.execute("UPDATE beads SET status = 'running', result = 'running', updated_at = ?, data = ? WHERE id = ?",
                     (stamp, json.dumps(running.data), take.run_id))
        return running

    return write


def _closing(request: Close) -> Callable[[sqlite3.Connection], Bead]:
    """The write that closes a run in flight as :func:`~gtcore.storage.shared.closed` says; closing twice keeps the first result."""
    run_id = request.run_id
    stamp = check_final(request)

    def write(conn: sqlite3.Connection) -> Bead:
        bead = _fetch_bead(conn, run_id)
        if bead is None or bead.kind != "wisp":
            raise NotFound(f"no such run: {format_ref('wisp', run_id)} is not on the ledger")
        if bead.status not in IN_FLIGHT:
            return bead
        done = closed(bead, request)
        conn.execute(
            "UPDATE beads SET status = 'closed', result = ?, body = ?, closed_at = ?, updated_at = ?, data = ? WHERE id = ?",
            (done.result, done.body, stamp, stamp, json.dumps(done.data), run_id),
        )
        if done.owed:
            conn.execute("INSERT OR IGNORE INTO labels VALUES (?, ?)", (run_id, OWED))
        return done.bead(bead, stamp)

    return write


def _fetch_bead(conn: sqlite3.Connection, bead_id: int) -> Bead | None:
    """One bead with its labels, in one query (every run's close reads its wisp); an escalation with its deliveries."""
    row = conn.execute(f"SELECT {_BEAD_COLUMNS}, (SELECT json_group_array(label) FROM labels WHERE bead_id = beads.id)"
                       " FROM beads WHERE id = ?", (bead_id,)).fetchone()
    if row is None:
        return None
    bead = Bead.from_row(row, json.loads(row[11]), tuple(sorted(json.loads(row[12]))))
    return _with_pending(conn, [bead])[0] if bead.kind == "escalation" else bead


def _with_pending(conn: sqlite3.Connection, beads: list[Bead]) -> list[Bead]:
    """Escalations read back with their waiting deliveries as ``data["pending"]``, oldest first."""
    pending: dict[int, list[dict[str, Any]]] = {bead.id: [] for bead in beads}
    ids = list(pending)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for escalation_id, channel, severity, attempts, next_at in conn.execute(
                f"SELECT escalation_id, channel, severity, attempts, next_at FROM deliveries WHERE escalation_id IN ({_marks(chunk)})"
                " ORDER BY id", chunk):
            pending[escalation_id].append({"channel": channel, "severity": severity, "attempts": attempts, "next_at": next_at})
    return [bead._replace(data={**bead.data, "pending": pending[bead.id]}) for bead in beads]


def _run_rows(conn: sqlite3.Connection, run_ids: list[int]) -> list[sqlite3.Row]:
    """The bead rows of these runs, read a chunk of ids at a time (SQLite's limit on parameters)."""
    rows: list[sqlite3.Row] = []
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start:start + _CHUNK]
        rows += conn.execute(f"SELECT {_BEAD_COLUMNS} FROM beads WHERE kind = 'wisp' AND id IN ({_marks(chunk)})", chunk).fetchall()
    return rows


def _attach_labels(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Bead]:
    """Turn bead rows into :class:`Bead` records with their labels (one extra query; escalations one more)."""
    if not rows:
        return []
    ids = [row[0] for row in rows]
    labels: dict[int, list[str]] = {bead_id: [] for bead_id in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for bead_id, label in conn.execute(f"SELECT bead_id, label FROM labels WHERE bead_id IN ({_marks(chunk)})", chunk):
            labels[bead_id].append(label)
    beads = [Bead.from_row(row, json.loads(row[11]), tuple(sorted(labels[row[0]]))) for row in rows]
    escalations = [bead for bead in beads if bead.kind == "escalation"]
    if not escalations:
        return beads
    known = {bead.id: bead for bead in _with_pending(conn, escalations)}
    return [known.get(bead.id, bead) for bead in beads]


_CHUNK = 500


def _finished_runs(conn: sqlite3.Connection, names: list[str], start: float, end: float) -> list[FinishedRun]:
    """What a digest keeps of each run, read with ``json_extract``: decoding 100,000 whole JSONs cost more than the squash."""
    found: list[FinishedRun] = []
    for offset in range(0, len(names), _CHUNK):
        chunk = names[offset:offset + _CHUNK]
        rows = conn.execute(
            "SELECT id, created_at, plugin, result, json_extract(data, '$.duration_s'), json_extract(data, '$.reason'),"
            " json_extract(data, '$.log') FROM beads"
            f" WHERE kind = 'wisp' AND status = 'closed' AND created_at >= ? AND created_at < ? AND plugin IN ({_marks(chunk)})",
            (start, end, *chunk),
        ).fetchall()
        found += map(FinishedRun._make, rows)
    return found


def _delete(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Delete beads and their labels: the ids go in as one JSON array, two statements whatever their number."""
    keys = json.dumps(ids)
    conn.execute("DELETE FROM labels WHERE bead_id IN (SELECT value FROM json_each(?))", (keys,))
    conn.execute("DELETE FROM run_ends WHERE run_id IN (SELECT value FROM json_each(?))", (keys,))
    conn.execute("DELETE FROM beads WHERE id IN (SELECT value FROM json_each(?))", (keys,))
