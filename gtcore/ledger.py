"""The ledger: every record gtui keeps, in one SQLite file in WAL mode.

Records are **beads**: ``wisp`` (one plugin run), ``digest``, ``escalation``,
``mail`` and ``event``.  Plugin state is derived from them, never kept on the
side.  The per-plugin summary (run count, failures, last run) lives in
``plugin_stats``, a materialised view that SQLite triggers keep in step with
the wisps inside the very transaction that writes them; it is therefore part
of the ledger and always agrees with it, and it survives squashing wisps into
digests.

Labels are deleted explicitly with their beads (``gtcore.digest``); foreign
key enforcement stays off, which keeps squashing 100,000 wisps fast.

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

from gtcore.errors import GateMoved, GtError, LedgerError, NotFound, RunInFlight
from gtcore.model import PREFIX, Bead, PluginStats, Report, Result, format_ref, settle
from gtcore.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

KINDS = ("wisp", "digest", "escalation", "mail", "event", "note")

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
]
SCHEMA_VERSION = len(_MIGRATIONS)


class LedgerFacts:
    """What the gates need from the ledger (see :meth:`Ledger.gate_facts`)."""

    __slots__ = ("events", "paused", "running", "summary")

    def __init__(self) -> None:
        self.summary: dict[str, PluginStats] = {}
        self.running: dict[str, Bead] = {}  # plugin -> its run in flight (data and ids, no labels)
        self.paused: dict[str, str] = {}  # plugin -> the operator's reason
        self.events: dict[str, float] = {}  # town event -> when it last came


ANY_LAST_RUN = -1


_BEAD_COLUMNS = "id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data"


class Ledger:
    """Thread-safe access to ``<town>/.gtui/ledger.db``.

    ``readonly`` opens the file for reading only: it is never created or
    migrated, reads never take a lock a writer waits on, and a ledger that
    does not exist yet reads as empty.  A writer waits at most ``wait``
    seconds for the write lock, then says who holds it when that is knowable.
    """

    def __init__(self, path: Path, *, readonly: bool = False, wait: float = 10.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.wait = wait
        self._memory = False  # read-only and no file yet: an empty in-memory ledger answers
        self._immutable = False  # read-only in a directory where not even the WAL index may be created
        self._local = threading.local()
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
        """Close this thread's connection (others close when their thread ends) and the writers' (reopened on the next write)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
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
        elif "readonly" in text or "unable to open" in text:
            problem = "cannot be written (check permissions of the file and its directory)"
        elif "full" in text or ("disk I/O error" in text and _disk_full(self.path.parent)):
            problem = f"disk full: no space left on the device of {self.path.parent}; nothing was recorded by this attempt"
        else:
            problem = text
        return LedgerError(f"ledger {self.path}: {problem}")

    def _os_error(self, exc: OSError, doing: str) -> LedgerError:
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

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Public form of the retried write transaction, for engine modules."""
        return self._retry(work)

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._connect().execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?" check."""
        return self.read("PRAGMA data_version")[0][0]

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
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

    def create(self, kind: str, **fields: Any) -> Bead:
        """Write one bead (and its labels) in its own transaction; ``fields`` as :func:`insert_bead`."""
        return self._retry(lambda conn: insert_bead(conn, kind, **fields))

    def get(self, bead_id: int, kind: str | None = None) -> Bead:
        with self.snapshot() as conn:
            bead = fetch_bead(conn, bead_id)
        if bead is None or (kind is not None and bead.kind != kind):
            raise NotFound(f"no {kind or 'record'} {format_ref(kind, bead_id) if kind else bead_id} on the ledger")
        return bead

    def beads(
        self,
        kind: str,
        *,
        status: str | Iterable[str] | None = None,
        label: str | None = None,
        plugin: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[Bead]:
        """Query beads of one kind, filtered, with their labels."""
        where, params = ["kind = ?"], [kind]
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
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
        with self.snapshot() as conn:
            rows = conn.execute(sql, params).fetchall()
            return attach_labels(conn, rows)

    def any_bead(self, kind: str, *, status: Iterable[str], label: str) -> bool:
        """Whether a bead of ``kind`` in one of ``status`` carries ``label``: one indexed lookup, no records built."""
        statuses = list(status)
        sql = (f"SELECT 1 FROM labels JOIN beads ON beads.id = labels.bead_id WHERE labels.label = ? AND beads.kind = ?"
               f" AND beads.status IN ({', '.join('?' * len(statuses))}) LIMIT 1")
        return bool(self.read(sql, [label, kind, *statuses]))

    def find(self, kinds: Iterable[str], *, labels: Iterable[str] = (), statuses: Iterable[str] | None = None,
             created_after: float | None = None, limit: int | None = None) -> list[Bead]:
        """Beads of several kinds carrying ALL of ``labels`` (exact labels), newest first: what ``bd list`` asks."""
        kinds = list(kinds)
        where = [f"kind IN ({', '.join('?' * len(kinds))})"]
        params: list[Any] = [*kinds]
        for label in dict.fromkeys(labels):
            where.append("id IN (SELECT bead_id FROM labels WHERE label = ?)")
            params.append(label)
        if statuses is not None:
            chosen = list(statuses)
            where.append(f"status IN ({', '.join('?' * len(chosen))})")
            params += chosen
        if created_after is not None:
            where.append("created_at > ?")
            params.append(created_after)
        sql = f"SELECT {_BEAD_COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self.snapshot() as conn:
            return attach_labels(conn, conn.execute(sql, params).fetchall())

    def by_ref(self, ref: str) -> Bead:
        """A bead of any kind by the id people and plugins pass around (``run-3``, ``note-4``, ``esc-2``)."""
        prefix, _, number = str(ref).strip().rpartition("-")
        kind = next((kind for kind, known in PREFIX.items() if known == prefix), None)
        if kind is None or not number.isdigit():
            raise NotFound(f"{ref!r} is not an id gtui knows (run-N, note-N, esc-N, mail-N, dig-N, evt-N)")
        return self.get(int(number), kind)

    def close_bead(self, bead: Bead, *, reason: str = "", now: float | None = None) -> Bead:
        """Close a note (``bd close``): runs and escalations have their own lifecycles."""
        stamp = time.time() if now is None else now

        def close(conn: sqlite3.Connection) -> Bead:
            current = fetch_bead(conn, bead.id)
            if current is None:
                raise NotFound(f"no record {bead.ref} on the ledger")
            if current.status != "closed":
                update_bead(conn, current, now=stamp, status="closed", data={**current.data, "close_reason": reason})
            return fetch_bead(conn, bead.id)  # type: ignore[return-value]

        return self._retry(close)

    # -- runs -------------------------------------------------------------------------

    def claim_run(
        self,
        plugin: str,
        rig: str,
        *,
        labels: Iterable[str] = (),
        data: dict[str, Any] | None = None,
        now: float | None = None,
        expect_last_run: int | None = ANY_LAST_RUN,
    ) -> Bead:
        """Record a run as ``running`` before it starts; refuse if one is in flight (see :func:`claiming`)."""
        return self._retry(claiming(plugin, rig, labels=labels, data=data, now=now, expect_last_run=expect_last_run))

    def close_run(self, run_id: int, result: str, *, data: dict[str, Any] | None = None, now: float | None = None,
                  summary: str | None = None) -> Bead:
        """Close a running wisp with its result; closing twice keeps the first result (see :func:`closing`)."""
        return self._retry(closing(run_id, result, data=data, now=now, summary=summary))

    def write_each(self, works: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """Several writes in one transaction, each in its own savepoint: the value of each, or the exception it raised.

        One write that raises is undone alone and answers with its exception;
        the others are committed together.  The dogs record every run that
        ended and claim every run that starts, in one commit per turn.  A
        failure of the whole transaction (a full disk, a lock held too long)
        is every write's answer.
        """
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

        if not works:
            return []
        if len(works) == 1:  # no other write to keep apart from: no savepoint
            try:
                return [self._retry(works[0])]
            except Exception as exc:
                return [exc]
        try:
            return self._retry(each)
        except LedgerError as exc:
            return [exc] * len(works)

    def report_run(self, run_id: int, token: str, report: Report, *, now: float | None = None) -> Bead:
        """Keep a plugin's own report of its run on the running wisp (the last report wins).

        Only the run's own processes know its token: a report from anywhere
        else (another run, a stale shell) is refused rather than mixed in.
        """
        stamp = time.time() if now is None else now

        def keep(conn: sqlite3.Connection) -> Bead:
            bead = fetch_bead(conn, run_id)
            if bead is None or bead.kind != "wisp":
                raise NotFound(f"no run {format_ref('wisp', run_id)} on the ledger")
            if not token or bead.data.get("token") != token:
                raise GtError(f"{bead.ref} is not the run this process belongs to (its GTUI_RUN_TOKEN does not match): report refused")
            if bead.status != "running":
                raise GtError(f"{bead.ref} has ended ({bead.result}): a report after the run is not taken")
            data = {**bead.data, "report": {**report.to_json(), "at": stamp}}
            conn.execute("UPDATE beads SET data = ?, updated_at = ? WHERE id = ?", (json.dumps(data), stamp, run_id))
            return fetch_bead(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def annotate_run(self, run_id: int, data: dict[str, Any]) -> None:
        """Merge facts learnt while a run is in flight (its pid) into its wisp."""
        self._retry(lambda conn: conn.execute(
            "UPDATE beads SET data = json_patch(data, ?) WHERE id = ? AND kind = 'wisp' AND status = 'running'",
            (json.dumps(data), run_id)))

    def runs(self, plugin: str | None = None, *, limit: int | None = 50, status: str | None = None) -> list[Bead]:
        """Run wisps, newest first."""
        return self.beads("wisp", plugin=plugin, limit=limit, status=status)

    def changed_runs(self, since: float, limit: int = 500) -> list[Bead]:
        """Run wisps claimed or closed at or after ``since``, oldest change first (the feed)."""
        with self.snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_BEAD_COLUMNS} FROM beads WHERE kind = 'wisp' AND updated_at >= ? ORDER BY updated_at, id LIMIT ?",
                (since, limit),
            ).fetchall()
            return attach_labels(conn, rows)

    def running_runs(self) -> list[Bead]:
        """Every run in flight, in any process."""
        return self.beads("wisp", status="running", limit=None)

    # -- town events and operator pauses ----------------------------------------------

    def emit_event(self, name: str, *, source: str = "", now: float | None = None) -> Bead:
        """Record that the town event ``name`` happened (event gates listen)."""
        return self.create("event", title=name, status="closed", labels=[f"event:{name}"], data={"source": source}, now=now)

    def emit_events(self, events: Iterable[tuple[str, float]], *, source: str) -> None:
        """Record several town events at their own times, in one transaction (a patrol reading Gas Town's log)."""
        listed = list(events)

        def record(conn: sqlite3.Connection) -> None:
            for name, at in listed:
                insert_bead(conn, "event", title=name, status="closed", labels=[f"event:{name}"], data={"source": source}, now=at)

        self._retry(record)

    def last_events(self) -> dict[str, float]:
        """When each town event was last emitted."""
        rows = self.read("SELECT title, max(created_at) FROM beads WHERE kind = 'event' AND plugin IS NULL GROUP BY title")
        return {name: at for name, at in rows}

    def set_paused(self, plugin: str, paused: bool, *, reason: str = "", now: float | None = None) -> Bead:
        """Pause or resume a plugin; the latest such record wins, and all stay as history."""
        title = "plugin.paused" if paused else "plugin.resumed"
        return self.create("event", title=title, status="closed", body=reason, plugin=plugin,
                           labels=[f"plugin:{plugin}"], now=now)

    def paused(self) -> dict[str, str]:
        """Plugins an operator paused, with the reason given."""
        rows = self.read(
            "SELECT plugin, title, body FROM beads WHERE id IN ("
            " SELECT max(id) FROM beads WHERE kind = 'event' AND title IN ('plugin.paused', 'plugin.resumed')"
            " GROUP BY plugin)"
        )
        return {plugin: body for plugin, title, body in rows if title == "plugin.paused"}

    def gate_facts(self) -> LedgerFacts:
        """Everything a patrol decides from, in ONE query: the per-plugin summary, the runs in flight (with what a
        reconcile needs of them), operator pauses and the last time each town event came."""
        facts = LedgerFacts()
        rows = self.read(
            "SELECT 's', plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary FROM plugin_stats"
            " UNION ALL SELECT 'r', plugin, id, created_at, rig, NULL, data, NULL FROM beads WHERE kind = 'wisp' AND status = 'running'"
            " UNION ALL SELECT 'p', plugin, title, body, NULL, NULL, NULL, NULL FROM beads WHERE id IN ("
            "   SELECT max(id) FROM beads WHERE kind = 'event' AND title IN ('plugin.paused', 'plugin.resumed') GROUP BY plugin)"
            " UNION ALL SELECT 'e', title, max(created_at), NULL, NULL, NULL, NULL, NULL FROM beads"
            "   WHERE kind = 'event' AND plugin IS NULL GROUP BY title")
        for tag, name, *rest in rows:
            if tag == "s":
                facts.summary[name] = PluginStats(name, *rest)
            elif tag == "r":
                run_id, created, rig, _, data, _ = rest
                facts.running[name] = Bead(run_id, "wisp", f"run {name}", "running", "", created, created, None, name, rig, "running",
                                           json.loads(data))
            elif tag == "p":
                if rest[0] == "plugin.paused":
                    facts.paused[name] = rest[1]
            else:
                facts.events[name] = rest[0]
        return facts

    def plugin_summary(self) -> dict[str, PluginStats]:
        """The summary of every plugin, in ONE query (see module docstring)."""
        rows = self.read("SELECT plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary"
                         " FROM plugin_stats")
        return {row[0]: PluginStats(*row) for row in rows}


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
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "POSIX" or not fields[4].isdigit():
            continue
        pid, inode = int(fields[4]), fields[5].rsplit(":", 1)[-1]
        if pid != me and inode.isdigit() and int(inode) in inodes:
            return f"held by pid {pid}: {_command_line(pid)}"
    return None


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


def insert_bead(
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
    if kind not in KINDS:
        raise ValueError(f"unknown bead kind {kind}")
    if kind == "wisp" and (not plugin or not result):
        raise ValueError("a wisp records a plugin run: it needs a plugin and a result")
    stamp = time.time() if now is None else now
    cursor = conn.execute(
        "INSERT INTO beads (kind, title, status, body, created_at, updated_at, plugin, rig, result, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, title, status, body, stamp, stamp, plugin, rig, result, json.dumps(data or {})),
    )
    bead_id = cursor.lastrowid
    unique = tuple(dict.fromkeys(labels))
    if unique:  # OR IGNORE: a wisp's own labels are the trigger's already
        conn.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", [(bead_id, label) for label in unique])
    return Bead(bead_id, kind, title, status, body, stamp, stamp, None, plugin, rig, result, dict(data or {}), unique)


def update_bead(
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
        (new_status, json.dumps(bead.data if data is None else data), now, closed_at, bead.id),
    )
    for key, value in (labels or {}).items():
        prefix = f"{key}:"
        conn.execute("DELETE FROM labels WHERE bead_id = ? AND substr(label, 1, ?) = ?", (bead.id, len(prefix), prefix))
        conn.execute("INSERT INTO labels VALUES (?, ?)", (bead.id, f"{key}:{value}"))


def claiming(plugin: str, rig: str, *, labels: Iterable[str] = (), data: dict[str, Any] | None = None, now: float | None = None,
             expect_last_run: int | None = ANY_LAST_RUN) -> Callable[[sqlite3.Connection], Bead]:
    """The write that records a run as ``running`` before it starts, refusing if one is in flight.

    The partial unique index ``one_running_run`` makes the refusal hold
    across every thread and process on the town.  ``expect_last_run`` is
    the plugin's last run id the gate decision was based on (None: never
    ran); if another run was claimed since, the claim fails with
    :class:`GateMoved` — two patrols seeing the same open gate run it once.
    The wisp keeps the plugin's previous result (``previous_result``, None
    for its first run): what follows a run knows whether it ends a streak.
    """
    own = ["type:plugin-run", f"plugin:{plugin}", f"rig:{rig}", "result:running"]  # written by the wisp_labels trigger
    extra = [label for label in dict.fromkeys(labels) if label not in own]

    def claim(conn: sqlite3.Connection) -> Bead:
        row = conn.execute("SELECT last_run_id, last_result FROM plugin_stats WHERE plugin = ?", (plugin,)).fetchone()
        latest, previous = row if row else (None, None)
        if expect_last_run != ANY_LAST_RUN and latest != expect_last_run:
            raise GateMoved(f"plugin {plugin} was run meanwhile ({format_ref('wisp', latest)})")
        try:
            run = insert_bead(conn, "wisp", title=f"run {plugin}", status="running", labels=extra,
                              data={**(data or {}), "previous_result": previous}, plugin=plugin, rig=rig, result="running", now=now)
            return run._replace(labels=(*own, *extra))
        except sqlite3.IntegrityError:
            raise RunInFlight(f"plugin {plugin} already has a run in flight") from None

    return claim


def closing(run_id: int, result: str, *, data: dict[str, Any] | None = None, now: float | None = None,
            summary: str | None = None) -> Callable[[sqlite3.Connection], Bead]:
    """The write that closes a running wisp with its result; closing twice keeps the first result.

    ``result`` is what the exit said; the plugin's own report on the wisp,
    read in the same transaction, may settle it otherwise (:func:`settle`).
    The summary (the report's, else ``summary``) becomes the wisp's body.
    """
    if result not in Result.__members__.values() or result == Result.RUNNING:
        raise ValueError(f"not a final result: {result}")
    stamp = time.time() if now is None else now

    def close(conn: sqlite3.Connection) -> Bead:
        bead = fetch_bead(conn, run_id)
        if bead is None or bead.kind != "wisp":
            raise NotFound(f"no run {format_ref('wisp', run_id)} on the ledger")
        if bead.status != "running":
            return bead
        merged = {**bead.data, **(data or {})}
        report = merged.get("report")
        final, note = settle(result, report)
        if report:
            merged["reported_result"] = report.get("result")
        if note:
            merged["reason"] = "; ".join(filter(None, [merged.get("reason"), note]))
        body = (report or {}).get("summary") or summary or ""
        conn.execute(
            "UPDATE beads SET status = 'closed', result = ?, body = ?, closed_at = ?, updated_at = ?, data = ? WHERE id = ?",
            (final, body, stamp, stamp, json.dumps(merged), run_id),
        )
        labels = {*bead.labels, f"result:{final}"} - {"result:running"}  # as the wisp_result_label trigger made them
        return bead._replace(status="closed", result=final, body=body, closed_at=stamp, updated_at=stamp, data=merged,
                             labels=tuple(sorted(labels)))

    return close


def fetch_bead(conn: sqlite3.Connection, bead_id: int) -> Bead | None:
    """One bead with its labels, in one query (every run's close reads its wisp)."""
    row = conn.execute(f"SELECT {_BEAD_COLUMNS}, (SELECT json_group_array(label) FROM labels WHERE bead_id = beads.id)"
                       " FROM beads WHERE id = ?", (bead_id,)).fetchone()
    if row is None:
        return None
    return Bead(*row[:11], data=json.loads(row[11]), labels=tuple(sorted(json.loads(row[12]))))


def attach_labels(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Bead]:
    """Turn bead rows into :class:`Bead` records with their labels (one extra query)."""
    if not rows:
        return []
    ids = [row[0] for row in rows]
    labels: dict[int, list[str]] = {bead_id: [] for bead_id in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for bead_id, label in conn.execute(f"SELECT bead_id, label FROM labels WHERE bead_id IN ({marks})", chunk):
            labels[bead_id].append(label)
    return [Bead(*row[:11], data=json.loads(row[11]), labels=tuple(sorted(labels[row[0]]))) for row in rows]
