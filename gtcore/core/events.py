"""The engine's event bus: how the TUI and the CLI hear what the engine does.

Events are records (immutable named tuples, :mod:`gtcore.core.records`),
published from whichever thread did the work (a dog, the patrol).  Subscribers are called on that thread, so a UI
must hand the event over to its own loop (Textual: ``post_message`` or
``call_from_thread``).  A subscriber that raises is reported on stderr
once per subscriber and never breaks the engine.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable

from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any


class RunClaimed(Record):
    run_ref: str  # "run-12": the run as people and Gas Town name it (its id on the ledger is the int)
    plugin: str
    rig: str
    dog: str
    at: float


class RunStarted(Record):
    run_ref: str
    plugin: str
    dog: str
    pid: int | None
    log: str
    at: float


class OutputLine(Record):
    run_ref: str
    plugin: str
    line: str


class RunFinished(Record):
    run_ref: str
    plugin: str
    rig: str
    dog: str
    result: str
    exit_code: int | None
    duration_s: float
    reason: str
    at: float
    run: Any = None  # the closed wisp (a gtcore.model.Bead), so listeners need not read it back


class GateChanged(Record):
    plugin: str
    open: bool
    reason: str
    next_open_at: float | None


class PluginSetChanged(Record):
    plugins: Any


class PatrolFinished(Record):
    report: Any


class DogChanged(Record):
    """A dog went idle or started working (the dogs pane listens to this)."""

    dog: str
    state: str
    plugin: str | None
    run_ref: str | None


Event = RunClaimed | RunStarted | OutputLine | RunFinished | GateChanged | PluginSetChanged | PatrolFinished | DogChanged
"""Every engine event: plain immutable records, built cheaply (a patrol can make a thousand)."""
Subscriber = Callable[[Event], None]


MAX_FAILURES = 50


class EventBus:
    """Thread-safe publish/subscribe with no UI dependency.

    A subscriber may name the kinds of event it wants; one that names none
    gets every event.  :meth:`wants` lets a publisher skip building events
    nobody listens to (a ``--once`` has no use for a thousand gate changes).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[Subscriber, tuple[type, ...]]] = []
        self._complained: set[int] = set()
        self._failures: deque[str] = deque(maxlen=MAX_FAILURES)

    def subscribe(self, subscriber: Subscriber, *kinds: type) -> Callable[[], None]:
        """Add a subscriber (for ``kinds`` of event, or all); returns a function that removes it again."""
        entry = (subscriber, kinds)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def wants(self, kind: type) -> bool:
        """Whether anyone listens to events of ``kind``."""
        with self._lock:
            return any(not kinds or issubclass(kind, kinds) for _, kinds in self._subscribers)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = [subscriber for subscriber, kinds in self._subscribers if not kinds or isinstance(event, kinds)]
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # a broken listener must not stop a dog
                self._complain(subscriber, exc)

    def _complain(self, subscriber: Subscriber, exc: Exception) -> None:
        """Keep the failure for the next patrol's problems (where the Deacon and the control room look); say it once on stderr."""
        name = getattr(subscriber, "__qualname__", type(subscriber).__name__)
        with self._lock:
            self._failures.append(f"event subscriber {name} failed (a bug, please report it): {type(exc).__name__}: {exc}")
        key = id(subscriber)
        if key not in self._complained:
            self._complained.add(key)
            sys.stderr.write(f"gtui: an event subscriber failed (later failures of it stay quiet): {type(exc).__name__}: {exc}\n")

    def take_failures(self) -> list[str]:
        """Subscriber failures since the last call, oldest first (at most the last :data:`MAX_FAILURES`)."""
        with self._lock:
            failures = list(self._failures)
            self._failures.clear()
        return failures
