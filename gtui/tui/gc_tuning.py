"""The garbage collector, tuned for the control room's (and the kennel's) life and put back as it was when it ends.

While the control room runs, young collections wait for more allocations than
CPython's 700: the tables' render caches churn through objects, and with the
default every second or two brings a full collection that holds the GIL for
~100 ms with 1,000 plugins; a key press landing in one waits for it.  Once
the first snapshot is on screen, :meth:`GcTuning.freeze` moves what start-up
made (widgets, the plugin set, caches) out of every later collection's scans.
See bench/tui_bench.py.

From then on, a full collection every ``tidy`` seconds (the control room's:
:data:`TIDY_SECONDS`).  Without it an idle control room grew for a quarter of
an hour, from 61 to 74 MB with 1,000 plugins: the tables' rendered lines
refer to themselves (Textual caches a line as its own cropped copy), so each
one dropped is garbage only a collection frees, and the ones that lived long
enough to reach the oldest generation waited minutes for a full collection,
while Python's memory arenas filled around them.  With it the process stays
at about 60 MB; a full collection of what start-up did not freeze takes
10-20 ms.

:func:`share_malloc_arenas` has the worker threads share malloc's memory (glibc)
rather than each keep its own; it cannot be undone, so only ``gtui`` calls it.

This belongs to the entry point that runs the app, not to the app: a process
that embeds the app (a test, a benchmark) chooses for itself, and the
thresholds come back even when the app ends with an exception.
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType

YOUNG_THRESHOLD = 20_000  # allocations between young collections while the control room runs
TIDY_SECONDS = 15.0  # a full collection this often once start-up's objects are frozen (the control room's)
M_ARENA_MAX = -8  # glibc's mallopt() parameter: how many malloc arenas the process may have
MALLOC_ARENAS = 2  # the UI thread's, and one that every worker thread shares


class GcTuning:
    """A context manager: the tuned young threshold inside, and on the way out the previous thresholds, unfrozen.
    ``tidy``: seconds between full collections once :meth:`freeze` ran (None: only when Python decides)."""

    def __init__(self, young: int = YOUNG_THRESHOLD, tidy: float | None = None) -> None:
        self.young = young
        self.tidy = tidy
        self._before: tuple[int, int, int] | None = None
        self._frozen = False
        self._stop = threading.Event()
        self._tidier: threading.Thread | None = None

    def __enter__(self) -> GcTuning:
        self._before = gc.get_threshold()
        gc.set_threshold(self.young, *self._before[1:])
        return self

    def freeze(self) -> None:
        """Move every object alive now into the permanent generation, once, when start-up's objects exist (outside the
        context it does nothing: there would be nobody to unfreeze them)."""
        if self._before is not None and not self._frozen:
            gc.freeze()
            self._frozen = True
            if self.tidy is not None:
                self._stop.clear()
                tidier = threading.Thread(target=self._tidy, args=(self.tidy,), name="gc-tidy", daemon=True)
                try:
                    tidier.start()
                except RuntimeError:
                    return  # no thread to be had (a process limit): Python's own collections go on, the app goes on
                self._tidier = tidier  # kept once it runs: a thread that never started is nothing to join on the way out

    def _tidy(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            gc.collect()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._tidier is not None:
            self._stop.set()
            self._tidier.join()
            self._tidier = None
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        if self._before is not None:
            gc.set_threshold(*self._before)
            self._before = None


def share_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Have glibc's malloc keep at most ``arenas`` arenas from now on; False where it cannot (no glibc).

    glibc gives each new thread an arena of its own (up to eight per core), and what
    a thread frees stays in its arena, for it alone.  The control room's workers
    (the collector, the patrol, the patrol's condition checks: up to sixteen threads
    at once) each kept megabytes that way, about 4 MB of the process with 1,000
    plugins.  Only malloc's own blocks are shared (SQLite's, Python objects over
    512 bytes); the GIL serialises the rest anyway.  It holds for the whole process
    and cannot be undone: the entry point calls it, before the app's threads start.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
