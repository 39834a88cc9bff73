"""Digests and retention: keep the ledger small without forgetting what happened.

A digest squashes one UTC day of finished run wisps of plugins with
``[tracking] digest = true`` into one durable bead titled
``Plugin Digest YYYY-MM-DD`` and deletes those wisps and their logs, in one
transaction.  It is idempotent, and wisps that arrive late for a digested day
are merged into that day's bead.  Running wisps and today's are never touched.
The per-plugin summary (``plugin_stats``) is not decremented by deletions, so
gates and ``plugin list`` stay right after squashing.

Retention prunes finished wisps (and logs) of the other plugins older than
``retention_days``; escalations, digests, mail and events are never pruned.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gtcore.errors import GtError
from gtcore.ledger import Ledger, fetch_bead, insert_bead, update_bead
from gtcore.model import Bead, format_ref
from gtcore.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any

DAY = 86400.0
PRUNE_BATCH = 5000
_CHUNK = 500


def day_bounds(day: date) -> tuple[float, float]:
    """The UTC day as [start, end) UNIX seconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return start, start + DAY


def utc_day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def digest_title(day: date) -> str:
    return f"Plugin Digest {day.isoformat()}"


class FinishedRun(Record):
    """What a digest keeps of one run, read with ``json_extract``.

    A day can hold 100,000 runs: decoding each one's whole JSON into a
    :class:`Bead` cost more than squashing them.
    """

    id: int
    created_at: float
    plugin: str | None
    result: str | None
    duration: Any
    reason: Any
    log: Any

    @property
    def ref(self) -> str:
        return format_ref("wisp", self.id)


@dataclass
class PluginDay:
    """One plugin's runs of one day, as kept in a digest."""

    by_result: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, run: FinishedRun) -> None:
        self.by_result[run.result or "unknown"] += 1
        if isinstance(run.duration, int | float):
            self.durations.append(round(float(run.duration), 3))
        if run.result in ("failure", "timeout", "abandoned"):
            self.failures.append({"run": run.ref, "result": run.result, "at": run.created_at, "reason": run.reason})

    def merge(self, stored: dict[str, Any]) -> None:
        self.by_result.update(stored.get("by_result", {}))
        self.durations += stored.get("durations", [])
        self.failures = stored.get("failures", []) + self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": sum(self.by_result.values()),
            "by_result": dict(sorted(self.by_result.items())),
            "median_duration_s": round(statistics.median(self.durations), 3) if self.durations else None,
            "max_duration_s": max(self.durations) if self.durations else None,
            "failures": self.failures,
            "durations": sorted(self.durations),
        }


@dataclass
class DigestResult:
    """What one digest call did (or, with ``dry_run``, would do)."""

    day: date
    squashed: int = 0
    digest: Bead | None = None
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    merged: bool = False
    dry_run: bool = False
    logs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "title": digest_title(self.day),
            "id": self.digest.ref if self.digest else None,
            "squashed": self.squashed,
            "merged": self.merged,
            "dry_run": self.dry_run,
            "plugins": {name: {k: v for k, v in stats.items() if k != "durations"} for name, stats in self.plugins.items()},
        }


def make_digest(ledger: Ledger, day: date, plugins: Iterable[str], *, now: float, dry_run: bool = False) -> DigestResult:
    """Squash ``day``'s finished runs of ``plugins`` into that day's digest bead."""
    if day >= utc_day(now):
        raise GtError(f"{day.isoformat()} is not over yet (UTC): only past days are digested")
    names = sorted(set(plugins))
    start, end = day_bounds(day)

    def squash(conn: Any) -> DigestResult:
        result = DigestResult(day, dry_run=dry_run)
        runs = _finished_runs(conn, names, start, end)
        if not runs:
            result.digest = _existing_digest(conn, day)  # nothing new: point at the day's digest, if any
            return result
        days: dict[str, PluginDay] = defaultdict(PluginDay)
        for run in runs:
            days[run.plugin or "?"].add(run)
        existing = _existing_digest(conn, day)
        if existing is not None:
            result.merged = True
            for name, stored in existing.data.get("plugins", {}).items():
                days[name].merge(stored)
        result.squashed = len(runs)
        result.plugins = {name: days[name].to_json() for name in sorted(days)}
        if dry_run:
            return result
        result.digest = _write_digest(conn, day, existing, result.plugins, now)
        _delete(conn, [run.id for run in runs])
        result.logs = [run.log for run in runs if run.log]
        return result

    if dry_run:  # reads only: it must work on a read-only ledger too
        with ledger.snapshot() as conn:
            return squash(conn)
    result = ledger.write(squash)
    _remove_logs(result.logs)
    return result


def _finished_runs(conn: Any, names: list[str], start: float, end: float) -> list[FinishedRun]:
    found: list[FinishedRun] = []
    for offset in range(0, len(names), _CHUNK):
        chunk = names[offset:offset + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT id, created_at, plugin, result, json_extract(data, '$.duration_s'), json_extract(data, '$.reason'),"
            " json_extract(data, '$.log') FROM beads"
            f" WHERE kind = 'wisp' AND status = 'closed' AND created_at >= ? AND created_at < ? AND plugin IN ({marks})",
            (start, end, *chunk),
        ).fetchall()
        found += map(FinishedRun._make, rows)
    return found


def _existing_digest(conn: Any, day: date) -> Bead | None:
    row = conn.execute("SELECT id FROM beads WHERE kind = 'digest' AND title = ? ORDER BY id LIMIT 1", (digest_title(day),)).fetchone()
    return fetch_bead(conn, row[0]) if row else None


def _write_digest(conn: Any, day: date, existing: Bead | None, plugins: dict[str, dict[str, Any]], now: float) -> Bead:
    data = {"date": day.isoformat(), "plugins": plugins, "runs": sum(p["runs"] for p in plugins.values())}
    body = render_body(day, plugins)
    if existing is None:
        return insert_bead(conn, "digest", title=digest_title(day), status="closed", body=body, data=data,
                           labels=["type:plugin-digest", f"date:{day.isoformat()}"], now=now)
    update_bead(conn, existing, now=now, data=data)
    conn.execute("UPDATE beads SET body = ? WHERE id = ?", (body, existing.id))
    return existing


def _delete(conn: Any, ids: list[int]) -> None:
    """Delete beads and their labels: the ids go in as one JSON array, two statements whatever their number."""
    keys = json.dumps(ids)
    conn.execute("DELETE FROM labels WHERE bead_id IN (SELECT value FROM json_each(?))", (keys,))
    conn.execute("DELETE FROM beads WHERE id IN (SELECT value FROM json_each(?))", (keys,))


def _remove_logs(paths: Iterable[Any]) -> None:
    """Delete run logs after their records went; a log that cannot be removed is left, not fatal.

    ``os.unlink`` on the string, not ``Path(path).unlink()``: building 100,000
    Path objects cost as much as the unlinks themselves.
    """
    for path in paths:
        if path and isinstance(path, str):
            with contextlib.suppress(OSError):
                os.unlink(path)


def render_body(day: date, plugins: dict[str, dict[str, Any]]) -> str:
    """The digest as markdown, for people reading the bead."""
    lines = [f"# {digest_title(day)}", "", "| plugin | runs | results | median | max |", "|---|---|---|---|---|"]
    for name, stats in plugins.items():
        results = ", ".join(f"{result} {count}" for result, count in stats["by_result"].items())
        lines.append(f"| {name} | {stats['runs']} | {results} | {stats['median_duration_s']}s | {stats['max_duration_s']}s |")
    failures = [(name, failure) for name, stats in plugins.items() for failure in stats["failures"]]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {name} {failure['run']} {failure['result']}: {failure.get('reason') or ''}".rstrip() for name, failure in failures]
    return "\n".join(lines) + "\n"


def undigested_days(ledger: Ledger, plugins: Iterable[str], now: float) -> list[date]:
    """Past UTC days that still hold finished runs of ``plugins``."""
    names = sorted(set(plugins))
    if not names:
        return []
    today_start, _ = day_bounds(utc_day(now))
    rows = ledger.read(
        "SELECT DISTINCT CAST(created_at / 86400 AS INTEGER) FROM beads WHERE kind = 'wisp' AND status = 'closed'"
        f" AND created_at < ? AND plugin IN ({', '.join('?' * len(names))})",
        (today_start, *names),
    )
    return sorted(date(1970, 1, 1) + timedelta(days=row[0]) for row in rows)


def digests(ledger: Ledger, plugin: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Digest beads, newest day first; with ``plugin``, only the days it ran, and only its part of each.

    The plugin is chosen before ``limit`` applies: limiting first would hide a
    plugin's days behind newer days it did not run on.  Days are ordered by
    date (the title ends with it), not by when the digest was written: a day
    can be digested late.  A digest holds every duration of its day, so SQL
    only pre-selects by the plugin's key in the text and just enough beads are decoded.
    """
    sql = "SELECT id, title, data FROM beads WHERE kind = 'digest'"
    params: list[Any] = []
    if plugin is not None:
        sql += " AND instr(data, ?) > 0"
        params.append(json.dumps(plugin) + ":")
    sql += " ORDER BY title DESC, id DESC"
    if limit is not None and plugin is None:
        sql += " LIMIT ?"
        params.append(int(limit))
    found: list[dict[str, Any]] = []
    for bead_id, title, raw in ledger.read(sql, params):
        if limit is not None and len(found) >= limit:
            break
        data = json.loads(raw)
        plugins = data.get("plugins", {})
        if plugin is not None and plugin not in plugins:
            continue
        entry = {"id": format_ref("digest", bead_id), "date": data.get("date"), "title": title}
        if plugin is None:
            entry["plugins"] = {name: {k: v for k, v in stats.items() if k != "durations"} for name, stats in plugins.items()}
        else:
            entry.update({k: v for k, v in plugins[plugin].items() if k != "durations"})
        found.append(entry)
    return found


def prune(ledger: Ledger, keep_plugins: Iterable[str], retention_days: int, *, now: float,
          only_plugins: Iterable[str] | None = None) -> int:
    """Delete finished runs older than ``retention_days`` of plugins not in ``keep_plugins``.

    ``keep_plugins`` are the digest plugins (their runs go into digests
    instead); with ``only_plugins`` no other plugin's runs are touched (the
    patrol passes it while a plugin file is broken: its runs might be a digest
    plugin's).  ``retention_days = 0`` keeps everything.  Deletes in batches,
    one transaction each, so other writers never wait long.  Returns how many runs went.
    """
    if retention_days <= 0:
        return 0
    keep = sorted(set(keep_plugins))
    cutoff = now - retention_days * DAY
    # Not "NOT IN (NULL)" for an empty list: that is never true, and would keep every run.
    where = f" AND plugin NOT IN ({', '.join('?' * len(keep))})" if keep else ""
    params: list[Any] = [cutoff, *keep]
    if only_plugins is not None:
        only = sorted(set(only_plugins))
        if not only:
            return 0
        where += f" AND plugin IN ({', '.join('?' * len(only))})"
        params += only

    def delete(conn: Any) -> list[tuple[int, str | None]]:
        rows = conn.execute(
            "SELECT id, json_extract(data, '$.log') FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < ?"
            + where + f" LIMIT {PRUNE_BATCH}",
            params,
        ).fetchall()
        _delete(conn, [row[0] for row in rows])
        return rows

    total = 0
    while True:
        rows = ledger.write(delete)
        _remove_logs(row[1] for row in rows)
        total += len(rows)
        if len(rows) < PRUNE_BATCH:
            return total

