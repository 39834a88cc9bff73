"""The SQLite ledger as its tests look at it: behind the ledger's back, in the backend's own terms.

Tests assert behaviour through :class:`gtcore.storage.contract.Ledger`; a
few must see the file itself (its journal mode, its schema, a lock another
process holds, a summary computed the slow way to compare with).  Those
looks live here, with the backend, so no SQL is written outside
``gtcore/storage``.  Nothing in the engine imports this module.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gtcore.core.beads import PluginStats
from gtcore.core.errors import LedgerError

_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(60)
"""


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def file_facts(path: Path) -> dict[str, Any]:
    """The file's integrity check, journal mode, schema version, schema and bead count."""
    conn = _connect(path)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "user_version": conn.execute("PRAGMA user_version").fetchone()[0],
            "schema": conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
            "beads": conn.execute("SELECT COUNT(*) FROM beads").fetchone()[0],
        }
    finally:
        conn.close()


def set_schema_version(path: Path, version: int) -> None:
    """Stamp the file with another schema version (a ledger from a newer gtui)."""
    conn = _connect(path)
    conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.close()


@contextlib.contextmanager
def lock_held_here(path: Path, *, squat: bool = False) -> Iterator[None]:
    """This process holds the file in ``BEGIN EXCLUSIVE`` (and, with ``squat``, a half-made table) until the block ends."""
    conn = _connect(path)
    conn.execute("BEGIN EXCLUSIVE")
    if squat:
        conn.execute("CREATE TABLE squatter (x)")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@contextlib.contextmanager
def lock_held_by_child(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process inside ``BEGIN IMMEDIATE`` on the file until the block ends (then killed)."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def bead_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every bead's id, kind, status, result, update time and data: equal lists mean nothing was written."""
    conn = _connect(path)
    try:
        return [tuple(row) for row in conn.execute("SELECT id, kind, status, result, updated_at, data FROM beads ORDER BY id")]
    finally:
        conn.close()


def streak(ended: list[tuple[str, str]]) -> int:
    """How many of the runs ``ended`` (result and reason, in the order they ended) failed in a row at the end: a run that
    ended well (success, warning, check-only) ends a streak; a skipped one, or one a person stopped, changes nothing."""
    count = 0
    for result, reason in ended:
        if result in ("success", "warning", "check-only"):
            count = 0
        elif result in ("failure", "timeout", "abandoned") and not reason.startswith("stopped:"):
            count += 1
    return count


def summary_from_labels(path: Path) -> dict[str, PluginStats]:
    """The plugin summary the slow way, one plugin at a time through its ``plugin:`` labels (to compare with)."""
    conn = _connect(path)
    out = {}
    try:
        labels = [row[0] for row in conn.execute("SELECT DISTINCT label FROM labels WHERE label LIKE 'plugin:%'")]
        for label in labels:
            plugin = label.removeprefix("plugin:")
            joined = ("FROM beads b JOIN labels l ON l.bead_id = b.id AND l.label = ?"
                      " JOIN labels t ON t.bead_id = b.id AND t.label = 'type:plugin-run' WHERE b.kind = 'wisp'")
            count, failures = conn.execute(f"SELECT COUNT(*), SUM(b.result IN ('failure', 'timeout')) {joined}", (label,)).fetchone()
            last_id, last_at, last_result = conn.execute(
                f"SELECT b.id, b.created_at, b.result {joined} ORDER BY b.created_at DESC, b.id DESC LIMIT 1", (label,)).fetchone()
            ended = [(result, reason or "") for result, reason in conn.execute(
                f"SELECT b.result, json_extract(b.data, '$.reason') {joined} AND b.status = 'closed'"
                " ORDER BY (SELECT min(seq) FROM run_ends WHERE run_id = b.id)", (label,))]
            out[plugin] = PluginStats(plugin, count, failures, last_id, last_at, last_result, failure_streak=streak(ended))
    finally:
        conn.close()
    return out


def ledger_at_version(path: Path, version: int) -> None:
    """A ledger file made by an older gtui: the schema's first ``version`` migrations only."""
    from gtcore.storage.sqlite_schema import MIGRATIONS, split_script

    conn = _connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    for number in range(version):
        for statement in split_script(MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.close()


def insert_raw_bead(path: Path, kind: str, title: str, status: str, data: dict[str, Any], at: float) -> int:
    """A bead written as an older gtui wrote it (e.g. an escalation keeping its pending deliveries in its JSON)."""
    conn = _connect(path)
    try:
        cursor = conn.execute("INSERT INTO beads (kind, title, status, created_at, updated_at, data) VALUES (?, ?, ?, ?, ?, ?)",
                              (kind, title, status, at, at, json.dumps(data)))
        return int(cursor.lastrowid or 0)
    finally:
        conn.close()


def postgres_schema(url: str, name: str) -> str:
    """A fresh, empty schema ``name`` on the server at ``url``, and the URL whose connections use it (one per test)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"


def postgres_at_version(url: str, version: int) -> None:
    """A PostgreSQL ledger made by an older gtui at ``url``: the first ``version`` schema scripts only."""
    import psycopg

    from gtcore.storage.postgresql_schema import MIGRATIONS

    with psycopg.connect(url, autocommit=True) as conn:
        for script in MIGRATIONS[:version]:
            conn.execute(script)
        conn.execute("INSERT INTO gtui_schema VALUES (%s)", (version,))


def postgres_catalogue(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the schema of the PostgreSQL ledger at ``url`` holds, as the server's catalogue says, without the schema's own
    name: the version it records, its columns, indexes, sequences, triggers and trigger functions (their source)."""
    import psycopg

    here = "current_schema()"
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            "version": conn.execute("SELECT max(version) FROM gtui_schema").fetchall(),
            "columns": conn.execute("SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default"
                                    f" FROM information_schema.columns WHERE table_schema = {here} ORDER BY 1, 2").fetchall(),
            "indexes": conn.execute(f"SELECT indexname, replace(indexdef, {here} || '.', '') FROM pg_indexes"
                                    f" WHERE schemaname = {here} ORDER BY 1").fetchall(),
            "sequences": conn.execute("SELECT sequence_name FROM information_schema.sequences"
                                      f" WHERE sequence_schema = {here} ORDER BY 1").fetchall(),
            "triggers": conn.execute("SELECT event_object_table, trigger_name, event_manipulation, action_timing, action_condition,"
                                     " action_statement FROM information_schema.triggers"
                                     f" WHERE trigger_schema = {here} ORDER BY 1, 2, 3").fetchall(),
            "functions": conn.execute("SELECT p.proname, p.prosrc FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                                      f" WHERE n.nspname = {here} ORDER BY 1").fetchall(),
        }


def insert_old_run(path: Path, plugin: str, status: str, at: float, data: dict[str, Any] | None = None, result: str = "success") -> None:
    """A run as an older gtui kept it, in the town's ledger at ``path`` (or the server ``GT_LEDGER_URL`` names): claimed
    ``running`` with whatever data it wrote then (no lease, before leases; no kennel, before kennels), or closed with
    ``result``."""
    import os

    values = (f"run {plugin}", status, at, at, plugin, "running" if status == "running" else result, json.dumps(data or {}))
    url = os.environ.get("GT_LEDGER_URL")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as server:
            server.execute("INSERT INTO beads (kind, title, status, created_at, updated_at, plugin, rig, result, data)"
                           " VALUES ('wisp', %s, %s, %s, %s, %s, 'town', %s, %s)", values)
        return
    conn = _connect(path)
    try:
        conn.execute("INSERT INTO beads (kind, title, status, created_at, updated_at, plugin, rig, result, data)"
                     " VALUES ('wisp', ?, ?, ?, ?, ?, 'town', ?, ?)", values)
    finally:
        conn.close()


@contextlib.contextmanager
def write_in_flight(path: Path) -> Iterator[None]:
    """Another writer has written an event bead and not committed yet; it commits when the block ends.

    The town's ledger at ``path`` (its SQLite file), or the server ``GT_LEDGER_URL`` names.
    """
    import os

    url = os.environ.get("GT_LEDGER_URL")
    if url:
        import psycopg

        with psycopg.connect(url) as server:  # not autocommit: the insert waits in its transaction
            server.execute("INSERT INTO beads (kind, title, status, created_at, updated_at) VALUES ('event', 'late', 'closed', 0, 0)")
            yield
            server.commit()
        return
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO beads (kind, title, status, created_at, updated_at) VALUES ('event', 'late', 'closed', 0, 0)")
        yield
        conn.execute("COMMIT")
    finally:
        conn.close()


def lock_waiters(url: str) -> int:
    """How many sessions of the PostgreSQL server at ``url`` wait for a lock right now: how a test knows a transaction it
    started is blocked on another's row, without guessing at how long that takes."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
        assert row is not None  # count(*) always has its row
        return int(row[0])


def refused_statement(ledger: Any) -> LedgerError:
    """What a PostgreSQL ledger says when the server refuses a statement of a healthy connection (a statement timeout)."""
    try:
        ledger._retry(lambda conn: (conn.execute("SET LOCAL statement_timeout = 1"), conn.execute("SELECT pg_sleep(5)")))
    except LedgerError as exc:
        return exc
    raise AssertionError("the server ran a statement that outlived its timeout")
