"""The PostgreSQL ledger: the storage contract on a server every host of a town shares.

Chosen by ``GT_LEDGER_URL`` (``postgresql://...``).  The schema is the
SQLite one in PostgreSQL's words: ``jsonb`` data, the per-plugin summary
kept by triggers in the transaction that writes a run, one running run per
plugin by a partial unique index.  What SQLite gets from its single writer
PostgreSQL gets from locks: a claim takes a transaction-scoped advisory lock
on its plugin, or is refused when another host holds it (two hosts reading
the same last run cannot both claim), raising
an escalation one on its source and subject, and leasing deliveries takes
due rows ``FOR UPDATE SKIP LOCKED`` so hosts never wait on each other's
leases.  Every commit that touches beads notifies ``gtui_changes``
(:meth:`PgLedger.listen`, what wakes control rooms at once); what they poll
(:meth:`PgLedger.changes`) is the server's transaction snapshot, which moves
when a writer commits (a counter bumped inside the transaction would move
before the commit, and a reader who looked in between would miss it).

Connections are per thread.  A lost or refused connection is a
:class:`~gtcore.core.errors.LedgerError` of one line, with the password left out.

The operations both backends share are :mod:`gtcore.storage.sql_ledger`'s (in
:class:`~gtcore.storage.dialect.PostgresDialect`'s words), the schema is
:mod:`gtcore.storage.postgresql_schema`; this module holds the server's own:
connections, migrations under a lock, retried transactions, LISTEN, the
server's clock, the runs' logs and copying a ledger in.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from gtcore.core.beads import Bead, PluginStats
from gtcore.core.errors import GtError, LedgerError
from gtcore.storage.contract import EventMark, LedgerDump, LedgerFacts
from gtcore.storage.dialect import COLUMNS, PostgresDialect, Statements
from gtcore.storage.postgresql_schema import MIGRATIONS, SCHEMA_VERSION
from gtcore.storage.shared import LATEST_EVENTS, PAUSES, STATS_COLUMNS, pause_of, stored
from gtcore.storage.sql_ledger import SqlLedger

__all__ = ["SCHEMA_VERSION", "UNREACHABLE", "PgLedger"]

T = TypeVar("T")

# psycopg logs what it ignored on a lost connection ("error ignored terminating <psycopg.Pipeline [BAD]>"); without a
# handler Python prints that to the user's terminal as a stray line.  gtui says in its own words what a lost server costs.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


def _scalar(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of the one row a statement always returns (an expression, an aggregate, RETURNING)."""
    row = cursor.fetchone()
    assert row is not None, "a statement that always returns a row returned none"
    return row[0]


POSTGRESQL = PostgresDialect(Jsonb)
_FETCH = {lock: f"SELECT {COLUMNS} FROM beads WHERE id = %s" + (" FOR UPDATE" if lock else "") for lock in (False, True)}
_NOW = "SELECT extract(epoch FROM clock_timestamp())"
_RETRIED = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
UNREACHABLE = ("08", "57P")  # SQLSTATE classes of a connection lost or refused, and of a server shutting down or starting


class PgLedger(SqlLedger):
    """The ledger on a PostgreSQL server; see the module docstring."""

    shares_logs = True
    _d = POSTGRESQL
    _q = Statements(POSTGRESQL)
    _db_error = psycopg.Error
    _in_flight = psycopg.errors.UniqueViolation
    _refused_in_turn = (psycopg.errors.UniqueViolation,)
    _lone_write_bare = False  # a turn of one request is a turn too: it takes the run ends' lock first when it closes

    def __init__(self, url: str, *, readonly: bool = False, wait: float = 10.0) -> None:
        self.url, self.readonly, self.wait = url, readonly, wait
        self.where = _shown(url)
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._prepare()

    # -- connections and transactions ---------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.wait)))
            except psycopg.Error as exc:
                raise self._error(exc) from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _prepare(self) -> None:
        """Create the schema on first use, or bring an older one up to date (one host at a time, under an advisory lock);
        refuse a newer one."""
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('gtui schema'))")
                exists = _scalar(conn.execute("SELECT to_regclass('gtui_schema') IS NOT NULL"))
                version = _scalar(conn.execute("SELECT max(version) FROM gtui_schema")) if exists else None
                if version is not None and version > SCHEMA_VERSION:
                    raise LedgerError(f"ledger {self.where}: schema version {version} is newer than this gtui understands"
                                      f" ({SCHEMA_VERSION}); upgrade gtui")
                if version == SCHEMA_VERSION:
                    return
                if self.readonly:
                    raise LedgerError(f"ledger {self.where}: holds no gtui ledger yet, and a read-only gtui creates none" if version is None
                                      else f"ledger {self.where}: schema version {version} needs an upgrade to {SCHEMA_VERSION},"
                                      " which a read-only gtui does not write; run any gtui command that writes (gtui --once) once")
                for script in MIGRATIONS[version or 0:]:
                    conn.execute(script)
                conn.execute("INSERT INTO gtui_schema VALUES (%s)", (SCHEMA_VERSION,))
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def _error(self, exc: psycopg.Error) -> LedgerError:
        """One line: "cannot reach the server" only when the connection is at fault; anything else the server refused, as
        it said it (a statement it refused is no reason to look at the network)."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, psycopg.OperationalError) and (exc.sqlstate or "08").startswith(UNREACHABLE):
            return LedgerError(f"ledger {self.where}: cannot reach the server ({text}); nothing was recorded by this attempt,"
                               " the next patrol tries again")
        return LedgerError(f"ledger {self.where}: {text}")

    def _retry(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` in one transaction, again on a serialization failure or deadlock, for at most ``wait`` seconds."""
        if self.readonly:
            raise LedgerError(f"ledger {self.where}: opened read-only; this would write")
        deadline, delay = time.monotonic() + self.wait, 0.01
        while True:
            conn = self._connect()
            try:
                with conn.transaction():
                    return work(conn)
            except _RETRIED as exc:
                if time.monotonic() + delay >= deadline:
                    raise self._error(exc) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except psycopg.Error as exc:
                raise self._error(exc) from None

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield conn
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._connect().execute(sql, tuple(params)).fetchall()
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def changes(self) -> int:
        """The server's snapshot (oldest running transaction, next id, those in progress) as a number: it moves at every
        commit of a writer, after the commit."""
        return hash(self._read("SELECT pg_current_snapshot()::text")[0][0])

    def listen(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """LISTEN on a connection of its own, on a daemon thread; a lost connection is opened again a second later."""
        stop = threading.Event()

        def hear() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.wait))) as conn:
                        conn.execute("LISTEN gtui_changes")
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=1.0, stop_after=1):
                                on_change()
                except psycopg.Error:
                    stop.wait(1.0)

        threading.Thread(target=hear, name="ledger-listen", daemon=True).start()
        return stop.set


    def _fetch(self, conn: psycopg.Connection[Any], bead_id: int, *, lock: bool = False) -> Bead | None:
        row = conn.execute(_FETCH[lock], (bead_id,)).fetchone()
        return self._beads(conn, [row])[0] if row else None

    def _new_id(self, cursor: psycopg.Cursor[Any]) -> int:
        return int(_scalar(cursor))

    def _now(self, conn: psycopg.Connection[Any]) -> float:
        return float(_scalar(conn.execute(_NOW)))

    def _savepoint(self, conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
        return conn.transaction()  # inside the turn's transaction: a savepoint

    def _failable(self, conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
        return conn.transaction()  # a refused statement aborts the transaction: a savepoint keeps the rest

    def _keep_log(self, conn: psycopg.Connection[Any], run_id: int, log: str) -> None:
        conn.execute("INSERT INTO run_logs VALUES (%s, %s) ON CONFLICT (run_id) DO UPDATE SET text = excluded.text",
                     (run_id, POSTGRESQL.text(log)))

    def _logs(self, conn: psycopg.Connection[Any], beads: list[Bead]) -> dict[int, str]:
        return dict(conn.execute("SELECT run_id, text FROM run_logs WHERE run_id = ANY(%s)", ([bead.id for bead in beads],)))

    # -- what PostgreSQL answers its own way ----------------------------------------------

    def clock(self) -> float:
        """The server's clock, which every host of the town reads alike."""
        return float(self._read(_NOW)[0][0])

    def beat_kennel(self, host: str, pid: int, started_at: float, data: dict[str, Any]) -> float:
        """The heartbeat is the server's clock: every host judges it on the same clock."""
        return float(self._retry(lambda conn: _scalar(conn.execute(
            "INSERT INTO kennels VALUES (%s, %s, %s, extract(epoch FROM clock_timestamp()), %s) ON CONFLICT (host) DO UPDATE SET"
            " pid = excluded.pid, started_at = excluded.started_at, beat_at = excluded.beat_at, data = excluded.data RETURNING beat_at",
            (host, pid, started_at, POSTGRESQL.encode(data))))))

    def run_log(self, run_id: int) -> str | None:
        rows = self._read("SELECT text FROM run_logs WHERE run_id = %s", (run_id,))
        return rows[0][0] if rows else None

    def renew_leases(self, run_ids: list[int], lease: float) -> list[int]:
        """On the server's clock: a host whose clock jumped renews for as long as every other host reads it."""
        if not run_ids:
            return []
        renewed = self._retry(lambda conn: conn.execute(
            "UPDATE beads SET data = jsonb_set(data, '{lease_until}', to_jsonb(extract(epoch FROM clock_timestamp()) + %s))"
            " WHERE id = ANY(%s) AND status = 'running' RETURNING id", (lease, run_ids)).fetchall())
        still = {row[0] for row in renewed}
        return [run_id for run_id in run_ids if run_id not in still]

    def gate_facts(self) -> LedgerFacts:
        """One snapshot: the summary, the runs in flight, the pauses and the last events agree with each other."""
        facts = LedgerFacts()
        with self._snapshot() as conn:
            for row in conn.execute(f"SELECT {STATS_COLUMNS} FROM plugin_stats"):
                facts.summary[row[0]] = PluginStats(*row)
            for plugin, run_id, created, rig, status, data in conn.execute(
                    "SELECT plugin, id, created_at, rig, status, data FROM beads WHERE kind = 'wisp' AND status IN ('queued', 'running')"):
                facts.running[plugin] = Bead(run_id, "wisp", f"run {plugin}", status, "", created, created, None, plugin, rig, status,
                                             data)
            for plugin, *rest in conn.execute(PAUSES):
                facts.add_pause(plugin, pause_of(*rest))
            facts.events.update((name, EventMark(at, seq)) for name, at, seq in conn.execute(LATEST_EVENTS))
        return facts

    def load(self, parts: Iterable[LedgerDump]) -> int:
        """One transaction: the wisps' triggers count them as they come, then the source's summary replaces the count."""
        def write(conn: psycopg.Connection[Any]) -> int:
            if _scalar(conn.execute("SELECT EXISTS (SELECT 1 FROM beads)")):
                raise GtError(f"ledger {self.where}: already holds records; gtui copies only into an empty ledger")
            total, stats = 0, None
            for part in parts:
                total += _load_beads(conn, part)
                stats = part.stats if part.stats is not None else stats
            conn.execute("DELETE FROM plugin_stats")
            conn.cursor().executemany(f"INSERT INTO plugin_stats ({STATS_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                                      [tuple(row) for row in stats or []])
            conn.execute("SELECT setval(pg_get_serial_sequence('beads', 'id'), greatest((SELECT max(id) FROM beads), 1))")
            conn.execute("DELETE FROM run_ends")  # the copied runs ended before this ledger: no reader is owed them
            return total

        return self._retry(write)


def _shown(url: str) -> str:
    """The URL as messages show it: never the password."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", url)



def _load_beads(conn: psycopg.Connection[Any], part: LedgerDump) -> int:
    """One batch of a copy, ids kept: beads, their labels, the escalations' pending deliveries, the logs."""
    cursor = conn.cursor()
    cursor.executemany(f"INSERT INTO beads ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       [(*bead[:11], POSTGRESQL.encode(stored(bead.data))) for bead in part.beads])
    cursor.executemany("INSERT INTO labels VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       [(bead.id, label) for bead in part.beads for label in bead.labels])
    cursor.executemany("INSERT INTO deliveries (escalation_id, channel, severity, attempts, next_at) VALUES (%s, %s, %s, %s, %s)"
                       " ON CONFLICT DO NOTHING",
                       [(bead.id, item["channel"], item["severity"], item.get("attempts", 0), item["next_at"])
                        for bead in part.beads if bead.kind == "escalation" for item in bead.data.get("pending", [])])
    cursor.executemany("INSERT INTO run_logs VALUES (%s, %s)",
                       [(run_id, POSTGRESQL.text(text)) for run_id, text in (part.logs or {}).items()])
    return len(part.beads)
