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
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gtcore.core.beads import Bead, Result, format_ref
from gtcore.core.errors import GtError
from gtcore.core.records import TYPE_CHECKING
from gtcore.storage.contract import DigestDraft, FinishedRun, Ledger

if TYPE_CHECKING:
    from typing import Any

DAY = 86400.0
PRUNE_BATCH = 5000


def day_bounds(day: date) -> tuple[float, float]:
    """The UTC day as [start, end) UNIX seconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return start, start + DAY


def utc_day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def digest_title(day: date) -> str:
    return f"Plugin Digest {day.isoformat()}"


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
        if run.result in (Result.FAILURE, Result.TIMEOUT, Result.ABANDONED):
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
    result = DigestResult(day, dry_run=dry_run)

    def fold(runs: list[FinishedRun], existing: Bead | None) -> DigestDraft:
        days: dict[str, PluginDay] = defaultdict(PluginDay)
        for run in runs:
            days[run.plugin or "?"].add(run)
        if existing is not None:
            for name, stored in existing.data.get("plugins", {}).items():
                days[name].merge(stored)
        result.plugins = {name: days[name].to_json() for name in sorted(days)}
        data = {"date": day.isoformat(), "plugins": result.plugins, "runs": sum(p["runs"] for p in result.plugins.values())}
        return DigestDraft(data, render_body(day, result.plugins), ("type:plugin-digest", f"date:{day.isoformat()}"))

    squash = ledger.squash_day(digest_title(day), names, start, end, fold, dry_run=dry_run, now=now)
    result.digest = squash.digest
    if squash.runs:
        result.squashed, result.merged = len(squash.runs), squash.existing is not None
    if not dry_run:
        result.logs = [run.log for run in squash.runs if run.log]
        _remove_logs(result.logs)
    return result


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
    return sorted(date(1970, 1, 1) + timedelta(days=number) for number in ledger.run_days(names, today_start))


def digests(ledger: Ledger, plugin: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Digest beads, newest day first; with ``plugin``, only the days it ran, and only its part of each.

    The plugin is chosen before ``limit`` applies: limiting first would hide a
    plugin's days behind newer days it did not run on.  Days are ordered by
    date (the title ends with it), not by when the digest was written: a day
    can be digested late.  A digest holds every duration of its day, so SQL
    only pre-selects by the plugin's key in the text and just enough beads are decoded.
    """
    found: list[dict[str, Any]] = []
    for bead_id, title, data in ledger.digest_beads(plugin, limit if plugin is None else None):
        if limit is not None and len(found) >= limit:
            break
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
    only = None if only_plugins is None else sorted(set(only_plugins))
    if only == []:
        return 0

    total = 0
    while True:
        logs = ledger.prune_runs(cutoff, keep, only, PRUNE_BATCH)
        _remove_logs(logs)
        total += len(logs)
        if len(logs) < PRUNE_BATCH:
            return total

