"""How SQLite and PostgreSQL spell what the ledger's shared statements say (:mod:`gtcore.storage.queries`).

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
