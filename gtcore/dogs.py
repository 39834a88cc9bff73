"""Dogs: the named workers that execute plugin runs without blocking the patrol.

Dispatch only queues.  The queue is ordered by how long a plugin's gate has
been open (``since``), then by arrival, so when more gates are open than dogs
are idle the longest-waiting plugin goes first and none is starved: a plugin
is queued at most once, so each can be overtaken only a bounded number of times.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from gtcore.events import DogChanged, Event, EventBus, RunClaimed
from gtcore.ledger import ANY_LAST_RUN
from gtcore.model import Dog, dog_names
from gtcore.plugins import Plugin
from gtcore.runner import Runner, RunOutcome


@dataclass(order=True)
class _Job:
    since: float
    seq: int
    plugin: Plugin = field(compare=False)
    expect_last_run: int | None = field(compare=False)
    rig: str | None = field(compare=False)
    future: Future[RunOutcome] = field(compare=False)


class DogPool:
    """A fixed pack of dogs (threads) fed from one ordered queue."""

    def __init__(self, runner: Runner, size: int, bus: EventBus) -> None:
        self.runner = runner
        self.bus = bus
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._wanted: set[str] = set()
        self._dogs = {name: Dog(name) for name in dog_names(size)}
        self._closing = False
        bus.subscribe(self._on_event, RunClaimed)
        self._threads = [threading.Thread(target=self._work, args=(name,), name=f"dog-{name}", daemon=True) for name in self._dogs]
        for thread in self._threads:
            thread.start()

    def dispatch(
        self,
        plugin: Plugin,
        *,
        since: float | None = None,
        expect_last_run: int | None = ANY_LAST_RUN,
        rig: str | None = None,
    ) -> Future[RunOutcome] | None:
        """Queue a run; None when this plugin is already queued or running here."""
        with self._cond:
            if plugin.name in self._wanted or self._closing:
                return None
            future: Future[RunOutcome] = Future()
            job = _Job(time.time() if since is None else since, next(self._seq), plugin, expect_last_run, rig, future)
            heapq.heappush(self._queue, job)
            self._wanted.add(plugin.name)
            self._cond.notify()
            return future

    def dogs(self) -> list[Dog]:
        with self._cond:
            return list(self._dogs.values())

    def queued(self) -> list[str]:
        """Plugins waiting for a dog, next first."""
        with self._cond:
            return [job.plugin.name for job in sorted(self._queue)]

    def busy(self) -> bool:
        with self._cond:
            return bool(self._wanted)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no dog works (True) or ``timeout`` passes (False)."""
        ends = time.monotonic() + timeout
        with self._cond:
            while self._wanted and (left := ends - time.monotonic()) > 0:
                self._cond.wait(min(left, 0.1))
            return not self._wanted

    def shutdown(self) -> None:
        """Stop taking work; queued jobs are dropped, running ones finish on their own."""
        with self._cond:
            self._closing = True
            for job in self._queue:
                job.future.set_result(RunOutcome(None, "gtui is shutting down"))
                self._wanted.discard(job.plugin.name)
            self._queue.clear()
            self._cond.notify_all()

    def _work(self, name: str) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job = heapq.heappop(self._queue)
                self._set(name, Dog(name, "working", job.plugin.name, None, time.time(), job.plugin.execution.timeout.seconds))
            try:
                outcome = self.runner.run(job.plugin, name, expect_last_run=job.expect_last_run, rig=job.rig)
            except Exception as exc:  # a dog never dies: report and go on
                outcome = RunOutcome(None, f"dog {name} failed: {type(exc).__name__}: {exc}")
            with self._cond:
                self._wanted.discard(job.plugin.name)
                self._set(name, Dog(name))
                self._cond.notify_all()
            job.future.set_result(outcome)

    def _set(self, name: str, dog: Dog) -> None:
        self._dogs[name] = dog
        self.bus.publish(DogChanged(name, dog.state, dog.plugin, dog.run_id))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RunClaimed):
            with self._cond:
                dog = self._dogs.get(event.dog)
                if dog is not None and dog.plugin == event.plugin:
                    self._dogs[event.dog] = dog._replace(run_id=event.run_id, started_at=event.at)
