"""The ledger's operations written once over SQL: every method both backends share, in :class:`gtcore.storage.dialect.Statements`'
statements and :mod:`gtcore.storage.dialect`'s spellings.

A backend (:mod:`gtcore.storage.sqlite`, :mod:`gtcore.storage.postgresql`)
brings what truly differs: its connections and transactions (``_retry`` for a
write, ``_snapshot`` for a consistent read, ``_read`` for one statement), how
it reads one bead, the ledger's clock inside a transaction, its savepoints,
and the operations it answers in its own way (the gates' facts, heartbeats,
leases, copying).  The decisions themselves live in :mod:`gtcore.storage.shared`.
"""

from __future__ import annotations

import time
from abc import abstractmethod

from gtcore.core.beads import NOUNS, Bead, Drift, PluginStats, Report, Result, format_ref
from gtcore.core.errors import LedgerError, NotFound, RunInFlight
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
    Pause,
    QueuedRun,
    Receipt,
    RunState,
    Squash,
    Take,
)
from gtcore.storage.dialect import COLUMNS, Dialect, Statements
from gtcore.storage.shared import (
    LATEST_EVENTS,
    PAUSES,
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
    taken,
    with_drift,
    with_outcome,
)

if TYPE_CHECKING:  # typing stays off the commands' import path
    from collections.abc import Callable, Iterable, Iterator
    from contextlib import AbstractContextManager
    from typing import Any, ClassVar, TypeVar

    T = TypeVar("T")
    Conn = Any  # the backend driver's connection (sqlite3's, psycopg's): both execute(sql, params) and make cursors

RUN_ENDS = "gtui run ends"  # the lock PostgreSQL's wisp_ended trigger takes: a turn that closes runs takes it first


class SqlLedger(Ledger):
    """The shared half of a SQL ledger; see the module docstring."""

    _d: ClassVar[Dialect]
    _q: ClassVar[Statements]
    _db_error: ClassVar[type[Exception]]  # the driver's errors: the database's trouble, never one request's
    _in_flight: ClassVar[type[Exception]]  # what the driver raises when a claim meets the one-run-in-flight index
    _refused_in_turn: ClassVar[tuple[type[Exception], ...]]  # the driver's errors a turn answers as RunInFlight
    _lone_write_bare: ClassVar[bool]  # a turn of one request runs without a savepoint

    # -- what a backend brings ------------------------------------------------------------

    @abstractmethod
    def _retry(self, work: Callable[[Conn], T]) -> T:
        """``work`` in one write transaction, retried while the database says try again."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Conn]:
        """A read transaction: every query inside sees the same moment."""

    @abstractmethod
    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """The rows of one statement."""

    @abstractmethod
    def _fetch(self, conn: Conn, bead_id: int, *, lock: bool = False) -> Bead | None:
        """One bead with its labels (``lock``: held to the transaction's end, where writers hold rows); an escalation with
        its deliveries."""

    @abstractmethod
    def _new_id(self, cursor: Any) -> int:
        """The id of the bead the cursor's INSERT made."""

    @abstractmethod
    def _now(self, conn: Conn) -> float:
        """The ledger's clock, read inside the transaction."""

    @abstractmethod
    def _savepoint(self, conn: Conn) -> AbstractContextManager[Any]:
        """One request of a turn: what it wrote goes if it raises, and the turn goes on."""

    @abstractmethod
    def _failable(self, conn: Conn) -> AbstractContextManager[Any]:
        """A statement that may fail while the transaction goes on (PostgreSQL needs a savepoint for that, SQLite not)."""

    # -- writing beads ------------------------------------------------------------------

    def _insert(self, conn: Conn, kind: str, *, title: str = "", status: str = "open", body: str = "", labels: Iterable[str] = (),
                data: dict[str, Any] | None = None, plugin: str | None = None, rig: str | None = None, result: str | None = None,
                now: float | None = None) -> Bead:
        """Insert a bead inside the caller's transaction."""
        check_bead(kind, plugin, result)
        stamp = time.time() if now is None else now
        d = self._d
        bead_id = self._new_id(conn.execute(self._q.insert_bead, (kind, d.text(title), status, d.text(body), stamp, stamp, plugin,
                                                                  rig, result, d.encode(stored(data or {})))))
        unique = tuple(dict.fromkeys(map(capped_label, labels)))
        if unique:  # ignored when there: a wisp's own labels are its trigger's already
            conn.cursor().executemany(self._q.add_label, [(bead_id, d.text(label)) for label in unique])
        return Bead(bead_id, kind, title, status, body, stamp, stamp, None, plugin, rig, result, dict(data or {}), unique)

    def _update(self, conn: Conn, bead: Bead, *, now: float, status: str | None = None, data: dict[str, Any] | None = None,
                labels: dict[str, str] | None = None) -> None:
        """Change a bead inside the caller's transaction; ``labels`` maps a key to its new value (``{"severity": "high"}``
        replaces every ``severity:*`` label of the bead)."""
        new_status = status or bead.status
        closed_at = now if new_status == "closed" and bead.status != "closed" else bead.closed_at
        conn.execute(self._q.update_bead, (new_status, self._d.encode(stored(bead.data if data is None else data)), now, closed_at,
                                           bead.id))
        for key, value in (labels or {}).items():
            conn.execute(self._q.drop_prefixed, (bead.id, *self._d.prefix(f"{key}:")))
            conn.execute(self._q.set_label, (bead.id, f"{key}:{value}"))

    def _apply(self, conn: Conn, bead: Bead, change: EscalationChange, now: float) -> Bead:
        """Write an escalation's change inside the caller's transaction and read it back, deliveries and all."""
        self._update(conn, bead, now=now, data=change.data, status=change.status, labels=change.labels)
        if change.body is not None:
            conn.execute(self._q.set_body, (self._d.text(change.body), bead.id))
        if change.drop_pending:
            conn.execute(self._q.drop_deliveries, (bead.id,))
        if change.queue:
            conn.cursor().executemany(self._q.queue_delivery, [(bead.id, channel, severity, now) for channel, severity in change.queue])
        return self._fetch(conn, bead.id)  # type: ignore[return-value]

    def _delete(self, conn: Conn, ids: list[int]) -> None:
        """Delete beads, their labels and run ends: three statements whatever their number."""
        if ids:
            keys = self._d.id_list(ids)
            for statement in self._q.delete:
                conn.execute(statement, (keys,))

    # -- reading beads ------------------------------------------------------------------

    def _to_write(self, conn: Conn, bead_id: int, kind: str) -> Bead:
        """A bead of ``kind`` that must exist, read to be written (its row held where writers hold rows)."""
        bead = self._fetch(conn, bead_id, lock=True)
        if bead is None or bead.kind != kind:
            raise NotFound(f"no such {NOUNS[kind]}: {format_ref(kind, bead_id)} is not on the ledger")
        return bead

    def _beads(self, conn: Conn, rows: list[Any]) -> list[Bead]:
        """Bead rows as :class:`Bead` records with their labels (one more query; escalations one more)."""
        if not rows:
            return []
        d = self._d
        ids = [row[0] for row in rows]
        labels: dict[int, list[str]] = {bead_id: [] for bead_id in ids}
        for chunk in d.chunks(ids):
            for bead_id, label in conn.execute(d.listed(self._q.labels_of, chunk), d.many(chunk)):
                labels[bead_id].append(label)
        decode = d.decode
        beads = [Bead.from_row(row, decode(row[11]), tuple(sorted(labels[row[0]]))) for row in rows]
        escalations = [bead for bead in beads if bead.kind == "escalation"]
        if not escalations:
            return beads
        known = {bead.id: bead for bead in self._with_pending(conn, escalations)}
        return [known.get(bead.id, bead) for bead in beads]

    def _with_pending(self, conn: Conn, beads: list[Bead]) -> list[Bead]:
        """Escalations read back with their waiting deliveries as ``data["pending"]``, oldest first."""
        d = self._d
        pending: dict[int, list[dict[str, Any]]] = {bead.id: [] for bead in beads}
        for chunk in d.chunks(list(pending)):
            for escalation_id, channel, severity, attempts, next_at in conn.execute(d.listed(self._q.pending, chunk), d.many(chunk)):
                pending[escalation_id].append({"channel": channel, "severity": severity, "attempts": attempts, "next_at": next_at})
        return [bead._replace(data={**bead.data, "pending": pending[bead.id]}) for bead in beads]

    def _run_rows(self, conn: Conn, run_ids: list[int]) -> list[Any]:
        """The bead rows of these runs, a chunk of ids at a time."""
        d, rows = self._d, []
        for chunk in d.chunks(run_ids):
            rows += conn.execute(d.listed(self._q.run_rows, chunk), d.many(chunk)).fetchall()
        return rows

    def _found(self, sql: str, params: list[Any]) -> list[Bead]:
        with self._snapshot() as conn:
            return self._beads(conn, conn.execute(sql, params).fetchall())

    def create(self, kind: str, *, title: str = "", status: str = "open", body: str = "", labels: Iterable[str] = (),
               data: dict[str, Any] | None = None, plugin: str | None = None, rig: str | None = None,
               result: str | None = None, now: float | None = None) -> Bead:
        return self._retry(lambda conn: self._insert(conn, kind, title=title, status=status, body=body, labels=labels, data=data,
                                                     plugin=plugin, rig=rig, result=result, now=now))

    def fetch(self, bead_id: int) -> Bead | None:
        with self._snapshot() as conn:
            return self._fetch(conn, bead_id)

    def beads(self, kind: str, *, status: str | Iterable[str] | None = None, label: str | None = None, plugin: str | None = None,
              limit: int | None = None, newest_first: bool = True) -> list[Bead]:
        q, d = self._q, self._d
        where, params, lists = [q.kind_is], [kind], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(q.status_among)
            params += d.many(statuses)
            lists.append(statuses)
        if label is not None:
            where.append(q.labelled)
            params.append(label)
        if plugin is not None:
            where.append(q.plugin_is)
            params.append(plugin)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at {order}, id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._found(d.listed(sql, *lists), params)

    def any_bead(self, kind: str, *, status: Iterable[str], label: str) -> bool:
        statuses = list(status)
        return bool(self._read(self._d.listed(self._q.any_bead, statuses), [label, kind, *self._d.many(statuses)]))

    def find(self, kinds: Iterable[str], *, labels: Iterable[str] = (), statuses: Iterable[str] | None = None,
             created_after: float | None = None, limit: int | None = None) -> list[Bead]:
        q, d = self._q, self._d
        lists = [list(kinds)]
        where, params = [q.kind_among], d.many(lists[0])
        for label in dict.fromkeys(labels):
            where.append(q.labelled)
            params.append(label)
        if statuses is not None:
            lists.append(list(statuses))
            where.append(q.status_among)
            params += d.many(lists[-1])
        if created_after is not None:
            where.append(q.created_after)
            params.append(created_after)
        sql = f"SELECT {COLUMNS} FROM beads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._found(d.listed(sql, *lists), params)

    def close_bead(self, bead: Bead, *, reason: str = "", now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def close(conn: Conn) -> Bead:
            current = self._fetch(conn, bead.id, lock=True)
            if current is None:
                raise NotFound(f"no such record: {bead.ref} is not on the ledger")
            if current.status != "closed":
                self._update(conn, current, now=stamp, status="closed", data={**current.data, "close_reason": reason})
            return self._fetch(conn, bead.id)  # type: ignore[return-value]

        return self._retry(close)

    # -- runs ---------------------------------------------------------------------------

    def _claiming(self, claim: Claim) -> Callable[[Conn], Bead]:
        """The write that records a run as ``queued`` for a kennel, refused while one is in flight.

        The partial unique index ``one_run_in_flight`` makes the refusal hold
        across every thread, process and host.  Where several hosts write
        (:attr:`Dialect.try_lock`), the plugin's lock is held from the read of
        its last run to the insert, and only tried: a claim that finds it taken
        is refused at once, so hosts claiming several plugins per turn never
        wait on each other.  ``expect_last_run`` is the plugin's last run the
        gate decision was based on; another run claimed since fails the claim
        with :class:`GateMoved`.  The wisp keeps the plugin's previous result:
        what follows a run knows whether it ends a streak.
        """
        plugin, rig = claim.plugin, claim.rig
        own, extra = claim_labels(claim)  # own: written by the wisp's trigger
        try_lock = self._d.try_lock

        def write(conn: Conn) -> Bead:
            if try_lock is not None and not conn.execute(try_lock, (f"claim:{plugin}",)).fetchone()[0]:
                raise RunInFlight(f"plugin {plugin} is being claimed by another process")  # never wait: it would run it
            row = conn.execute(self._q.last_run, (plugin,)).fetchone()
            latest, previous = row if row else (None, None)
            refuse_moved(claim, latest)
            queued_at = self._now(conn)
            try:
                with self._failable(conn):
                    run = self._insert(conn, "wisp", title=f"run {plugin}", status="queued", labels=extra,
                                       data={**(claim.data or {}), "previous_result": previous, "queued_at": queued_at},
                                       plugin=plugin, rig=rig, result="queued", now=claim.now)
            except self._in_flight:
                raise RunInFlight(f"plugin {plugin} already has a run in flight") from None
            return run._replace(labels=(*own, *extra))

        return write

    def _taking(self, take: Take) -> Callable[[Conn], Bead]:
        """The write that makes a queued run running for the kennel that takes it (:func:`~gtcore.storage.shared.taken`),
        the row held from its read to the write: of two kennels taking one run, the second finds it running."""
        stamp = time.time() if take.now is None else take.now

        def write(conn: Conn) -> Bead:
            bead = self._to_write(conn, take.run_id, "wisp")
            running = taken(bead, take, stamp, self._now(conn) + take.lease)
            conn.execute(self._q.take, (stamp, self._d.encode(running.data), take.run_id))
            return running

        return write

    def _closing(self, request: Close) -> Callable[[Conn], Bead]:
        """The write that closes a run in flight as :func:`~gtcore.storage.shared.closed` says; closing twice keeps the first
        result.  Where the ledger keeps logs, the log goes with the close."""
        run_id = request.run_id
        stamp = check_final(request)

        def write(conn: Conn) -> Bead:
            bead = self._to_write(conn, run_id, "wisp")
            if bead.status not in IN_FLIGHT:
                return bead
            done = closed(bead, request)
            conn.execute(self._q.close, (done.result, self._d.text(done.body), stamp, stamp, self._d.encode(done.data), run_id))
            if done.owed:
                conn.execute(self._q.add_label, (run_id, OWED))
            if request.log is not None:
                self._keep_log(conn, run_id, request.log)
            return done.bead(bead, stamp)

        return write

    def _keep_log(self, conn: Conn, run_id: int, log: str) -> None:
        """Keep a closed run's log where the ledger :attr:`shares_logs` (else the log stays a file of its host)."""

    def _lock_named(self, conn: Conn, name: str) -> None:
        """Hold the lock ``name`` to the transaction's end, where several writers need one (:attr:`Dialect.lock`)."""
        if self._d.lock is not None:
            conn.execute(self._d.lock, (name,))

    def record_turn(self, closes: list[Close], claims: list[Claim], takes: Iterable[Take] = ()) -> list[Bead | Exception]:
        """One transaction, each request in its own savepoint."""
        works = [*map(self._closing, closes), *map(self._claiming, claims), *map(self._taking, takes)]

        def each(conn: Conn) -> list[Any]:
            if closes:
                self._lock_named(conn, RUN_ENDS)  # before any row lock: two turns closing runs never wait on each other crosswise
            answers: list[Any] = []
            for work in works:
                try:
                    with self._savepoint(conn):
                        answers.append(work(conn))
                except self._refused_in_turn:
                    answers.append(RunInFlight("a run of this plugin is already in flight"))
                except self._db_error:
                    raise  # the database's trouble, not this write's: the whole transaction answers
                except Exception as exc:
                    answers.append(exc)
            return answers

        if not works:
            return []
        if len(works) == 1 and self._lone_write_bare:
            try:
                return [self._retry(works[0])]
            except Exception as exc:
                return [exc]
        try:
            return self._retry(each)
        except LedgerError as exc:
            return [exc] * len(works)

    def queued_runs(self, limit: int | None = None) -> list[QueuedRun]:
        return list(map(QueuedRun._make, self._read(self._q.queued + ("" if limit is None else f" LIMIT {int(limit)}"))))

    def run_states(self, run_ids: list[int]) -> list[RunState]:
        d = self._d
        found: list[RunState] = []
        for chunk in d.chunks(run_ids):
            found += map(RunState._make, self._read(d.listed(self._q.run_states, chunk), (OWED, *d.many(chunk))))
        return [state._replace(owed=bool(state.owed)) for state in found]

    def fetch_runs(self, run_ids: list[int]) -> list[Bead]:
        with self._snapshot() as conn:
            return self._beads(conn, self._run_rows(conn, run_ids))

    def bare_runs(self, run_ids: list[int]) -> list[Bead]:
        decode = self._d.decode
        with self._snapshot() as conn:
            return [Bead.from_row(row, decode(row[11])) for row in self._run_rows(conn, run_ids)]

    def request_stop(self, run_id: int, reason: str, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def stop(conn: Conn) -> Bead:
            self._lock_named(conn, RUN_ENDS)
            bead = self._to_write(conn, run_id, "wisp")
            if bead.status == Result.QUEUED:
                return self._closing(Close(run_id, Result.ABANDONED, {"reason": f"{STOPPED_QUEUED}: {reason}"}, stamp))(conn)
            if bead.status == Result.RUNNING:
                conn.execute(self._q.stop, (self._d.encode(stop_note(reason, stamp)), stamp, run_id))
                return self._fetch(conn, run_id)  # type: ignore[return-value]
            return bead

        return self._retry(stop)

    def stop_requests(self, run_ids: list[int]) -> dict[int, str]:
        if not run_ids:
            return {}
        rows = self._read(self._d.listed(self._q.stop_requests, run_ids), self._d.many(run_ids))
        return {run_id: str(reason or "") for run_id, reason in rows}

    def take_finished(self, reader: str, limit: int) -> tuple[list[Bead], bool]:
        q, d = self._q, self._d

        def take(conn: Conn) -> tuple[list[Bead], bool]:
            conn.execute(q.add_reader, (reader,))
            after = conn.execute(q.reader_seq, (reader,)).fetchone()[0]
            ends = conn.execute(q.ends_after, (after, limit + 1)).fetchall()
            more = len(ends) > limit
            ends = ends[:limit]
            if not ends:
                return [], False
            conn.execute(q.move_reader, (ends[-1][0], reader))
            ids = [run_id for _, run_id in ends]
            found = {bead.id: bead for bead in self._beads(conn, conn.execute(d.listed(q.beads_in, ids), d.many(ids)).fetchall())}
            return [found[run_id] for run_id in ids if run_id in found], more  # a run a digest squashed since is gone

        return self._retry(take)

    def report_run(self, run_id: int, token: str, report: Report, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now
        q, d = self._q, self._d

        def keep(conn: Conn) -> Bead:
            bead = reporting_run(self._fetch(conn, run_id, lock=True), run_id, token, "report")
            relabel = reported(bead, report, stamp)
            conn.execute(q.set_data, (d.encode(relabel.data), stamp, run_id))
            if relabel.drop:
                conn.execute(d.listed(q.drop_labels, relabel.drop), (run_id, *d.many(relabel.drop)))
            conn.cursor().executemany(q.add_label, [(run_id, d.text(label)) for label in relabel.add])
            return self._fetch(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def note_drift(self, run_id: int, token: str, drift: Drift, *, now: float | None = None) -> Bead:
        stamp = time.time() if now is None else now

        def keep(conn: Conn) -> Bead:
            bead = reporting_run(self._fetch(conn, run_id, lock=True), run_id, token, "drift note")
            conn.execute(self._q.set_data, (self._d.encode(with_drift(bead, drift, stamp)), stamp, run_id))
            return self._fetch(conn, run_id)  # type: ignore[return-value]

        return self._retry(keep)

    def record_receipt(self, receipt: Receipt) -> Bead:
        wisp = receipt_wisp(receipt)

        def write(conn: Conn) -> Bead:
            bead = self._insert(conn, "wisp", title=f"run {receipt.plugin}", status="closed", body=wisp.body, labels=wisp.labels,
                                data=wisp.data, plugin=receipt.plugin, rig=receipt.rig, result=wisp.result, now=wisp.at)
            conn.execute(self._q.set_closed_at, (wisp.at, bead.id))
            return self._fetch(conn, bead.id)  # type: ignore[return-value]

        return self._retry(write)

    def settle_follow_up(self, run_id: int, escalation: str | None = None) -> None:
        def settle(conn: Conn) -> None:
            conn.execute(self._q.drop_label, (run_id, OWED))
            if escalation is not None:
                conn.execute(self._q.follow_up, (self._d.encode(escalation), run_id))

        self._retry(settle)

    def owed_follow_ups(self) -> list[Bead]:
        """From the label's index."""
        return self._found(self._q.owed, [OWED])

    def changed_runs(self, since: float, limit: int = 500) -> list[Bead]:
        return self._found(self._q.changed_runs, [since, limit])

    # -- kennels, town events, pauses -------------------------------------------------------

    def kennels(self) -> list[KennelBeat]:
        decode = self._d.decode
        return [KennelBeat(host, pid, started, beat, decode(data)) for host, pid, started, beat, data in self._read(self._q.kennels)]

    def forget_kennel(self, host: str, pid: int) -> None:
        self._retry(lambda conn: conn.execute(self._q.forget_kennel, (host, pid)))

    def emit_events(self, events: Iterable[tuple[str, float]], *, source: str) -> None:
        listed = list(events)

        def record(conn: Conn) -> None:
            for name, at in listed:
                self._insert(conn, "event", title=name, status="closed", labels=[f"event:{name}"], data={"source": source}, now=at)

        self._retry(record)

    def last_events(self) -> dict[str, EventMark]:
        return {name: EventMark(at, seq) for name, at, seq in self._read(LATEST_EVENTS)}

    def pauses(self) -> dict[str, Pause]:
        found = ((plugin, pause_of(*rest)) for plugin, *rest in self._read(PAUSES))
        return {plugin: pause for plugin, pause in found if pause is not None}

    def plugin_summary(self) -> dict[str, PluginStats]:
        return {row[0]: PluginStats(*row) for row in self._read(self._q.stats)}

    # -- escalations and their deliveries -----------------------------------------------

    def raise_escalation(self, subject: str, source: str, *, fresh: Callable[[], EscalationChange],
                         again: Callable[[Bead], EscalationChange], labels: Iterable[str], now: float,
                         fingerprint: str | None = None) -> tuple[Bead, bool]:
        """Serialised where several writers need it by a lock on what makes two raises the same escalation (its fingerprint,
        else source and subject).  A close takes no such lock: the unclosed one is read holding its row, so a close
        committed meanwhile is seen (the row is read again, and a closed one no longer matches) and never counted again."""
        same = sameness(subject, source, fingerprint)
        sql = self._q.same_escalation[same.title is not None]
        params = (same.label,) if same.title is None else (same.label, same.title)

        def write(conn: Conn) -> tuple[Bead, bool]:
            self._lock_named(conn, same.lock)
            row = conn.execute(sql, params).fetchone()
            if row is not None:
                existing = self._fetch(conn, row[0])
                assert existing is not None
                return self._apply(conn, existing, again(existing), now), False
            change = fresh()
            bead = self._insert(conn, "escalation", title=subject, body=change.body or "", labels=labels, data=change.data, now=now)
            return self._apply(conn, bead, change._replace(body=None), now), True

        return self._retry(write)

    def change_escalation(self, escalation_id: int, change: Callable[[Bead], EscalationChange | None], *, now: float) -> Bead:
        def write(conn: Conn) -> Bead:
            bead = self._to_write(conn, escalation_id, "escalation")
            decided = change(bead)
            return bead if decided is None else self._apply(conn, bead, decided, now)

        return self._retry(write)

    def lease_deliveries(self, now: float, lease: float, *, route: Callable[[Bead, str], EscalationChange],
                         only: int | None = None) -> list[Delivery]:
        """Leased by moving each due row's next attempt past the lease, in the transaction that read it; where several
        writers lease, a row another is leasing right now is passed over (:attr:`Dialect.skip_locked`)."""
        q, d = self._q, self._d
        scope: tuple[Any, ...] = () if only is None else (only,)

        def write(conn: Conn) -> list[Delivery]:
            for row_id, escalation_id, severity in conn.execute(q.held_deliveries[bool(scope)], (ROUTE_LATER, *scope)).fetchall():
                conn.execute(q.drop_delivery, (row_id,))
                bead = self._fetch(conn, escalation_id, lock=True)
                assert bead is not None  # an unclosed escalation, read in this transaction
                self._apply(conn, bead, route(bead, severity), now)
            due = conn.execute(q.due_deliveries[bool(scope)], (now, ROUTE_LATER, *scope)).fetchall()
            for chunk in d.chunks([row[0] for row in due]):
                conn.execute(d.listed(q.lease_deliveries, chunk), (now + lease, *d.many(chunk)))
            return [Delivery(*row[1:]) for row in due]

        return self._retry(write)

    def record_delivery(self, delivery: Delivery, error: str | None, *, now: float, retry_at: float | None) -> None:
        key = (delivery.escalation_id, delivery.channel, delivery.severity)

        def write(conn: Conn) -> None:
            bead = self._fetch(conn, delivery.escalation_id, lock=True)
            if bead is None:
                return
            self._update(conn, bead, now=now, data=with_outcome(bead, delivery, error, now))
            if error is None or retry_at is None:
                conn.execute(self._q.delivered, key)
            else:
                conn.execute(self._q.retry_delivery, (delivery.attempts + 1, retry_at, *key))

        self._retry(write)

    # -- copying, digests and retention ---------------------------------------------------

    def _logs(self, conn: Conn, beads: list[Bead]) -> dict[int, str] | None:
        """The logs of these runs where the ledger keeps them."""
        return None

    def dump(self, batch: int = 5000) -> Iterator[LedgerDump]:
        after = 0
        while True:
            with self._snapshot() as conn:
                beads = self._beads(conn, conn.execute(self._q.beads_after, (after, batch)).fetchall())
                logs = self._logs(conn, beads)
            if len(beads) < batch:
                yield LedgerDump(beads, logs, stats=list(self.plugin_summary().values()))
                return
            yield LedgerDump(beads, logs)
            after = beads[-1].id

    def squash_day(self, title: str, plugins: list[str], start: float, end: float,
                   fold: Callable[[list[FinishedRun], Bead | None], DigestDraft], *, dry_run: bool, now: float) -> Squash:
        q, d = self._q, self._d

        def squash(conn: Conn) -> Squash:
            if not dry_run:
                self._lock_named(conn, f"digest:{title}")
            runs: list[FinishedRun] = []  # what a digest keeps of each run, read in SQL: decoding 100,000 JSONs cost more
            for chunk in d.chunks(plugins):
                runs += map(FinishedRun._make, conn.execute(d.listed(q.finished_runs, chunk), (start, end, *d.many(chunk))))
            row = conn.execute(q.digest_of_day, (title,)).fetchone()
            existing = self._fetch(conn, row[0]) if row else None
            if not runs:
                return Squash(runs, existing, existing)
            draft = fold(runs, existing)
            if dry_run:
                return Squash(runs, existing, None)
            if existing is None:
                digest = self._insert(conn, "digest", title=title, status="closed", body=draft.body, data=draft.data,
                                      labels=draft.labels, now=now)
            else:
                self._update(conn, existing, now=now, data=draft.data)
                conn.execute(q.set_body, (d.text(draft.body), existing.id))
                digest = existing
            self._delete(conn, [run.id for run in runs])
            return Squash(runs, existing, digest)

        if dry_run:  # reads only: it must work on a read-only ledger too
            with self._snapshot() as conn:
                return squash(conn)
        return self._retry(squash)

    def run_days(self, plugins: list[str], before: float) -> list[int]:
        return [row[0] for row in self._read(self._d.listed(self._q.run_days, plugins), (before, *self._d.many(plugins)))]

    def digest_beads(self, plugin: str | None = None, limit: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        """Ordered by the day in the title (a day can be digested late); a plugin is pre-selected by the dialect."""
        sql = self._q.digests[plugin is not None] + " ORDER BY title DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        decode = self._d.decode
        rows = self._read(sql, () if plugin is None else (self._d.digest_key(plugin),))
        return [(bead_id, title, decode(data)) for bead_id, title, data in rows]

    def prune_runs(self, cutoff: float, keep: list[str], only: list[str] | None, batch: int) -> list[str | None]:
        q, d = self._q, self._d
        # Not "NOT IN (NULL)" for an empty list: that is never true, and would keep every run.
        sql, params, lists = q.old_runs, [cutoff], []
        if keep:
            sql += q.plugin_not_among
            params += d.many(keep)
            lists.append(keep)
        if only is not None:
            sql += q.plugin_among
            params += d.many(only)
            lists.append(only)
        sql = d.listed(f"{sql} LIMIT {int(batch)}{d.skip_locked}", *lists)

        def delete(conn: Conn) -> list[str | None]:
            rows = conn.execute(sql, params).fetchall()
            self._delete(conn, [row[0] for row in rows])
            return [row[1] for row in rows]

        return self._retry(delete)

