"""The engine's small API: what the CLI and the TUI call.

One :class:`Engine` per process and town.  It owns the ledger, the settings,
the event bus and the patrol.  It executes nothing: a run it dispatches is
claimed ``queued`` on the ledger for the town's kennel
(:mod:`gtcore.dogs.kennel`), whose own engine's runner executes it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

from gtcore.core.beads import UNFINISHED, Bead, Drift, Report, parse_ref
from gtcore.core.errors import GtError, NotFound, Problem, RunInFlight, SettingsError
from gtcore.core.events import EventBus
from gtcore.core.records import TYPE_CHECKING
from gtcore.storage import ledger_at, open_ledger
from gtcore.town.layout import Town
from gtcore.town.settings import Settings, load_settings

READ_ONLY_CHECK = "no check known yet: a gtui that only reads (--read-only, plugin list) runs none; a patrol runs them"

if TYPE_CHECKING:  # imported where they are first used: a listing never loads the dogs, a patrol with nothing to send no mail code
    from collections.abc import Sequence
    from datetime import date
    from typing import Any

    from gtcore.core.beads import PluginStats
    from gtcore.core.events import Subscriber
    from gtcore.digest import DigestResult
    from gtcore.dogs.kennel import Kennel
    from gtcore.dogs.kennel_answers import Answerer
    from gtcore.dogs.runner import Runner
    from gtcore.escalation.escalations import Escalation, Escalations
    from gtcore.escalation.settings import EscalationSettings
    from gtcore.gascity.takeover import OrderEvents
    from gtcore.gates.decisions import GateDecision
    from gtcore.patrol.cycle import Patrol, PatrolReport
    from gtcore.patrol.health import PluginFacts
    from gtcore.plugins.cache import PluginCache
    from gtcore.plugins.discovery import PluginSet
    from gtcore.plugins.scan_keeper import ScanKeeper
    from gtcore.plugins.spec import Plugin
    from gtcore.storage.contract import Pause
    from gtcore.town.sessions import SessionHealth
    from gtcore.town.stale import BinaryStatus

    Dispatch = tuple[Plugin, str | None, float | None, int | None]  # a run to queue: rig (None: its own), open since, last run


class Engine:
    """Facade over the engine for one town."""

    def __init__(self, town: Town, settings: Settings | None = None, *, readonly: bool = False, adopt_orphans: bool = False,
                 plugin_bin: Callable[[], tuple[Path, ...]] | None = None, keep_caches: bool | None = None,
                 kennel_argv: Sequence[str] | None = None, scans: ScanKeeper | None = None) -> None:
        """``readonly`` opens the ledger for reading only; ``keep_caches`` (default: not ``readonly``) lets the
        parse caches in ``.gtui/`` be written (a listing keeps them warm; ``--read-only`` writes nothing at
        all); ``adopt_orphans`` (the kennel of the ``gtui`` command, never a library user) makes this process the
        subreaper of what its runs leave behind; ``plugin_bin`` holds the commands every run finds first on its
        PATH (the face's plugin-facing ``gt`` and ``bd``), asked for when the first run starts: a command that runs
        nothing writes no scripts; ``kennel_argv`` is the command that starts a kennel (``gtui``) when runs this
        engine queues find none alive on this host (None: a library user runs its own, or none); ``scans`` keeps the
        town's last scan while nothing it read changed (the kennel's, shared by the engines of the commands it answers;
        None: every :meth:`plugins` scans)."""
        self.town = town
        self.keep_caches = not readonly if keep_caches is None else keep_caches
        self.settings = settings if settings is not None else self._load_settings()
        self.ledger = open_ledger(town.ledger_path, readonly=readonly, url=self.settings.ledger)  # GT_LEDGER_URL wins
        self.adopt_orphans = adopt_orphans
        self.settings_problem: Problem | None = None
        self.plugin_bin = plugin_bin
        self.kennel_argv = tuple(kennel_argv) if kennel_argv else None
        self.scans = scans
        self.wake_kennel: Callable[[], None] | None = None  # set by the kennel this engine serves: its own runs need no socket
        self.kennel_problem: str | None = None  # why runs this engine queued wait (no kennel could be started)
        self.bus = EventBus()
        self._plugin_set: PluginSet | None = None
        self._order_events: OrderEvents | None = None  # a city's kennel writes its order runs back to Gas City

    def _load_settings(self) -> Settings:
        """gtui.toml, parsed only when it changed (a read-only engine reads the cache, never writes it)."""
        return load_settings(self.town.settings_dir, self.town.state_dir / "settings.cache", keep=self.keep_caches)

    @classmethod
    def tolerant(cls, town: Town, **options: Any) -> Engine:
        """An engine even when gtui.toml is broken (defaults, the problem kept in ``settings_problem``).

        For the commands plugins call: a typo in the settings must not cost a
        plugin its report, nor a person an escalation.
        """
        try:
            return cls(town, **options)
        except SettingsError as exc:
            engine = cls(town, Settings(), **options)
            engine.settings_problem = exc.problem()
            return engine

    @cached_property
    def runner(self) -> Runner:
        """What executes runs: made only in a kennel (a face queues, it never runs)."""
        from gtcore.dogs import processes
        from gtcore.dogs.runner import Runner

        if self.adopt_orphans:
            processes.become_subreaper()
        runner = Runner(self.town, self.ledger, self.settings, self.bus, self.plugin_bin() if self.plugin_bin else ())
        if self.town.is_city():
            from gtcore.gascity.takeover import OrderEvents

            self._order_events = OrderEvents(lambda name: (self._plugin_set or self.plugins()).get(name)).attach(self.bus)
        return runner

    @cached_property
    def patrol(self) -> Patrol:
        from gtcore.patrol.cycle import Patrol

        return Patrol(self.town, self.ledger, self.bus, self.plugin_cache, scan=self.plugins, settings=lambda: self.settings,
                      escalations=lambda: self.escalations, queue=self.queue, wait=self.wait_runs, owns_run=self.owns_run,
                      recover=self.recover,
                      kennel_problem=lambda: self.kennel_problem, call_kennel=self.call_kennel)

    @cached_property
    def escalations(self) -> Escalations:
        from gtcore.escalation.escalations import Escalations

        return Escalations(self.town, self.ledger, delivery_timeout=self.settings.delivery_timeout.seconds)

    @cached_property
    def plugin_cache(self) -> PluginCache:
        """Parsed plugin files and cron slots, kept in ``.gtui`` between processes (never written by a read-only engine)."""
        from gtcore.plugins.cache import PluginCache

        return PluginCache(self.town.state_dir / "plugins.cache", writable=self.keep_caches)

    @staticmethod
    def owns_run(run_id: int) -> bool:
        """Whether this process executes ``run_id`` (or still has to record it): a kennel in it does."""
        from gtcore.dogs.runner import owns_anywhere

        return owns_anywhere(run_id)

    def recover(self) -> list[Problem]:
        """Write the results the ledger refused earlier (a full disk, a server gone), this process's and the recovery
        journal's, before a patrol judges any run abandoned; what still cannot be written is a problem each."""
        from gtcore.dogs import recovery

        if "runner" in self.__dict__:
            self.runner.flush_pending()
        problems = []
        for entry in recovery.entries(self.town):
            answer = self.ledger.record_turn([entry.close(with_log=self.ledger.shares_logs)], [])[0]
            if isinstance(answer, Bead):
                recovery.forget(self.town, entry.run_id)
            elif isinstance(answer, NotFound):
                lost = recovery.set_aside(self.town, entry)
                problems.append(Problem(str(lost.path), None, lost.words()))
            else:
                problems.append(Problem(str(entry.path), None, entry._replace(error=str(answer)).words()))
        return problems

    def unrecorded(self, run_id: int) -> str | None:
        """The line to say of a run that ended but whose end the ledger refused (kept in the recovery journal), or None."""
        from gtcore.dogs import recovery

        entry = recovery.find(self.town, run_id)
        return entry.words() if entry is not None else None

    def queue(self, requests: list[Dispatch]) -> list[Bead | Exception]:
        """Claim runs ``queued`` for the kennel, in one commit, each apart (its queued wisp, or why it was refused); then a
        kennel of this host is woken (started when none is alive, see :mod:`gtcore.dogs.kennel`) if any of them may run here."""
        from gtcore.dogs import processes
        from gtcore.storage.contract import Claim

        stamp = time.time()
        who = processes.owner_identity()
        claims = [Claim(plugin.name, rig or plugin.rig, plugin.tracking.labels, now=stamp, expect_last_run=expect,
                        data={"since": stamp if since is None else since, "queued_by": who, "hosts": list(plugin.execution.hosts)})
                  for plugin, rig, since, expect in requests]
        answers = self.ledger.record_turn([], claims) if claims else []
        here = processes.hostname()
        if any(isinstance(answer, Bead) and request[0].execution.runs_on(here) for request, answer in zip(requests, answers, strict=True)):
            self.call_kennel()
        return answers

    def call_kennel(self) -> None:
        """Runs wait for this host's kennel: wake it, or start it (``kennel = "auto"``); why they must wait is kept."""
        if self.wake_kennel is not None:
            self.wake_kennel()
            return
        from gtcore.dogs import kennel

        if self.settings.kennel == "external":
            where = kennel.place(self.town)
            self.kennel_problem = None if kennel.wake(where) else (
                f"no kennel is running on {where.host}, and kennel = \"external\" in settings/gtui.toml: runs wait until"
                f" one is started (gtui kennel); after queue_timeout ({self.settings.queue_timeout}) they are abandoned")
            return
        if self.kennel_argv is None:
            return  # a library user with a kennel of its own
        self.kennel_problem = kennel.ensure(self.town, self.kennel_argv)

    def wait_runs(self, run_ids: Iterable[int], *, timeout: float | None = None, poll: float = 0.05,
                  follow: Callable[[Bead, str], None] | None = None) -> dict[int, Bead]:
        """Wait until these runs are closed, and a failure's escalation raised (or ``timeout`` passes); each run as it is then.

        While it waits it reads only where the runs are (:meth:`Ledger.run_states`), and only when the ledger moved:
        a command waiting on a thousand runs must not cost the kennel that runs them.  A run that ended but whose end
        the ledger refused (it waits in the recovery journal: :meth:`unrecorded` says so) is waited for no longer.
        A ledger that stops answering (a server restarting) is waited out for as long as a run's lease, as the kennel
        running the runs waits it out; past that, its error is raised.
        ``follow`` hears every line of the runs' logs as they are written (on this host), to the end.
        """
        wanted = list(dict.fromkeys(run_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        from gtcore.dogs.waiting import RunWatch

        watch = RunWatch(self, wanted, follow)
        while True:
            done = watch.look()
            if done or (deadline is not None and time.monotonic() >= deadline):
                return watch.runs()
            time.sleep(poll)

    def abandon_orphans(self, run_ids: list[int]) -> list[Bead]:
        """Close as ``abandoned`` those of these runs whose owner is gone (dead on this host, its lease run out on another),
        as a patrol would: a command waiting on a run whose kennel was killed must not wait for the next patrol."""
        from gtcore.patrol.cycle import reconcile

        in_flight = [run for run in self.ledger.fetch_runs(run_ids) if run.status == "running"]
        return reconcile(self.ledger, {str(run.id): run for run in in_flight}, self.owns_run, time.time(), math.inf, lambda _: False)

    def wait_taken(self, run_id: int, timeout: float) -> Bead:
        """The run once a kennel took it (or closed it), or as it is after ``timeout``: a dispatch names its dog if it can."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.ledger.get(run_id, "wisp")
            if run.status != "queued" or time.monotonic() >= deadline:
                return run
            time.sleep(0.02)

    def stop_run(self, ref: str | int, reason: str) -> Bead:
        """Stop a run in flight, whichever kennel runs it: a queued one is closed at once, a running one ended by its kennel."""
        run = self.run(ref)
        if run.status not in UNFINISHED:
            raise GtError(f"{run.ref} has ended already ({run.result})")
        stopped = self.ledger.request_stop(run.id, reason, now=time.time())
        if stopped.status == "running":
            self._wake_owner(stopped)
        return stopped

    def _wake_owner(self, run: Bead) -> None:
        """A kennel of this host learns at once that one of its runs must stop (another host's finds it on its next look)."""
        from gtcore.dogs import kennel, processes

        owner = run.data.get("owner") or {}
        if owner.get("host") != processes.hostname():
            return
        if self.wake_kennel is not None:
            self.wake_kennel()
        else:
            kennel.wake(kennel.place(self.town))

    def kennels(self, in_flight: list[Bead] | None = None) -> list[dict[str, Any]]:
        """The town's kennels as the ledger knows them, each said alive or not (this host's by its lock, others by their
        heartbeat on the ledger's clock), with its runs (of ``in_flight``, read here when not given)."""
        from gtcore.dogs import kennel, processes
        from gtcore.patrol.shapes import kennel_json, unbeaten_kennel_json

        beats = self.ledger.kennels()
        now, here = self.ledger.clock(), processes.hostname()
        local = kennel.alive(kennel.place(self.town))
        in_flight = self.runs_in_flight() if in_flight is None else in_flight
        found = []
        for beat in beats:
            if beat.host == here:
                living = local is not None and local.get("pid") == beat.pid
            else:
                living = now - beat.beat_at <= self.settings.run_lease.seconds
            runs = [run for run in in_flight if (run.data.get("owner") or {}).get("pid") == beat.pid
                    and (run.data.get("owner") or {}).get("host") == beat.host]
            found.append(kennel_json(beat, living, now, runs))
        if local is not None and not any(beat.host == here and beat.pid == local.get("pid") for beat in beats):
            found.append(unbeaten_kennel_json(here, local))
        return found

    def stop_kennel(self, *, drain: bool, reason: str) -> dict[str, Any] | None:
        """Ask this host's kennel to stop (its runs stopped and recorded) or drain; its answer, or None when none runs."""
        from gtcore.dogs import kennel

        where = kennel.place(self.town)
        if kennel.alive(where) is None:
            return None
        answer = kennel.tell(where, {"op": "drain" if drain else "stop", "reason": reason}, timeout=5.0)
        if answer is None or "error" in answer:
            raise GtError(f"the kennel on {where.host} did not answer on {where.socket}"
                          + (f": {answer['error']}" if answer else "") + f"; its lock is {where.lock}")
        return answer

    def kennel(self, *, patrol: bool = False, autostarted: bool = False, answerer: Answerer | None = None) -> Kennel:
        """This engine as the town's kennel on this host (``gtui kennel``): open it (the lock), start it, serve, close.
        ``answerer`` answers thin commands (:mod:`gtui.thin`) in the kennel's process."""
        from gtcore.dogs.kennel import Kennel

        return Kennel(self, patrol=patrol, autostarted=autostarted, answerer=answerer)

    @staticmethod
    def detach() -> Callable[[bool], None]:
        """Leave the command that started this process (an autostarted kennel): see :func:`gtcore.dogs.kennel.detach`."""
        from gtcore.dogs.kennel import detach

        return detach()

    def kennel_alive(self) -> bool:
        """Whether a kennel holds this town on this host now."""
        from gtcore.dogs import kennel

        return kennel.alive(kennel.place(self.town)) is not None

    def take_finished(self, reader: str = "once", limit: int = 500) -> tuple[list[Bead], bool]:
        """The runs that ended since ``reader`` last asked (each given once), and whether more wait."""
        return self.ledger.take_finished(reader, limit)

    def log_since(self, run: Bead, offset: int, limit: int = 65536) -> tuple[bytes, int]:
        """What a run's log holds from ``offset`` on (at most ``limit`` bytes), and the offset after it: how a face follows
        a run as it goes (nothing yet, or no file on this host: empty)."""
        try:
            with open(self.log_path(run), "rb") as handle:
                if os.fstat(handle.fileno()).st_size < offset:  # the log kept only its tail (past 2 MiB): from its start again
                    return b"[gtui: the log was cut to its last part; following from there]\n", 0
                handle.seek(offset)
                chunk = handle.read(limit)
        except OSError:
            return b"", offset
        return chunk, offset + len(chunk)

    def reload_settings(self) -> Settings:
        """Re-read gtui.toml; what can change live does (agent, grace, retention, interval)."""
        self.settings = self._load_settings()
        if "runner" in self.__dict__:
            self.runner.settings = self.settings
        if "escalations" in self.__dict__:
            self.escalations.delivery_timeout = self.settings.delivery_timeout.seconds
        return self.settings

    def close(self) -> None:
        """Let deliveries on their way land, and order events on their way to Gas City (a kennel stops its own runs:
        :meth:`gtcore.dogs.kennel.Kennel.close`)."""
        if "escalations" in self.__dict__:
            self.escalations.settle()
        if self._order_events is not None:
            self._order_events.flush()

    def release(self) -> None:
        """Close the ledger's connections (reopened if the engine is used again): an engine made for one command in a
        process that lives on (the kennel answering thin commands) must not keep its files or sockets open."""
        self.ledger.close()

    # -- plugins ----------------------------------------------------------------------

    def plugins(self) -> PluginSet:
        """Scan the town now (and remember the answer for run bookkeeping); unchanged files come from the cache, and the
        whole scan from :attr:`scans` when nothing it read changed since."""
        from gtcore.plugins.discovery import discover

        scan = discover if self.scans is None else self.scans.plugins
        self._plugin_set = scan(self.town, self.plugin_cache, self.settings.orders)
        self.plugin_cache.save()
        return self._plugin_set

    def after_run(self, run: Bead) -> Callable[[], object] | None:
        """What follows a recorded run (its escalation or recovery note), or None; decided on the dogs' loop, taken off it."""
        plugin = (self._plugin_set or self.plugins()).get(run.plugin or "")
        if plugin is None:
            return None
        return self.escalations.after_run(plugin.name, plugin.execution.severity, plugin.execution.notify_on_failure, run)

    def subscribe(self, subscriber: Subscriber, *kinds: type) -> Callable[[], None]:
        """Hear the engine's events (of ``kinds``, or all) on the thread that made them; returns how to stop hearing them."""
        return self.bus.subscribe(subscriber, *kinds)

    def changes(self) -> int:
        """An opaque token that differs whenever the town's records changed, in any process: cheap enough to poll each second."""
        return self.ledger.changes()

    def plugin_directories(self) -> list[Path]:
        """Every directory plugins are found in (the town's, each rig's, each crew clone's) and, in a city, every orders
        directory its last scan read: what a face watches for edits."""
        from gtcore.plugins.discovery import plugin_dirs

        city = self._plugin_set.city if self._plugin_set is not None else None
        return [directory for directory, *_ in plugin_dirs(self.town)] + [Path(root) for root in (city.roots if city else ())]

    # -- runs -------------------------------------------------------------------------

    def summary(self) -> dict[str, PluginStats]:
        """Every plugin's run count, failures and last run, by name (one query, kept up to date by the ledger itself)."""
        return self.ledger.plugin_summary()

    def paused(self) -> dict[str, str]:
        """The plugins an operator paused, with the reason given."""
        return self.ledger.paused()

    def plugin_facts(self, plugins: list[Plugin], now: float) -> dict[str, PluginFacts]:
        """Each plugin as the ledger knows it (last run, failure streak, pause, its gate at ``now``), by name: what
        ``plugin list`` and ``plugin show`` say beside the plugin as written."""
        from gtcore.patrol.health import plugin_facts

        facts = self.ledger.gate_facts()
        decisions = self.gate_decisions(plugins, facts.summary, facts.running.values(), facts.paused, now)
        return plugin_facts(self.ledger, plugins, facts.summary, facts.pauses, decisions)

    def pauses(self) -> dict[str, Pause]:
        """The plugins an operator paused: why, who and when."""
        return self.ledger.pauses()

    def runs_in_flight(self) -> list[Bead]:
        """Every run claimed and not yet closed (queued or running), in any process on the town."""
        return self.ledger.runs_in_flight()

    def runs(self, plugin: str, *, limit: int | None = 50) -> list[Bead]:
        """A plugin's runs, newest first: its history, and with ``limit=1`` its latest run."""
        return self.ledger.runs(plugin, limit=limit)

    def run(self, ref: str | int) -> Bead:
        """One run by the id people type (``run-12``) or its number."""
        return self.ledger.get(parse_ref(ref, "wisp"), "wisp")

    def runs_changed_since(self, since: float) -> list[Bead]:
        """Runs claimed or closed at or after ``since``, oldest change first: what a feed appends."""
        return self.ledger.changed_runs(since)

    def gate_decisions(self, plugins: list[Plugin], summary: dict[str, PluginStats], running: Iterable[Bead],
                       paused: dict[str, str], now: float) -> dict[str, GateDecision]:
        """Every plugin's gate at ``now``, by name, as a patrol would decide it.

        The caller passes the ledger facts it read already (the control room
        reads them once for all its panes); the town's events and the condition
        checks of this engine's patrols that are still current are added here.
        """
        from gtcore.patrol.cycle import decide_all

        refs = {run.plugin: run.ref for run in running if run.plugin}
        checks = self.patrol.current_checks(summary)
        if self.ledger.readonly:  # no patrol of this gtui will run a check: said, instead of promising one
            from gtcore.gates.decisions import unchecked

            unknown = unchecked(READ_ONLY_CHECK)
            checks = {**{plugin.name: unknown for plugin in plugins if plugin.gate.type == "condition"}, **checks}
        decided = decide_all(plugins, summary, refs, paused, self.ledger.last_events(), now, checks)
        return {plugin.name: decision for plugin, decision in decided}

    def dogs_in_town(self, now: float) -> list[dict[str, Any]]:
        """The dogs of every living kennel of the town (``gtui dog list``), working or idle, with any run in flight whose
        kennel is gone."""
        from gtcore.dogs.processes import hostname
        from gtcore.patrol.shapes import dogs_json

        in_flight = self.runs_in_flight()
        return dogs_json(self.kennels(in_flight), in_flight, now, hostname(), self.settings.dogs)

    def log_path(self, run: Bead) -> str:
        """Where a run's log is (or would be): the path it recorded, else where the runner writes logs."""
        return run.data.get("log") or str(self.town.runs_dir / f"{run.ref}.log")

    def log_tail(self, run: Bead, max_bytes: int, max_lines: int) -> str:
        """The last lines of a run's log ("" when it has none): a preview that never reads a whole log."""
        from gtcore.dogs.output import log_tail

        return log_tail(self.log_path(run), max_bytes, max_lines)

    def run_log(self, run: Bead) -> str:
        """What a run printed (its capped log), as text: the file on this host, else the ledger's copy (another host's
        run, on a shared ledger); an absent log says so."""
        path = self.log_path(run)
        try:
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            kept = self.ledger.run_log(run.id)
            if kept is not None:
                return kept
            from gtcore.dogs.output import no_log_reason

            raise NotFound(no_log_reason(run, path)) from None
        except OSError as exc:
            raise GtError(f"cannot read the log of {run.ref} at {path}: {exc.strerror or exc}") from None

    def listen(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """``on_change`` as soon as any host commits, where the ledger can tell (PostgreSQL); returns how to stop."""
        return self.ledger.listen(on_change)

    def copy_ledger(self, url: str) -> dict[str, Any]:
        """Copy this town's ledger, records, summary and run logs, into the empty shared ledger at ``url``; check it.

        The source is only read.  The logs go with their runs where the target
        keeps logs (every host reads them there); the summaries must agree
        afterwards, or the copy says so.
        """
        from gtcore.dogs.output import with_log_files

        target = ledger_at(url)
        try:
            with_logs = target.shares_logs and not self.ledger.shares_logs
            copied = target.load(with_log_files(part) if with_logs else part for part in self.ledger.dump())
            same = target.plugin_summary() == self.ledger.plugin_summary()
        finally:
            target.close()
        if not same:
            raise GtError(f"copied {copied} records to {target.where}, but its plugin summary differs from this ledger's: do not switch")
        return {"copied": copied, "to": target.where, "summary_checked": True}

    def notices(self) -> list[Problem]:
        """What the town's own files say that an operator should keep in view (Gas Town's daemon, Gas City's controller
        dispatching too)."""
        return [problem for problem in [self.town.daemon_problem(), self.town.controller_problem()] if problem is not None]

    def plugin(self, name: str) -> Plugin:
        return self.plugins().require(name, self.town)

    # -- digests ----------------------------------------------------------------------

    def digests(self, plugin: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The digested days of a plugin, newest first: its history once its runs were squashed."""
        from gtcore.digest import digests

        return digests(self.ledger, plugin, limit=limit)

    def make_digest(self, day: date, *, now: float, dry_run: bool = False) -> DigestResult:
        """Squash ``day``'s finished runs of the digest plugins (``[tracking] digest = true``, as the files say now) into its digest."""
        from gtcore.digest import make_digest

        names = [plugin.name for plugin in self.plugins().plugins if plugin.tracking.digest]
        return make_digest(self.ledger, day, names, now=now, dry_run=dry_run)

    # -- escalations ------------------------------------------------------------------

    def escalation_settings(self) -> EscalationSettings:
        """``settings/escalation.json``, read fresh (an edit applies at once); a broken file raises its SettingsError."""
        return self.escalations.settings()

    def list_escalations(self, *, include_closed: bool = False, severity: str | None = None, stale_only: bool = False,
                         now: float, settings: EscalationSettings | None = None) -> list[Escalation]:
        """Open and acknowledged escalations (closed ones too with ``include_closed``); ``stale_only`` judges by ``settings``."""
        return self.escalations.list(include_closed=include_closed, severity=severity, stale_only=stale_only, now=now,
                                     settings=settings)

    def escalation(self, ref: str) -> Escalation:
        """One escalation by its id (``esc-3``), whatever its status."""
        return self.escalations.get(ref)

    def raise_escalation(self, subject: str, severity: str, *, body: str = "", source: str = "cli", related: str | None = None,
                         now: float, fingerprint: str | None = None) -> tuple[Escalation, bool]:
        """Raise an escalation, or count an open one of the same source and subject (with ``fingerprint``: of that
        fingerprint, suppressed) again; whether it is new, and its first deliveries (waited for, at most one deadline)."""
        return self.escalations.raise_(subject, severity, body=body, source=source, related=related, now=now, fingerprint=fingerprint)

    def ack_escalation(self, ref: str, *, now: float) -> Escalation:
        """A person has it: it stops re-escalating."""
        return self.escalations.ack(ref, now=now)

    def close_escalation(self, ref: str, *, reason: str, now: float) -> Escalation:
        """Done with it, and why (its undelivered deliveries are dropped, recorded as such)."""
        return self.escalations.close(ref, reason=reason, now=now)

    def reescalate_stale(self, now: float, *, dry_run: bool = False) -> list[tuple[Escalation, str, str]]:
        """Move every stale escalation one severity up (with ``dry_run``, only say which would go): (escalation, old, new) each."""
        return self.escalations.reescalate_stale(now, dry_run=dry_run)

    # -- the town's binaries and mail -------------------------------------------------

    def binary_status(self, name: str | None = None) -> BinaryStatus:
        """Whether a binary of ``[[stale.binaries]]`` is behind its repository (``gt stale``): ``name``, else ``gt``, else the first."""
        from gtcore.town.stale import pick_binary

        return pick_binary(self.settings.stale_binaries, self.town, name)

    def mail(self, *, to: str | None = None, limit: int = 200) -> list[Bead]:
        """Mail beads, newest first; ``to`` keeps the mail of one address."""
        return self.ledger.beads("mail", label=f"to:{to}" if to else None, limit=limit)

    def patrol_once(self, *, wait: bool = False, now: float | None = None,
                    follow: Callable[[Bead, str], None] | None = None) -> PatrolReport:
        """One patrol; with ``wait``, until the runs it queued have ended (``follow`` hears their output lines)."""
        return self.patrol.run_once(now, wait=wait, follow=follow)

    def run_plugin(self, name: str, *, force: bool = False, rig: str | None = None) -> Bead:
        """Queue a run of a plugin now, ignoring its gate; refuses while one is in flight.  Returns the queued run.

        A disabled or paused plugin runs only with ``force``.  ``rig`` runs a
        town-level plugin for one rig (``GT_RIG``); a rig's plugin only for
        its own.  A plugin pinned to other hosts waits for their kennels.
        """
        plugin = self.plugin(name)
        if rig is not None and rig not in self.town.rigs():
            raise NotFound(f"no rig named {rig!r} in town {self.town.root} (the rigs: {', '.join(self.town.rigs()) or 'none'})")
        if rig is not None and plugin.rig not in ("town", rig):
            raise GtError(f"plugin {name} belongs to rig {plugin.rig}, not {rig}")
        if not force:
            if not plugin.runs_by_itself:
                raise GtError(f"plugin {name} is {plugin.disabled_reason}; use --force to run it anyway")
            reason = self.ledger.paused().get(name)
            if reason is not None:
                raise GtError(f"plugin {name} is paused by an operator{': ' + reason if reason else ''}; resume it or use --force")
        from gtcore.dogs.waiting import where
        from gtcore.storage.contract import ANY_LAST_RUN

        (answer,) = self.queue([(plugin, rig, None, ANY_LAST_RUN)])
        if isinstance(answer, RunInFlight):
            for run in self.ledger.runs_in_flight():
                if run.plugin == name:
                    raise RunInFlight(f"plugin {name} already has a run in flight ({run.ref}, {where(run)})") from None
        if isinstance(answer, Exception):
            raise answer
        return answer

    def set_paused(self, name: str, paused: bool, reason: str = "", by: str | None = None) -> bool:
        """Pause or resume; returns False when it was already in that state.  ``by``: who, in words (by default the
        user and host of this process, ``ann@build-box``)."""
        import getpass

        from gtcore.dogs import processes

        plugin = self.plugin(name)
        if (plugin.name in self.ledger.paused()) == paused:
            return False
        if by is None:
            try:
                by = f"{getpass.getuser()}@{processes.hostname()}"
            except (KeyError, OSError):  # a uid with no name (a container's)
                by = f"uid {os.getuid()}@{processes.hostname()}"
        self.ledger.set_paused(plugin.name, paused, reason=reason, by=by)
        return True

    def emit_event(self, name: str, *, source: str = "cli") -> None:
        from gtcore.plugins.spec import NAME_PATTERN

        if not NAME_PATTERN.match(name):
            raise GtError(f"{name!r} is not an event name (lowercase letters, digits, '.', '_', '-')")
        self.ledger.emit_event(name, source=source, now=time.time())

    # -- what a plugin asks of the town (the plugin-facing gt and bd) -----------------

    def report(self, run_ref: str, token: str, report: Report) -> Bead:
        """A plugin's own report of the run it is part of (its token proves which run that is)."""
        return self.ledger.report_run(parse_ref(run_ref, "wisp"), token, report, now=time.time())

    def note_drift(self, run_ref: str, token: str, drift: Drift) -> Bead:
        """Keep on the run (its token proves which) a call of it to ``gt``/``bd`` that gtui did not answer as asked: its
        problems."""
        return self.ledger.note_drift(parse_ref(run_ref, "wisp"), token, drift, now=time.time())

    def record_receipt(self, plugin: str, report: Report, *, rig: str = "town", actor: str = "") -> Bead:
        """A run of ``plugin`` recorded outside any run of it (``gt plugin record-run``): closed at once, and counted by
        its history and its gate as a run, as Gas Town counts its receipts."""
        from gtcore.storage.contract import Receipt

        return self.ledger.record_receipt(Receipt(plugin, rig, report, actor, time.time()))

    def session_health(self, session: str, max_inactivity: float = 0.0) -> SessionHealth:
        """Gas Town's ``gt session health``: is the town's tmux session ``session`` alive (see :mod:`gtcore.town.sessions`)?"""
        from gtcore.town.sessions import session_health, socket_name

        return session_health(session, max_inactivity, socket_name(self.town.root, os.environ), time.time())

    def create_note(self, title: str, *, description: str = "", labels: Iterable[str] = (), issue_type: str = "task",
                    ephemeral: bool = False, actor: str = "") -> Bead:
        """A bead a plugin keeps on the ledger that is not a run report (``bd create`` of a chore, a finding)."""
        return self.ledger.create("note", title=title, body=description, labels=labels,
                                  data={"issue_type": issue_type, "ephemeral": ephemeral, "actor": actor})

    NOTE_KINDS = ("wisp", "note", "escalation", "mail")

    def find_beads(self, *, labels: Iterable[str] = (), statuses: Iterable[str] | None = None, created_after: float | None = None,
                   limit: int | None = None) -> list[Bead]:
        """Runs, notes, escalations and mail carrying every one of ``labels``, newest first (``bd list``)."""
        return self.ledger.find(self.NOTE_KINDS, labels=labels, statuses=statuses, created_after=created_after, limit=limit)

    def bead(self, ref: str) -> Bead:
        return self.ledger.by_ref(ref)

    def close_note(self, ref: str, reason: str = "") -> Bead:
        """Close a note; runs and escalations have lifecycles of their own and are refused."""
        bead = self.ledger.by_ref(ref)
        if bead.kind != "note":
            raise GtError(f"{bead.ref} is {'a run: gtui closes it when it ends' if bead.kind == 'wisp' else f'an {bead.kind}'};"
                          " only notes are closed this way")
        return self.ledger.close_bead(bead, reason=reason)

    def send_mail(self, to: str, subject: str, body: str, *, sender: str) -> Bead:
        """Mail a town address (``gt mail send``): a mail bead, read with ``gtui mail list --to``."""
        target = to.rstrip("/") or to
        return self.ledger.create("mail", title=subject, body=body, labels=[f"to:{target}", f"from:{sender}", "gt:message"],
                                  data={"to": target, "from": sender}, now=time.time())
