"""Time helpers: the ledger stores UNIX seconds, people and JSON read ISO 8601 UTC."""

from __future__ import annotations

import os
import time
from functools import lru_cache

from gtcore.core.durations import format_duration
from gtcore.core.records import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import tzinfo


def iso(timestamp: float | None) -> str | None:
    """``2026-11-24T20:04:05Z`` for JSON output, or None (datetime only for times ``gmtime`` cannot hold)."""
    if timestamp is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        from datetime import UTC, datetime

        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(timestamp: float | None, now: float) -> str:
    """``5m ago`` / ``in 3h`` / ``never``, for tables."""
    if timestamp is None:
        return "never"
    delta = now - timestamp
    if abs(delta) < 1:
        return "now"
    return f"{format_duration(delta)} ago" if delta > 0 else f"in {format_duration(-delta)}"


@lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """The machine's time zone with its DST rules ($TZ, else /etc/localtime, else UTC).

    ``datetime.now().astimezone()`` only gives today's fixed offset, which
    would put cron slots an hour off across a DST change.
    """
    from datetime import UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only for cron gates, when a slot is computed

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return UTC
