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
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from gtcore.core.beads import Bead, Drift, PluginStats, Report, Result, format_ref
from gtcore.core.errors import GtError, LedgerError, NotFound, RunInFlight
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

T = TypeVar("T")

# psycopg logs what it ignored on a lost connection ("error ignored terminating <psycopg.Pipeline [BAD]>"); without a
# handler Python prints that to the user's terminal as a stray line.  gtui says in its own words what a lost server costs.
logging.getLogger("psycopg").addHandler(logging.NullHandler())

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gtui_schema (version INTEGER NOT NULL);
CREATE SEQUENCE ledger_changes;
CREATE TABLE beads (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    body        TEXT NOT NULL DEFAULT '',
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    closed_at   DOUBLE PRECISION,
    plugin      TEXT,
    rig         TEXT,
    result      TEXT,
    data        JSONB NOT NULL DEFAULT '{}'
);
CREATE TABLE labels (
    bead_id BIGINT NOT NULL REFERENCES beads(id) ON DELETE CASCADE,
    label   TEXT NOT NULL,
    PRIMARY KEY (bead_id, label)
);
CREATE INDEX labels_by_label ON labels(label, bead_id);
CREATE INDEX beads_by_kind ON beads(kind, status, created_at);
CREATE INDEX runs_by_plugin ON beads(plugin, created_at) WHERE kind = 'wisp';
CREATE INDEX beads_by_update ON beads(kind, updated_at);
CREATE UNIQUE INDEX one_running_run ON beads(plugin) WHERE kind = 'wisp' AND status = 'running';
CREATE TABLE plugin_stats (
    plugin          TEXT PRIMARY KEY,
    run_count       INTEGER NOT NULL,
    failure_count   INTEGER NOT NULL,
    last_run_id     BIGINT NOT NULL,
    last_started_at DOUBLE PRECISION NOT NULL,
    last_result     TEXT NOT NULL,
    last_summary    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE deliveries (
    id             BIGSERIAL PRIMARY KEY,
    escalation_id  BIGINT NOT NULL,
    channel        TEXT NOT NULL,
    severity       TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at        DOUBLE PRECISION NOT NULL,
    UNIQUE (escalation_id, channel, severity)
);
CREATE INDEX deliveries_due ON deliveries (next_at);
CREATE TABLE run_logs (
    run_id  BIGINT PRIMARY KEY REFERENCES beads(id) ON DELETE CASCADE,
    text    TEXT NOT NULL
);

CREATE FUNCTION wisp_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plugin_stats AS s VALUES (NEW.plugin, 1, (NEW.result IN ('failure', 'timeout'))::int, NEW.id, NEW.created_at,
                                          NEW.result, NEW.body)
    ON CONFLICT (plugin) DO UPDATE SET
        run_count = s.run_count + 1,
        failure_count = s.failure_count + excluded.failure_count,
        last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_result ELSE s.last_result END,
        last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                            THEN excluded.last_summary ELSE s.last_summary END,
        last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_run_id ELSE s.last_run_id END,
        last_started_at = greatest(s.last_started_at, excluded.last_started_at);
    INSERT INTO labels VALUES (NEW.id, 'type:plugin-run'), (NEW.id, 'plugin:' || NEW.plugin), (NEW.id, 'rig:' || NEW.rig),
                              (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER wisp_recorded AFTER INSERT ON beads FOR EACH ROW WHEN (NEW.kind = 'wisp') EXECUTE FUNCTION wisp_recorded();

CREATE FUNCTION wisp_result_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plugin_stats SET
        failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))::int - (OLD.result IN ('failure', 'timeout'))::int,
        last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
        last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
    WHERE plugin = NEW.plugin;
    DELETE FROM labels WHERE bead_id = NEW.id AND label = 'result:' || OLD.result;
    INSERT INTO labels VALUES (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads FOR EACH ROW
    WHEN (NEW.kind = 'wisp' AND NEW.result IS DISTINCT FROM OLD.result) EXECUTE FUNCTION wisp_result_changed();

CREATE FUNCTION ledger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('ledger_changes');
    PERFORM pg_notify('gtui_changes', '');  -- delivered at commit, one per transaction
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_changed AFTER INSERT OR UPDATE OR DELETE ON beads FOR EACH STATEMENT EXECUTE FUNCTION ledger_changed();
"""

_KENNEL = """
CREATE OR REPLACE FUNCTION ledger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gtui_changes', '');  -- delivered at commit, one per transaction
    RETURN NULL;
END $$;
DROP SEQUENCE ledger_changes;
DROP INDEX one_running_run;
CREATE UNIQUE INDEX one_run_in_flight ON beads(plugin) WHERE kind = 'wisp' AND status IN ('queued', 'running');
CREATE INDEX runs_in_flight ON beads(status, id) WHERE kind = 'wisp' AND status IN ('queued', 'running');
CREATE TABLE run_ends (
    seq     BIGSERIAL PRIMARY KEY,
    run_id  BIGINT NOT NULL
);
CREATE INDEX run_ends_by_run ON run_ends(run_id);
-- A number is taken under a lock held to the commit, so the numbers commit in their order: a reader that sees
-- end 11 has seen end 10 (a sequence alone hands out numbers in one order and commits them in another).
CREATE FUNCTION wisp_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('gtui run ends'));
    INSERT INTO run_ends (run_id) VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER wisp_ended AFTER UPDATE OF status ON beads FOR EACH ROW
    WHEN (NEW.kind = 'wisp' AND NEW.status = 'closed' AND OLD.status <> 'closed') EXECUTE FUNCTION wisp_ended();
CREATE TRIGGER wisp_recorded_ended AFTER INSERT ON beads FOR EACH ROW
    WHEN (NEW.kind = 'wisp' AND NEW.status = 'closed') EXECUTE FUNCTION wisp_ended();
CREATE TABLE readers (
    name  TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
CREATE TABLE kennels (
    host        TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    beat_at     DOUBLE PRECISION NOT NULL,
    data        JSONB NOT NULL DEFAULT '{}'
);
"""

_STREAK = """
ALTER TABLE plugin_stats ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION wisp_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plugin_stats AS s VALUES (NEW.plugin, 1, (NEW.result IN ('failure', 'timeout'))::int, NEW.id, NEW.created_at,
                                          NEW.result, NEW.body, (NEW.result IN ('failure', 'timeout', 'abandoned'))::int)
    ON CONFLICT (plugin) DO UPDATE SET
        run_count = s.run_count + 1,
        failure_count = s.failure_count + excluded.failure_count,
        failure_streak = CASE WHEN excluded.last_result IN ('success', 'warning', 'check-only') THEN 0
                              ELSE s.failure_streak + excluded.failure_streak END,
        last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_result ELSE s.last_result END,
        last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                            THEN excluded.last_summary ELSE s.last_summary END,
        last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_run_id ELSE s.last_run_id END,
        last_started_at = greatest(s.last_started_at, excluded.last_started_at);
    INSERT INTO labels VALUES (NEW.id, 'type:plugin-run'), (NEW.id, 'plugin:' || NEW.plugin), (NEW.id, 'rig:' || NEW.rig),
                              (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION wisp_result_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plugin_stats SET
        failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))::int - (OLD.result IN ('failure', 'timeout'))::int,
        failure_streak = CASE WHEN NEW.result IN ('success', 'warning', 'check-only') THEN 0
                              WHEN NEW.result IN ('failure', 'timeout', 'abandoned') AND OLD.result IN ('queued', 'running')
                                   AND coalesce(NEW.data->>'reason', '') NOT LIKE 'stopped:%'
                              THEN failure_streak + 1 ELSE failure_streak END,
        last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
        last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
    WHERE plugin = NEW.plugin;
    DELETE FROM labels WHERE bead_id = NEW.id AND label = 'result:' || OLD.result;
    INSERT INTO labels VALUES (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
""" + streak_backfill("b.data->>'reason'") + ";"
"""3: each plugin's failure streak (runs in a row that ended failure, timeout or abandoned, as they ended; a run a person
stopped is not counted), kept with the rest of its summary by the same triggers."""

_MIGRATIONS = [_SCHEMA, _KENNEL, _STREAK]
"""Each schema change, in order: a ledger at version N gets the ones after it (version 1 is the first schema)."""
SCHEMA_VERSION = len(_MIGRATIONS)
_ENDS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gtui run ends'))"  # see wisp_ended: taken first by every turn that closes

def _scalar(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of the one row a statement always returns (an expression, an aggregate, RETURNING)."""
    row = cursor.fetchone()
    assert row is not None, "a statement that always returns a row returned none"
    return row[0]


def _json(value: Any) -> Jsonb:
    """JSON for a ``jsonb`` column, which holds no NUL: one a plugin wrote becomes U+FFFD, anywhere in the value."""
    return Jsonb(_without_nul(value))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


def _text(value: str) -> str:
    """Text for a ``text`` column, which holds no NUL either."""
    return value.replace("\x00", "\ufffd")


_COLUMNS = "id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data"
_RETRIED = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
UNREACHABLE = ("08", "57P")  # SQLSTATE classes of a connection lost or refused, and of a server shutting down or starting


class PgLedger(Ledger):
    """The ledger on a PostgreSQL server; see the module docstring."""

    shares_logs = True

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
                for script in _MIGRATIONS[version or 0:]:
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

    # -- beads --------------------------------------------------------------------------

    def create(self, kind: str, *, title: str = "", status: str = "open", body: str = "", labels: Iterable[str] = (),
               data: dict[str, Any] | None = None, plugin: str | None = None, rig: str | None = None,
               result: str | None = None, now: float | None = None) -> Bead:
        return self._retry(lambda conn: _insert(conn, kind, title=title, status=status, body=body, labels=labels, data=data,
                                                plugin=plugin, rig=rig, result=result, now=now))

    def fetch(self, bead_id: int) -> Bead | None:
        with self._snapshot() as conn:
            return _fetch(conn, bead_id)

    def beads(self, kind: str, *, status: str | Iterable[str] | None = None, label: str | None = None, plugin: str | None = None,
              limit: int | None = None, newest_first: bool = True) -> list[Bead]:
        where = ["kind = %s"]
        params: list[Any] = [kind]
        if status is not None:
            where.append("status = ANY(%s)")
            params.append([status] if isinstance(status, str) else list(status))
        if label is not None:
            where.append("id IN (SELECT bead_id FROM labels WHERE label = %s)")
            params.append(label)
        if plugin is not None:
            where.append("plugin = %s")
            params.append(plugin)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at {order}, id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._snapshot() as conn:
            return _with_labels(conn, conn.execute(sql, params).fetchall())

    def any_bead(self, kind: str, *, status: Iterable[str], label: str) -> bool:
        return bool(self._read("SELECT 1 FROM labels JOIN beads ON beads.id = labels.bead_id WHERE labels.label = %s"
                               " AND beads.kind = %s AND beads.status = ANY(%s) LIMIT 1", (label, kind, list(status))))

    def find(self, kinds: Iterable[str], *, labels: Iterable[str] = (), statuses: Iterable[str] | None = None,
             created_after: float | None = None, limit: int | None = None) -> list[Bead]:
        where = ["kind = ANY(%s)"]
        params: list[Any] = [list(kinds)]
        for label in dict.fromkeys(labels):
            where.append("id IN (SELECT bead_id FROM labels WHERE label = %s)")
            params.append(label)
        if statuses is not None:
            where.append("status = ANY(%s)")
            params.append(list(statuses))
        if created_after is not None:
            where.append("created_at > %s")
            params.append(created_after)
        sql = f"SELECT {_COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._snapshot() as conn:
            return _with_labels(conn, conn.execute(sql, params).fetchall())

    def close_bead(self, bead: Bead, *, reason: str = "", now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def close(conn: psycopg.Connection[Any]) -> Bead:
            current = _fetch(conn, bead.id, lock=True)
            if current is None:
                raise NotFound(f"no such record: {bead.ref} is not on the ledger")
            if current.status != "closed":
                _update(conn, current, now=stamp, status="closed", data={**current.data, "close_reason": reason})
            return _fetch(conn, bead.id)  # type: ignore[return-value]

        return self._retry(close)

    # -- runs ---------------------------------------------------------------------------

    def clock(self) -> float:
        """The server's clock, which every host of the town reads alike."""
        return float(self._read("SELECT extract(epoch FROM clock_timestamp())")[0][0])

    def record_turn(self, closes: list[Close], claims: list[Claim], takes: Iterable[Take] = ()) -> list[Bead | Exception]:
        works = [_closing(close) for close in closes] + [_claiming(claim) for claim in claims] + [_taking(take) for take in takes]

        def each(conn: psycopg.Connection[Any]) -> list[Any]:
            if closes:
                conn.execute(_ENDS_LOCK)  # before any row lock: two turns closing runs never wait on each other crosswise
            answers: list[Any] = []
            for work in works:
                try:
                    with conn.transaction():  # a savepoint inside the turn's transaction
                        answers.append(work(conn))
                except psycopg.errors.UniqueViolation:
                    answers.append(RunInFlight("a run of this plugin is already in flight"))
                except psycopg.Error:
                    raise
                except Exception as exc:
                    answers.append(exc)
            return answers

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
        return list(map(RunState._make, self._read(
            "SELECT id, status, closed_at, EXISTS (SELECT 1 FROM labels WHERE bead_id = beads.id AND label = %s) FROM beads"
            " WHERE kind = 'wisp' AND id = ANY(%s)", (OWED, run_ids))))

    def fetch_runs(self, run_ids: list[int]) -> list[Bead]:
        with self._snapshot() as conn:
            return _with_labels(conn, _run_rows(conn, run_ids))

    def bare_runs(self, run_ids: list[int]) -> list[Bead]:
        with self._snapshot() as conn:
            return [Bead.from_row(row, row[11]) for row in _run_rows(conn, run_ids)]

    def request_stop(self, run_id: int, reason: str, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def stop(conn: psycopg.Connection[Any]) -> Bead:
            conn.execute(_ENDS_LOCK)
            bead = _fetch(conn, run_id, lock=True)
            if bead is None or bead.kind != "wisp":
                raise NotFound(f"no such run: {format_ref('wisp', run_id)} is not on the ledger")
            if bead.status == Result.QUEUED:
                return _closing(Close(run_id, Result.ABANDONED, {"reason": f"{STOPPED_QUEUED}: {reason}"}, stamp))(conn)
            if bead.status == Result.RUNNING:
                conn.execute("UPDATE beads SET data = jsonb_set(data, '{stop}', %s), updated_at = %s WHERE id = %s",
                             (_json(stop_note(reason, stamp)), stamp, run_id))
                return _fetch(conn, run_id)  # type: ignore[return-value]
            return bead

        return self._retry(stop)

    def stop_requests(self, run_ids: list[int]) -> dict[int, str]:
        if not run_ids:
            return {}
        rows = self._read("SELECT id, data->'stop'->>'reason' FROM beads WHERE id = ANY(%s) AND status = 'running' AND data ? 'stop'",
                          (run_ids,))
        return {run_id: reason or "" for run_id, reason in rows}

    def take_finished(self, reader: str, limit: int) -> tuple[list[Bead], bool]:
        def take(conn: psycopg.Connection[Any]) -> tuple[list[Bead], bool]:
            conn.execute("INSERT INTO readers VALUES (%s, 0) ON CONFLICT DO NOTHING", (reader,))
            after = _scalar(conn.execute("SELECT seq FROM readers WHERE name = %s FOR UPDATE", (reader,)))
            ends = conn.execute("SELECT seq, run_id FROM run_ends WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit + 1)).fetchall()
            more = len(ends) > limit
            ends = ends[:limit]
            if not ends:
                return [], False
            conn.execute("UPDATE readers SET seq = %s WHERE name = %s", (ends[-1][0], reader))
            ids = [run_id for _, run_id in ends]
            found = {bead.id: bead for bead in _with_labels(conn, conn.execute(
                f"SELECT {_COLUMNS} FROM beads WHERE id = ANY(%s)", (ids,)).fetchall())}
            return [found[run_id] for run_id in ids if run_id in found], more

        return self._retry(take)

    # -- kennels --------------------------------------------------------------------------

    def beat_kennel(self, host: str, pid: int, started_at: float, data: dict[str, Any]) -> float:
        """The heartbeat is the server's clock: every host judges it on the same clock."""
        return float(self._retry(lambda conn: _scalar(conn.execute(
            "INSERT INTO kennels VALUES (%s, %s, %s, extract(epoch FROM clock_timestamp()), %s) ON CONFLICT (host) DO UPDATE SET"
            " pid = excluded.pid, started_at = excluded.started_at, beat_at = excluded.beat_at, data = excluded.data RETURNING beat_at",
            (host, pid, started_at, _json(data))))))

    def kennels(self) -> list[KennelBeat]:
        return [KennelBeat(*row) for row in self._read("SELECT host, pid, started_at, beat_at, data FROM kennels ORDER BY host")]

    def forget_kennel(self, host: str, pid: int) -> None:
        self._retry(lambda conn: conn.execute("DELETE FROM kennels WHERE host = %s AND pid = %s", (host, pid)))

    def report_run(self, run_id: int, token: str, report: Report, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def keep(conn: psycopg.Connection[Any]) -> Bead:
            bead = reporting_run(_fetch(conn, run_id, lock=True), run_id, token, "report")
            relabel = reported(bead, report, stamp)
            conn.execute("UPDATE beads SET data = %s, updated_at = %s WHERE id = %s", (_json(relabel.data), stamp, run_id))
            conn.execute("DELETE FROM labels WHERE bead_id = %s AND label = ANY(%s)", (run_id, list(relabel.drop)))
            conn.cursor().executemany("INSERT INTO labels VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                      [(run_id, _text(label)) for label in relabel.add])
            return _fetch(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def note_drift(self, run_id: int, token: str, drift: Drift, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def keep(conn: psycopg.Connection[Any]) -> Bead:
            bead = reporting_run(_fetch(conn, run_id, lock=True), run_id, token, "drift note")
            conn.execute("UPDATE beads SET data = %s, updated_at = %s WHERE id = %s",
                         (_json(with_drift(bead, drift, stamp)), stamp, run_id))
            return _fetch(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def record_receipt(self, receipt: Receipt) -> Bead:
        wisp = receipt_wisp(receipt)

        def write(conn: psycopg.Connection[Any]) -> Bead:
            bead = _insert(conn, "wisp", title=f"run {receipt.plugin}", status="closed", body=wisp.body, labels=wisp.labels,
                           data=wisp.data, plugin=receipt.plugin, rig=receipt.rig, result=wisp.result, now=wisp.at)
            conn.execute("UPDATE beads SET closed_at = %s WHERE id = %s", (wisp.at, bead.id))
            return _fetch(conn, bead.id)  # type: ignore[return-value]

        return self._retry(write)

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

    def settle_follow_up(self, run_id: int, escalation: str | None = None) -> None:
        def settle(conn: psycopg.Connection[Any]) -> None:
            conn.execute("DELETE FROM labels WHERE bead_id = %s AND label = %s", (run_id, OWED))
            if escalation is not None:
                conn.execute("UPDATE beads SET data = jsonb_set(data, '{escalation}', to_jsonb(%s::text)) WHERE id = %s",
                             (escalation, run_id))

        self._retry(settle)

    def owed_follow_ups(self) -> list[Bead]:
        columns = ", ".join(f"beads.{column.strip()}" for column in _COLUMNS.split(","))
        with self._snapshot() as conn:
            rows = conn.execute(f"SELECT {columns} FROM labels JOIN beads ON beads.id = labels.bead_id WHERE labels.label = %s"
                                " AND beads.kind = 'wisp' AND beads.status = 'closed' ORDER BY beads.id", (OWED,)).fetchall()
            return _with_labels(conn, rows)

    def changed_runs(self, since: float, limit: int = 500) -> list[Bead]:
        with self._snapshot() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM beads WHERE kind = 'wisp' AND updated_at >= %s ORDER BY updated_at, id"
                                " LIMIT %s", (since, limit)).fetchall()
            return _with_labels(conn, rows)

    # -- town events, pauses and the gates' facts ---------------------------------------

    def emit_events(self, events: Iterable[tuple[str, float]], *, source: str) -> None:
        listed = list(events)

        def record(conn: psycopg.Connection[Any]) -> None:
            for name, at in listed:
                _insert(conn, "event", title=name, status="closed", labels=[f"event:{name}"], data={"source": source}, now=at)

        self._retry(record)

    def last_events(self) -> dict[str, EventMark]:
        return {name: EventMark(at, seq) for name, at, seq in self._read(LATEST_EVENTS)}

    def pauses(self) -> dict[str, Pause]:
        found = ((plugin, pause_of(*rest)) for plugin, *rest in self._read(PAUSES))
        return {plugin: pause for plugin, pause in found if pause is not None}

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

    def plugin_summary(self) -> dict[str, PluginStats]:
        rows = self._read(f"SELECT {STATS_COLUMNS} FROM plugin_stats")
        return {row[0]: PluginStats(*row) for row in rows}

    # -- escalations and their deliveries -----------------------------------------------

    def raise_escalation(self, subject: str, source: str, *, fresh: Callable[[], EscalationChange],
                         again: Callable[[Bead], EscalationChange], labels: Iterable[str], now: float,
                         fingerprint: str | None = None) -> tuple[Bead, bool]:
        """Serialised by an advisory lock on what makes two raises the same escalation (its fingerprint, else source and
        subject).  A close takes no such lock: the unclosed one is found ``FOR UPDATE``, so a close committed meanwhile is
        seen (the row is read again, and a closed one no longer matches) and never counted again."""
        same = sameness(subject, source, fingerprint)
        titled = "" if same.title is None else " AND title = %s"
        params = (same.label,) if same.title is None else (same.label, same.title)

        def write(conn: psycopg.Connection[Any]) -> tuple[Bead, bool]:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (same.lock,))
            row = conn.execute("SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed'"
                               f" AND id IN (SELECT bead_id FROM labels WHERE label = %s){titled} ORDER BY id DESC LIMIT 1"
                               " FOR UPDATE", params).fetchone()
            if row is not None:
                existing = _fetch(conn, row[0])
                assert existing is not None
                return _apply(conn, existing, again(existing), now), False
            change = fresh()
            bead = _insert(conn, "escalation", title=subject, body=change.body or "", labels=labels, data=change.data, now=now)
            return _apply(conn, bead, change._replace(body=None), now), True

        return self._retry(write)

    def change_escalation(self, escalation_id: int, change: Callable[[Bead], EscalationChange | None], *, now: float) -> Bead:
        def write(conn: psycopg.Connection[Any]) -> Bead:
            bead = _fetch(conn, escalation_id, lock=True)
            if bead is None or bead.kind != "escalation":
                raise NotFound(f"no such escalation: {format_ref('escalation', escalation_id)} is not on the ledger")
            decided = change(bead)
            return bead if decided is None else _apply(conn, bead, decided, now)

        return self._retry(write)

    def lease_deliveries(self, now: float, lease: float, *, route: Callable[[Bead, str], EscalationChange],
                         only: int | None = None) -> list[Delivery]:
        """Due rows taken ``FOR UPDATE SKIP LOCKED``: a row another host is leasing right now is simply not this host's."""
        scope = "" if only is None else " AND escalation_id = %s"
        params: tuple[Any, ...] = () if only is None else (only,)
        live = " AND escalation_id IN (SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed')"

        def write(conn: psycopg.Connection[Any]) -> list[Delivery]:
            held = conn.execute(f"SELECT id, escalation_id, severity FROM deliveries WHERE channel = %s{live}{scope}"
                                " FOR UPDATE SKIP LOCKED", (ROUTE_LATER, *params)).fetchall()
            for row_id, escalation_id, severity in held:
                conn.execute("DELETE FROM deliveries WHERE id = %s", (row_id,))
                bead = _fetch(conn, escalation_id, lock=True)
                assert bead is not None
                _apply(conn, bead, route(bead, severity), now)
            due = conn.execute(f"SELECT id, escalation_id, channel, severity, attempts, next_at FROM deliveries"
                               f" WHERE next_at <= %s AND channel != %s{live}{scope} ORDER BY id FOR UPDATE SKIP LOCKED",
                               (now, ROUTE_LATER, *params)).fetchall()
            if due:
                conn.execute("UPDATE deliveries SET next_at = %s WHERE id = ANY(%s)", (now + lease, [row[0] for row in due]))
            return [Delivery(*row[1:]) for row in due]

        return self._retry(write)

    def record_delivery(self, delivery: Delivery, error: str | None, *, now: float, retry_at: float | None) -> None:
        key = (delivery.escalation_id, delivery.channel, delivery.severity)

        def write(conn: psycopg.Connection[Any]) -> None:
            bead = _fetch(conn, delivery.escalation_id, lock=True)
            if bead is None:
                return
            _update(conn, bead, now=now, data=with_outcome(bead, delivery, error, now))
            if error is None or retry_at is None:
                conn.execute("DELETE FROM deliveries WHERE escalation_id = %s AND channel = %s AND severity = %s", key)
            else:
                conn.execute("UPDATE deliveries SET attempts = %s, next_at = %s WHERE escalation_id = %s AND channel = %s"
                             " AND severity = %s", (delivery.attempts + 1, retry_at, *key))

        self._retry(write)

    # -- copying -------------------------------------------------------------------------

    def dump(self, batch: int = 5000) -> Iterator[LedgerDump]:
        after = 0
        while True:
            with self._snapshot() as conn:
                beads = _with_labels(conn, conn.execute(f"SELECT {_COLUMNS} FROM beads WHERE id > %s ORDER BY id LIMIT %s",
                                                        (after, batch)).fetchall())
                logs = dict(conn.execute("SELECT run_id, text FROM run_logs WHERE run_id = ANY(%s)", ([bead.id for bead in beads],)))
            if len(beads) < batch:
                yield LedgerDump(beads, logs, stats=list(self.plugin_summary().values()))
                return
            yield LedgerDump(beads, logs)
            after = beads[-1].id

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

    # -- digests and retention -----------------------------------------------------------

    def squash_day(self, title: str, plugins: list[str], start: float, end: float,
                   fold: Callable[[list[FinishedRun], Bead | None], DigestDraft], *, dry_run: bool, now: float) -> Squash:
        def squash(conn: psycopg.Connection[Any]) -> Squash:
            if not dry_run:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"digest:{title}",))
            rows = conn.execute("SELECT id, created_at, plugin, result, data->'duration_s', data->'reason', data->'log' FROM beads"
                                " WHERE kind = 'wisp' AND status = 'closed' AND created_at >= %s AND created_at < %s"
                                " AND plugin = ANY(%s)", (start, end, plugins)).fetchall()
            runs = [FinishedRun._make(row) for row in rows]
            row = conn.execute("SELECT id FROM beads WHERE kind = 'digest' AND title = %s ORDER BY id LIMIT 1", (title,)).fetchone()
            existing = _fetch(conn, row[0]) if row else None
            if not runs:
                return Squash(runs, existing, existing)
            draft = fold(runs, existing)
            if dry_run:
                return Squash(runs, existing, None)
            if existing is None:
                digest = _insert(conn, "digest", title=title, status="closed", body=draft.body, data=draft.data,
                                 labels=draft.labels, now=now)
            else:
                _update(conn, existing, now=now, data=draft.data)
                conn.execute("UPDATE beads SET body = %s WHERE id = %s", (_text(draft.body), existing.id))
                digest = existing
            _delete(conn, [run.id for run in runs])
            return Squash(runs, existing, digest)

        if dry_run:
            with self._snapshot() as conn:
                return squash(conn)
        return self._retry(squash)

    def run_days(self, plugins: list[str], before: float) -> list[int]:
        rows = self._read("SELECT DISTINCT floor(created_at / 86400)::bigint FROM beads WHERE kind = 'wisp' AND status = 'closed'"
                          " AND created_at < %s AND plugin = ANY(%s)", (before, plugins))
        return [row[0] for row in rows]

    def digest_beads(self, plugin: str | None = None, limit: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        sql, params = "SELECT id, title, data FROM beads WHERE kind = 'digest'", []
        if plugin is not None:
            sql += " AND data->'plugins' ? %s"
            params.append(plugin)
        sql += " ORDER BY title DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [(bead_id, title, data) for bead_id, title, data in self._read(sql, params)]

    def prune_runs(self, cutoff: float, keep: list[str], only: list[str] | None, batch: int) -> list[str | None]:
        where = ""
        params: list[Any] = [cutoff]
        if keep:
            where += " AND NOT (plugin = ANY(%s))"
            params.append(keep)
        if only is not None:
            where += " AND plugin = ANY(%s)"
            params.append(only)

        def delete(conn: psycopg.Connection[Any]) -> list[str | None]:
            rows = conn.execute("SELECT id, data->>'log' FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < %s"
                                + where + f" LIMIT {int(batch)} FOR UPDATE SKIP LOCKED", params).fetchall()
            _delete(conn, [row[0] for row in rows])
            return [row[1] for row in rows]

        return self._retry(delete)


def _shown(url: str) -> str:
    """The URL as messages show it: never the password."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", url)


def _insert(conn: psycopg.Connection[Any], kind: str, *, title: str = "", status: str = "open", body: str = "",
            labels: Iterable[str] = (), data: dict[str, Any] | None = None, plugin: str | None = None, rig: str | None = None,
            result: str | None = None, now: float | None = None) -> Bead:
    check_bead(kind, plugin, result)
    stamp = time.time() if now is None else now
    bead_id = _scalar(conn.execute(
        "INSERT INTO beads (kind, title, status, body, created_at, updated_at, plugin, rig, result, data)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, _text(title), status, _text(body), stamp, stamp, plugin, rig, result, _json(stored(data or {})))))
    unique = tuple(dict.fromkeys(map(capped_label, labels)))
    if unique:
        conn.cursor().executemany("INSERT INTO labels VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                  [(bead_id, _text(label)) for label in unique])
    return Bead(bead_id, kind, title, status, body, stamp, stamp, None, plugin, rig, result, dict(data or {}), unique)


def _update(conn: psycopg.Connection[Any], bead: Bead, *, now: float, status: str | None = None, data: dict[str, Any] | None = None,
            labels: dict[str, str] | None = None) -> None:
    new_status = status or bead.status
    closed_at = now if new_status == "closed" and bead.status != "closed" else bead.closed_at
    conn.execute("UPDATE beads SET status = %s, data = %s, updated_at = %s, closed_at = %s WHERE id = %s",
                 (new_status, _json(stored(bead.data if data is None else data)), now, closed_at, bead.id))
    for key, value in (labels or {}).items():
        conn.execute("DELETE FROM labels WHERE bead_id = %s AND starts_with(label, %s)", (bead.id, f"{key}:"))
        conn.execute("INSERT INTO labels VALUES (%s, %s)", (bead.id, f"{key}:{value}"))


def _apply(conn: psycopg.Connection[Any], bead: Bead, change: EscalationChange, now: float) -> Bead:
    _update(conn, bead, now=now, data=change.data, status=change.status, labels=change.labels)
    if change.body is not None:
        conn.execute("UPDATE beads SET body = %s WHERE id = %s", (_text(change.body), bead.id))
    if change.drop_pending:
        conn.execute("DELETE FROM deliveries WHERE escalation_id = %s", (bead.id,))
    if change.queue:
        conn.cursor().executemany("INSERT INTO deliveries (escalation_id, channel, severity, attempts, next_at)"
                                  " VALUES (%s, %s, %s, 0, %s) ON CONFLICT DO NOTHING",
                                  [(bead.id, channel, severity, now) for channel, severity in change.queue])
    return _fetch(conn, bead.id)  # type: ignore[return-value]


def _claiming(claim: Claim) -> Callable[[psycopg.Connection[Any]], Bead]:
    """As SQLite's, with the plugin's advisory lock held from the read of its last run to the insert.

    The lock is only tried: a claim that finds it taken is refused at once
    (another host is claiming the plugin right now), so hosts claiming several
    plugins per turn never wait on each other, let alone deadlock.
    """
    plugin, rig = claim.plugin, claim.rig
    own, extra = claim_labels(claim)

    def write(conn: psycopg.Connection[Any]) -> Bead:
        if not _scalar(conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"claim:{plugin}",))):
            raise RunInFlight(f"plugin {plugin} is being claimed by another process")  # never wait: it would run it
        row = conn.execute("SELECT last_run_id, last_result FROM plugin_stats WHERE plugin = %s", (plugin,)).fetchone()
        latest, previous = row if row else (None, None)
        refuse_moved(claim, latest)
        server_now = float(_scalar(conn.execute("SELECT extract(epoch FROM clock_timestamp())")))
        try:
            with conn.transaction():
                run = _insert(conn, "wisp", title=f"run {plugin}", status="queued", labels=extra,
                              data={**(claim.data or {}), "previous_result": previous, "queued_at": server_now}, plugin=plugin,
                              rig=rig, result="queued", now=claim.now)
        except psycopg.errors.UniqueViolation:
            raise RunInFlight(f"plugin {plugin} already has a run in flight") from None
        return run._replace(labels=(*own, *extra))

    return write


def _taking(take: Take) -> Callable[[psycopg.Connection[Any]], Bead]:
    """As SQLite's, the queued row held from its read to the write: of two kennels taking one run, the second finds it running."""
    stamp = time.time() if take.now is None else take.now

    def write(conn: psycopg.Connection[Any]) -> Bead:
        bead = _fetch(conn, take.run_id, lock=True)
        if bead is None or bead.kind != "wisp":
            raise NotFound(f"no such run: {format_ref('wisp', take.run_id)} is not on the ledger")
        server_now = float(_scalar(conn.execute("SELECT extract(epoch FROM clock_timestamp())")))
        running = taken(bead, take, stamp, server_now + take.lease)
        conn.execute("UPDATE beads SET status = 'running', result = 'running', updated_at = %s, data = %s WHERE id = %s",
                     (stamp, _json(running.data), take.run_id))
        return running

    return write


def _closing(request: Close) -> Callable[[psycopg.Connection[Any]], Bead]:
    """As SQLite's; the log goes with the close, for every host to read."""
    run_id = request.run_id
    stamp = check_final(request)

    def write(conn: psycopg.Connection[Any]) -> Bead:
        bead = _fetch(conn, run_id, lock=True)
        if bead is None or bead.kind != "wisp":
            raise NotFound(f"no such run: {format_ref('wisp', run_id)} is not on the ledger")
        if bead.status not in IN_FLIGHT:
            return bead
        done = closed(bead, request)
        conn.execute("UPDATE beads SET status = 'closed', result = %s, body = %s, closed_at = %s, updated_at = %s, data = %s"
                     " WHERE id = %s", (done.result, _text(done.body), stamp, stamp, _json(done.data), run_id))
        if done.owed:
            conn.execute("INSERT INTO labels VALUES (%s, %s) ON CONFLICT DO NOTHING", (run_id, OWED))
        if request.log is not None:
            conn.execute("INSERT INTO run_logs VALUES (%s, %s) ON CONFLICT (run_id) DO UPDATE SET text = excluded.text",
                         (run_id, _text(request.log)))
        return done.bead(bead, stamp)

    return write


def _fetch(conn: psycopg.Connection[Any], bead_id: int, *, lock: bool = False) -> Bead | None:
    """One bead with its labels (``lock``: its row held until the transaction ends); an escalation with its deliveries."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM beads WHERE id = %s" + (" FOR UPDATE" if lock else ""), (bead_id,)).fetchone()
    return _with_labels(conn, [row])[0] if row else None


def _run_rows(conn: psycopg.Connection[Any], run_ids: list[int]) -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT {_COLUMNS} FROM beads WHERE kind = 'wisp' AND id = ANY(%s)", (run_ids,)).fetchall()


def _with_labels(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> list[Bead]:
    if not rows:
        return []
    ids = [row[0] for row in rows]
    labels: dict[int, list[str]] = {bead_id: [] for bead_id in ids}
    for bead_id, label in conn.execute("SELECT bead_id, label FROM labels WHERE bead_id = ANY(%s)", (ids,)):
        labels[bead_id].append(label)
    escalations = [row[0] for row in rows if row[1] == "escalation"]
    pending: dict[int, list[dict[str, Any]]] = {bead_id: [] for bead_id in escalations}
    if escalations:
        for escalation_id, channel, severity, attempts, next_at in conn.execute(
                "SELECT escalation_id, channel, severity, attempts, next_at FROM deliveries WHERE escalation_id = ANY(%s)"
                " ORDER BY id", (escalations,)):
            pending[escalation_id].append({"channel": channel, "severity": severity, "attempts": attempts, "next_at": next_at})
    beads = []
    for row in rows:
        data = row[11] if row[1] != "escalation" else {**row[11], "pending": pending[row[0]]}
        beads.append(Bead.from_row(row, data, tuple(sorted(labels[row[0]]))))
    return beads


def _load_beads(conn: psycopg.Connection[Any], part: LedgerDump) -> int:
    """One batch of a copy, ids kept: beads, their labels, the escalations' pending deliveries, the logs."""
    cursor = conn.cursor()
    cursor.executemany(f"INSERT INTO beads ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       [(*bead[:11], _json(stored(bead.data))) for bead in part.beads])
    cursor.executemany("INSERT INTO labels VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       [(bead.id, label) for bead in part.beads for label in bead.labels])
    cursor.executemany("INSERT INTO deliveries (escalation_id, channel, severity, attempts, next_at) VALUES (%s, %s, %s, %s, %s)"
                       " ON CONFLICT DO NOTHING",
                       [(bead.id, item["channel"], item["severity"], item.get("attempts", 0), item["next_at"])
                        for bead in part.beads if bead.kind == "escalation" for item in bead.data.get("pending", [])])
    cursor.executemany("INSERT INTO run_logs VALUES (%s, %s)",
                       [(run_id, _text(text)) for run_id, text in (part.logs or {}).items()])
    return len(part.beads)


def _delete(conn: psycopg.Connection[Any], ids: list[int]) -> None:
    if ids:
        conn.execute("DELETE FROM labels WHERE bead_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM run_ends WHERE run_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM beads WHERE id = ANY(%s)", (ids,))
