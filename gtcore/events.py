"""The engine's event bus: how the TUI and the CLI hear what the engine does.

Events are plain frozen dataclasses, published from whichever thread did the
work (a dog, the patrol).  Subscribers are called on that thread, so a UI
must hand the event over to its own loop (Textual: ``post_message`` or
``call_from_thread``).  A subscriber that raises is reported on stderr
once per subscriber and never breaks the engine.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of every engine event."""


@dataclass(frozen=True)
class RunClaimed(Event):
    run_id: str
    plugin: str
    rig: str
    dog: str
    at: float


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    plugin: str
    dog: str
    pid: int | None
    log: str
    at: float


@dataclass(frozen=True)
class OutputLine(Event):
    run_id: str
    plugin: str
    line: str


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    plugin: str
    rig: str
    dog: str
    result: str
    exit_code: int | None
    duration_s: float
    reason: str
    at: float
    run: Any = None  # the closed wisp (a gtcore.ledger.Bead), so listeners need not read it back


@dataclass(frozen=True)
class GateChanged(Event):
    plugin: str
    open: bool
    reason: str
    next_open_at: float | None


@dataclass(frozen=True)
class PluginSetChanged(Event):
    plugins: Any


@dataclass(frozen=True)
class PatrolFinished(Event):
    report: Any


@dataclass(frozen=True)
class DogChanged(Event):
    """A dog went idle or started working (the dogs pane listens to this)."""

    dog: str
    state: str
    plugin: str | None
    run_id: str | None


Subscriber = Callable[[Event], None]


class EventBus:
    """Thread-safe publish/subscribe with no UI dependency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._complained: set[int] = set()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it again."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # a broken listener must not stop a dog
                self._complain(subscriber, exc)

    def _complain(self, subscriber: Subscriber, exc: Exception) -> None:
        key = id(subscriber)
        if key not in self._complained:
            self._complained.add(key)
            sys.stderr.write(f"gtui: an event subscriber failed (later failures of it stay quiet): {type(exc).__name__}: {exc}\n")
