"""How SQLite and PostgreSQL spell what the ledger's shared statements say, and those statements (:class:`Statements`).

A shared statement is written once, in SQLite's words: ``?`` for a parameter,
``column IN (?...)`` for a list of values, and ``{name}`` for a piece the
dialect supplies (a JSON path, a row lock, an upsert...).  :meth:`Dialect.sql`
turns it into the backend's text once, when the backend's statements are
built; per call only a list's length is spelled (:meth:`Dialect.listed`, SQLite
alone: PostgreSQL takes a list as one array parameter).
"""

from __future__ import annotations

import json
import re

from gtcore.core.records import TYPE_CHECKING
from gtcore.storage.shared import STATS_COLUMNS

if TYPE_CHECKING:  # typing stays off the commands' import path
    from collections.abc import Callable, Sequence
    from typing import Any

LIST = "(?...)"  # a list of values in a shared statement: `column IN (?...)`, `column NOT IN (?...)`


class Dialect:
    """One database's spellings; the base says SQLite's, which the shared statements are written in."""

    mark = "?"  # a parameter
    chunk = 500  # most values a list parameter holds in one statement (SQLite's limit on parameters)
    for_update = ""  # holds a row read to write it until the transaction ends (nothing: SQLite has one writer at a time)
    skip_locked = ""  # ... and passes over rows another writer holds
    label_join = "CROSS JOIN"  # labels joined to beads, labels first (SQLite would walk every closed wisp by time)
    returning_id = ""  # what an INSERT into beads appends to answer the new id (SQLite's cursor knows it)
    lock: str | None = None  # takes a named lock to the transaction's end (parameter: its name); None: one writer at a time
    try_lock: str | None = None  # the same without waiting: answers whether it got it
    digest_has_plugin = "instr(data, ?) > 0"  # a digest's data names the plugin (see :meth:`digest_key`)

    def sql(self, text: str, **parts: str) -> str:
        """A shared statement in this dialect's words: its lists and parameters, then the ``parts`` it names."""
        return text.format(**parts)

    def listed(self, text: str, *lists: Sequence[Any]) -> str:
        """The statement for these lists (in the order of their ``IN (?...)``): a mark per value."""
        for values in lists:
            text = text.replace(LIST, f"({', '.join('?' * len(values))})", 1)
        return text

    def many(self, values: Sequence[Any]) -> list[Any]:
        """A list's parameters."""
        return list(values)

    def chunks(self, values: list[Any]) -> list[list[Any]]:
        """A long list in the pieces one statement takes each."""
        return [values[start:start + self.chunk] for start in range(0, len(values), self.chunk)]

    def json_value(self, path: str) -> str:
        """The value at ``path`` (dotted keys) in a bead's data, as Python reads it back."""
        return f"json_extract(data, '$.{path}')"

    def json_text(self, path: str) -> str:
        """The text at ``path`` in a bead's data."""
        return self.json_value(path)

    def json_has(self, key: str) -> str:
        """A bead's data has ``key``."""
        return f"json_type(data, '$.{key}') IS NOT NULL"

    def json_set(self, key: str) -> str:
        """A bead's data with ``key`` set to the JSON parameter (:meth:`encode`)."""
        return f"json_set(data, '$.{key}', json(?))"

    def day(self, column: str) -> str:
        """The day number (since the epoch) of a time column."""
        return f"CAST({column} / 86400 AS INTEGER)"

    def ignore(self, insert: str) -> str:
        """An INSERT that skips a row already there (a key it would repeat)."""
        return insert.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)

    def ids(self, column: str) -> str:
        """``column`` among any number of ids, one parameter (:meth:`id_list`), however many: two statements delete a day."""
        return f"{column} IN (SELECT value FROM json_each(?))"

    def id_list(self, ids: list[int]) -> Any:
        return json.dumps(ids)

    def starts_with(self, column: str) -> str:
        """``column`` starts with a prefix (its parameters: :meth:`prefix`)."""
        return f"substr({column}, 1, ?) = ?"

    def prefix(self, prefix: str) -> tuple[Any, ...]:
        return len(prefix), prefix

    def digest_key(self, plugin: str) -> str:
        """The parameter of :attr:`digest_has_plugin`: the plugin's key in the digest's JSON text."""
        return json.dumps(plugin) + ":"

    encode: Callable[[Any], Any] = staticmethod(json.dumps)
    """A JSON value as the data column takes it."""
    decode: Callable[[Any], Any] = staticmethod(json.loads)
    """The data column as read back."""

    @staticmethod
    def text(value: str) -> str:
        """A text as a text column keeps it."""
        return value


SQLITE = Dialect()


class PostgresDialect(Dialect):
    """PostgreSQL's spellings: arrays for lists, ``jsonb`` operators, ``ON CONFLICT``, row and advisory locks."""

    mark = "%s"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    label_join = "JOIN"
    returning_id = " RETURNING id"
    lock = "SELECT pg_advisory_xact_lock(hashtext(%s))"
    try_lock = "SELECT pg_try_advisory_xact_lock(hashtext(%s))"
    digest_has_plugin = "data->'plugins' ? %s"

    def __init__(self, jsonb: Callable[[Any], Any]) -> None:
        self._jsonb = jsonb  # the driver's wrapper of a jsonb parameter (psycopg's Jsonb: imported by the backend alone)

    def sql(self, text: str, **parts: str) -> str:
        assert "%" not in text, "a literal % in a shared statement would read as a parameter"
        text = re.sub(rf"([\w.]+) (NOT )?IN {re.escape(LIST)}",
                      lambda found: f"NOT ({found[1]} = ANY(?))" if found[2] else f"{found[1]} = ANY(?)", text)
        return text.replace("?", self.mark).format(**parts)

    def listed(self, text: str, *lists: Sequence[Any]) -> str:
        return text

    def many(self, values: Sequence[Any]) -> list[Any]:
        return [list(values)]

    def chunks(self, values: list[Any]) -> list[list[Any]]:
        return [values] if values else []

    def json_value(self, path: str) -> str:
        return "data" + "".join(f"->'{key}'" for key in path.split("."))

    def json_text(self, path: str) -> str:
        *keys, last = path.split(".")
        return "data" + "".join(f"->'{key}'" for key in keys) + f"->>'{last}'"

    def json_has(self, key: str) -> str:
        return f"data ? '{key}'"

    def json_set(self, key: str) -> str:
        return f"jsonb_set(data, '{{{key}}}', %s)"

    def day(self, column: str) -> str:
        return f"floor({column} / 86400)::bigint"

    def ignore(self, insert: str) -> str:
        return insert + " ON CONFLICT DO NOTHING"

    def ids(self, column: str) -> str:
        return f"{column} = ANY(%s)"

    def id_list(self, ids: list[int]) -> Any:
        return ids

    def starts_with(self, column: str) -> str:
        return f"starts_with({column}, %s)"

    def prefix(self, prefix: str) -> tuple[Any, ...]:
        return (prefix,)

    def digest_key(self, plugin: str) -> str:
        return plugin

    def encode(self, value: Any) -> Any:
        """JSON for a ``jsonb`` column, which holds no NUL: one a plugin wrote becomes U+FFFD, anywhere in the value."""
        return self._jsonb(_without_nul(value))

    @staticmethod
    def decode(value: Any) -> Any:
        return value  # the driver decodes jsonb

    @staticmethod
    def text(value: str) -> str:
        """Text for a ``text`` column, which holds no NUL either."""
        return value.replace("\x00", "\ufffd")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return PostgresDialect.text(value)
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


COLUMNS = "id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data"
"""A bead row's columns, in :meth:`gtcore.core.beads.Bead.from_row`'s order."""

_LIVE = " AND escalation_id IN (SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed')"


class Statements:
    """Every shared statement in one dialect's words."""

    def __init__(self, d: Dialect) -> None:
        s = d.sql
        # beads
        self.insert_bead = s("INSERT INTO beads (kind, title, status, body, created_at, updated_at, plugin, rig, result, data)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?){returning}", returning=d.returning_id)
        self.add_label = s(d.ignore("INSERT INTO labels VALUES (?, ?)"))
        self.set_label = s("INSERT INTO labels VALUES (?, ?)")
        self.drop_label = s("DELETE FROM labels WHERE bead_id = ? AND label = ?")
        self.drop_labels = s("DELETE FROM labels WHERE bead_id = ? AND label IN (?...)")
        self.drop_prefixed = s("DELETE FROM labels WHERE bead_id = ? AND {prefixed}", prefixed=d.starts_with("label"))
        self.update_bead = s("UPDATE beads SET status = ?, data = ?, updated_at = ?, closed_at = ? WHERE id = ?")
        self.set_body = s("UPDATE beads SET body = ? WHERE id = ?")
        self.set_data = s("UPDATE beads SET data = ?, updated_at = ? WHERE id = ?")
        self.set_closed_at = s("UPDATE beads SET closed_at = ? WHERE id = ?")
        self.labels_of = s("SELECT bead_id, label FROM labels WHERE bead_id IN (?...)")
        self.beads_in = s(f"SELECT {COLUMNS} FROM beads WHERE id IN (?...)")
        self.beads_after = s(f"SELECT {COLUMNS} FROM beads WHERE id > ? ORDER BY id LIMIT ?")
        self.delete = [s(f"DELETE FROM {table} WHERE {{ids}}", ids=d.ids(column))
                       for table, column in (("labels", "bead_id"), ("run_ends", "run_id"), ("beads", "id"))]
        # the filters of beads() and find()
        self.kind_is = s("kind = ?")
        self.kind_among = s("kind IN (?...)")
        self.status_among = s("status IN (?...)")
        self.labelled = s("id IN (SELECT bead_id FROM labels WHERE label = ?)")
        self.plugin_is = s("plugin = ?")
        self.created_after = s("created_at > ?")
        self.any_bead = s("SELECT 1 FROM labels JOIN beads ON beads.id = labels.bead_id WHERE labels.label = ? AND beads.kind = ?"
                          " AND beads.status IN (?...) LIMIT 1")
        # runs
        self.last_run = s("SELECT last_run_id, last_result FROM plugin_stats WHERE plugin = ?")
        self.take = s("UPDATE beads SET status = 'running', result = 'running', updated_at = ?, data = ? WHERE id = ?")
        self.close = s("UPDATE beads SET status = 'closed', result = ?, body = ?, closed_at = ?, updated_at = ?, data = ? WHERE id = ?")
        self.run_rows = s(f"SELECT {COLUMNS} FROM beads WHERE kind = 'wisp' AND id IN (?...)")
        self.queued = "SELECT id, plugin, rig FROM beads WHERE kind = 'wisp' AND status = 'queued' ORDER BY id"
        self.run_states = s("SELECT id, status, closed_at, EXISTS (SELECT 1 FROM labels WHERE bead_id = beads.id AND label = ?)"
                            " FROM beads WHERE kind = 'wisp' AND id IN (?...)")
        self.stop = s("UPDATE beads SET data = {stop}, updated_at = ? WHERE id = ?", stop=d.json_set("stop"))
        self.stop_requests = s("SELECT id, {reason} FROM beads WHERE id IN (?...) AND status = 'running' AND {asked}",
                               reason=d.json_text("stop.reason"), asked=d.json_has("stop"))
        self.follow_up = s("UPDATE beads SET data = {escalation} WHERE id = ?", escalation=d.json_set("escalation"))
        prefixed = ", ".join(f"beads.{column}" for column in COLUMNS.split(", "))
        self.owed = s(f"SELECT {prefixed} FROM labels {{join}} beads ON beads.id = labels.bead_id WHERE labels.label = ?"
                      " AND beads.kind = 'wisp' AND beads.status = 'closed' ORDER BY beads.id", join=d.label_join)
        self.changed_runs = s(f"SELECT {COLUMNS} FROM beads WHERE kind = 'wisp' AND updated_at >= ? ORDER BY updated_at, id LIMIT ?")
        # readers of run ends, kennels
        self.add_reader = s(d.ignore("INSERT INTO readers VALUES (?, 0)"))
        self.reader_seq = s("SELECT seq FROM readers WHERE name = ?{lock}", lock=d.for_update)
        self.ends_after = s("SELECT seq, run_id FROM run_ends WHERE seq > ? ORDER BY seq LIMIT ?")
        self.move_reader = s("UPDATE readers SET seq = ? WHERE name = ?")
        self.kennels = "SELECT host, pid, started_at, beat_at, data FROM kennels ORDER BY host"
        self.forget_kennel = s("DELETE FROM kennels WHERE host = ? AND pid = ?")
        self.stats = f"SELECT {STATS_COLUMNS} FROM plugin_stats"
        # escalations and deliveries
        unclosed = ("SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed'"
                    " AND id IN (SELECT bead_id FROM labels WHERE label = ?)")
        self.same_escalation = {titled: s(f"{unclosed}{' AND title = ?' if titled else ''} ORDER BY id DESC LIMIT 1{{lock}}",
                                          lock=d.for_update) for titled in (False, True)}
        self.pending = s("SELECT escalation_id, channel, severity, attempts, next_at FROM deliveries WHERE escalation_id IN (?...)"
                         " ORDER BY id")
        self.drop_deliveries = s("DELETE FROM deliveries WHERE escalation_id = ?")
        self.queue_delivery = s(d.ignore("INSERT INTO deliveries (escalation_id, channel, severity, attempts, next_at)"
                                         " VALUES (?, ?, ?, 0, ?)"))
        self.held_deliveries = {scoped: s(f"SELECT id, escalation_id, severity FROM deliveries WHERE channel = ?{_LIVE}"
                                          f"{' AND escalation_id = ?' if scoped else ''}{{skip}}", skip=d.skip_locked)
                                for scoped in (False, True)}
        self.drop_delivery = s("DELETE FROM deliveries WHERE id = ?")
        self.due_deliveries = {scoped: s("SELECT id, escalation_id, channel, severity, attempts, next_at FROM deliveries"
                                         f" WHERE next_at <= ? AND channel != ?{_LIVE}{' AND escalation_id = ?' if scoped else ''}"
                                         " ORDER BY id{skip}", skip=d.skip_locked)
                               for scoped in (False, True)}
        self.lease_deliveries = s("UPDATE deliveries SET next_at = ? WHERE id IN (?...)")
        delivery = " WHERE escalation_id = ? AND channel = ? AND severity = ?"
        self.delivered = s(f"DELETE FROM deliveries{delivery}")
        self.retry_delivery = s(f"UPDATE deliveries SET attempts = ?, next_at = ?{delivery}")
        # digests and retention
        self.finished_runs = s("SELECT id, created_at, plugin, result, {duration}, {reason}, {log} FROM beads WHERE kind = 'wisp'"
                               " AND status = 'closed' AND created_at >= ? AND created_at < ? AND plugin IN (?...)",
                               duration=d.json_value("duration_s"), reason=d.json_value("reason"), log=d.json_value("log"))
        self.digest_of_day = s("SELECT id FROM beads WHERE kind = 'digest' AND title = ? ORDER BY id LIMIT 1")
        self.run_days = s("SELECT DISTINCT {day} FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < ?"
                          " AND plugin IN (?...)", day=d.day("created_at"))
        digests = "SELECT id, title, data FROM beads WHERE kind = 'digest'"
        self.digests = {False: digests, True: s(f"{digests} AND {{has}}", has=d.digest_has_plugin)}
        self.old_runs = s("SELECT id, {log} FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < ?",
                          log=d.json_text("log"))
        self.plugin_not_among = s(" AND plugin NOT IN (?...)")
        self.plugin_among = s(" AND plugin IN (?...)")
