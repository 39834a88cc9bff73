"""The kennel's last scan of its town, reused while the kernel proves that nothing the scan read has changed.

Every thin command the kennel answers (``--once``, ``plugin list``) builds an
engine that scans the town: two ``stat`` calls per plugin, a third of an
idle answer at a thousand plugins.  A :class:`ScanKeeper`, one per kennel and
shared by the engines of its answers, keeps the last scan and an inotify
watch (:mod:`gtcore.plugins.file_watch`) on every path it read
(:func:`gtcore.plugins.discovery.scan_reads`); an answer takes the kept scan when no
event came since, else scans.

A scan is trusted only when every watch it needs was in place before it
began: after each scan the keeper watches what it found, and a scan during
which a watch had to be added (a new plugin, a new rig, the first scan) is
not kept; the next command scans again, and that scan is.  A city (whose
orders depend on settings and on files no watch covers), a path that cannot
be watched (a dangling link) or inotify not to be had (not Linux, its limits
reached) keep nothing: every command scans, as without a keeper.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from gtcore.core.records import TYPE_CHECKING
from gtcore.plugins.cache import PluginCache
from gtcore.plugins.discovery import PluginSet, discover, scan_reads
from gtcore.plugins.file_watch import Watch
from gtcore.town.layout import Town

if TYPE_CHECKING:
    from gtcore.town.settings import OrderSettings


class ScanKeeper:
    """The last trusted scan of one town and the watch that proves it current (thread-safe: answers run at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watch = Watch()
        self._kept: tuple[Path, PluginSet] | None = None  # the town and its trusted scan
        self.scans = 0  # how many scans it made (the rest of its answers were kept ones)

    def plugins(self, town: Town, cache: PluginCache | None = None,
                orders: Mapping[str, OrderSettings] | None = None) -> PluginSet:
        """What :func:`gtcore.plugins.discovery.discover` would answer now: the kept scan (a copy: a caller may add to its
        lists) when nothing it read changed since it was made, else a new scan."""
        with self._lock:
            changed = self._watch.changed()
            if self._kept is not None and self._kept[0] == town.root and not changed:
                return _copy(self._kept[1])
            self._kept = None  # the events are read: should this scan fail, the next one must not take the old
            found = discover(town, cache, orders)
            self.scans += 1
            reads = scan_reads(town)
            trusted = reads is not None and self._watch.watch(reads)
            self._kept = (town.root, _copy(found)) if trusted else None
            return found

    def close(self) -> None:
        """Drop the watch and the kept scan (the kennel goes): every later call scans."""
        with self._lock:
            self._watch.close()
            self._kept = None


def _copy(scan: PluginSet) -> PluginSet:
    return PluginSet(list(scan.plugins), list(scan.invalid), list(scan.warnings))
