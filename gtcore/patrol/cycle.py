"""The patrol: one cycle of reconcile, scan, evaluate, dispatch (and wait, if asked).

Order matters: abandoned runs are closed first so their plugins' gates see
the truth; condition checks run in parallel before any gate is decided; only
then are the open plugins' runs queued for the kennel, in one commit, each
with the last run id its decision was based on, so two patrols racing on one
town dispatch a plugin once.  Dispatching is queueing: the patrol returns at
once, and the kennel of an eligible host runs what it queued.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from gtcore.core.beads import Bead, GateState, PluginStats, Result
from gtcore.core.clock import iso
from gtcore.core.durations import format_duration
from gtcore.core.errors import LedgerError, Problem, RunInFlight, brief
from gtcore.core.events import GateChanged, PatrolFinished, PluginSetChanged
from gtcore.core.records import TYPE_CHECKING
from gtcore.gates.decisions import CheckResult, GateDecision, GateFacts
from gtcore.gates.rules import evaluate
from gtcore.patrol.health import EscalationCounts, Health, PluginFacts, escalation_counts, health, plugin_facts
from gtcore.patrol.shapes import REPORT_SCHEMA, escalations_json, facts_json, health_json, run_json
from gtcore.plugins.discovery import PluginSet
from gtcore.plugins.spec import InvalidPlugin, Plugin
from gtcore.storage.contract import OWED, EventMark, Ledger, LedgerFacts
from gtcore.town.settings import SettingsError

UPKEEP_INTERVAL = 3600.0

UPKEEP_EVENT = "gtui.upkeep"  # a town event: when any gtui on the town last digested and pruned

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Protocol

    from gtcore.core.events import EventBus
    from gtcore.engine import Dispatch
    from gtcore.escalation.escalations import Escalations
    from gtcore.plugins.cache import PluginCache
    from gtcore.town.layout import Town
    from gtcore.town.settings import Settings

    Queue = Callable[[list[Dispatch]], list[Bead | Exception]]
    Follow = Callable[[Bead, str], None]

    class Wait(Protocol):
        def __call__(self, run_ids: Iterable[int], *, follow: Follow | None = None) -> dict[int, Bead]: ...


class PluginReport:
    """One plugin's part in a patrol: its gate, and the run it queued (closed, when the patrol waited)."""

    __slots__ = ("decision", "dispatched", "note", "plugin", "run")

    def __init__(self, plugin: Plugin, decision: GateDecision) -> None:
        self.plugin, self.decision = plugin, decision
        self.dispatched = False
        self.run: Bead | None = None
        self.note: str | None = None

    def to_json(self, facts: PluginFacts | None = None) -> dict[str, Any]:
        return {
            "name": self.plugin.name,
            "kind": self.plugin.kind,
            "rig": self.plugin.rig,
            "enabled": self.plugin.runs_by_itself,
            "gate": {
                "type": self.plugin.gate.type,
                "open": self.decision.open,
                "state": self.decision.state,
                "reason": self.decision.reason + (f"; {self.note}" if self.note else ""),
                "next_open_at": iso(self.decision.next_open_at),
            },
            "dispatched": self.dispatched,
            "run": _run_summary(self.run) if self.run else None,
            **facts_json(facts),
        }


def _run_summary(run: Bead) -> dict[str, Any]:
    full = run_json(run)
    return {key: full[key] for key in ("id", "status", "dog", "result", "exit_code", "duration_s", "log", "summary", "reported_result")}


class PatrolReport:
    """What one patrol saw and did; ``gtui --once --json`` prints :meth:`to_json`."""

    def __init__(self, town: str, started_at: float) -> None:
        self.town, self.started_at = town, started_at
        self.finished_at: float | None = None
        self.plugins: list[PluginReport] = []
        self.invalid: list[InvalidPlugin] = []
        self.abandoned: list[Bead] = []  # runs this patrol closed as abandoned (their owner died, or no kennel took them)
        self.reescalated: list[str] = []
        self.digests: list[str] = []
        self.pruned = 0
        self.warnings: list[str] = []
        self.problems: list[Problem] = []
        self.undeliverable = False  # escalations cannot be delivered (broken settings or failing channels)
        self.unrecorded: list[str] = []  # runs that ended and whose end the ledger still refuses (kept in the recovery journal)
        self.deliveries_held = False  # the escalation settings cannot be read: every delivery waits for them
        self.facts: dict[str, PluginFacts] = {}  # each plugin as the ledger knows it once the patrol is done
        self.escalations = EscalationCounts(0, {}, {}, [])

    @property
    def failed(self) -> bool:
        return any(item.run is not None and item.run.result in ("failure", "timeout") for item in self.plugins)

    def health(self) -> Health:
        """The town's health after this patrol, from all it saw (the problems a command adds to the report count too)."""
        plugins = [(item.plugin, self.facts[item.plugin.name]) for item in self.plugins if item.plugin.name in self.facts]
        urgent = list(self.unrecorded)
        if self.undeliverable:
            urgent.append("escalations cannot reach a person (their settings or a channel fail: see problems)")
        return health(plugins, self.invalid, self.escalations, self.problems, self.abandoned, urgent)

    def to_json(self, health: Health | None = None) -> dict[str, Any]:
        """The report as ``--once --json`` prints it; ``health``: :meth:`health`, when the caller has it already."""
        return {
            "schema": REPORT_SCHEMA,
            "town": self.town,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "health": health_json(health if health is not None else self.health()),
            "escalations": escalations_json(self.escalations),
            "plugins": [item.to_json(self.facts.get(item.plugin.name)) for item in self.plugins],
            "invalid": [bad.to_json() for bad in self.invalid],
            "abandoned": [run.ref for run in self.abandoned],
            "problems": [problem.to_json() for problem in self.problems],
        }


def gate_facts(ledger: Ledger) -> tuple[dict[str, PluginStats], dict[str, str], dict[str, str], dict[str, EventMark]]:
    """Everything the gates need from the ledger (one query): summary, running run ids, pauses, town events."""
    facts = ledger.gate_facts()
    return facts.summary, {plugin: run.ref for plugin, run in facts.running.items()}, facts.paused, facts.events


def decide_all(
    plugins: list[Plugin],
    summary: dict[str, PluginStats],
    running: dict[str, str],
    paused: dict[str, str],
    events: dict[str, EventMark],
    now: float,
    checks: dict[str, Any] | None = None,
) -> list[tuple[Plugin, GateDecision]]:
    """Pure: every plugin's gate decision from ledger facts."""
    decided = []
    for plugin in plugins:
        stats = summary.get(plugin.name)
        facts = GateFacts(stats.last_started_at if stats else None, running.get(plugin.name), paused.get(plugin.name),
                          stats.last_run_id if stats else None)
        decided.append((plugin, evaluate_contained(plugin, facts, events, now, (checks or {}).get(plugin.name))))
    return decided


def evaluate_contained(plugin: Plugin, facts: GateFacts, events: dict[str, EventMark], now: float,
                       check: CheckResult | None) -> GateDecision:
    """One plugin's gate; whatever goes wrong deciding it closes that gate alone, with the reason."""
    try:
        return evaluate(plugin, facts, events, now, check)
    except Exception as exc:  # a bug in gtui or a schedule croniter cannot follow: this plugin only
        return GateDecision(GateState.ERROR, f"gate error (a bug in gtui, please report it): {type(exc).__name__}: {brief(exc)}")


_CLOCK_WORDS = re.compile(r"\b(?:now|in \d[\d.a-z]*|\d[\d.a-z]* ago)\b")  # what clock.age() writes


def gate_state(decision: GateDecision) -> tuple[bool, str, float | None, float | None]:
    """A gate's state as GateChanged compares it: open, why and when, but not how long ago.

    Reasons such as "last run 5m ago, opens in 55m" reword themselves as the
    clock moves; counting that as a change would announce every cooldown and
    event gate as changed on every patrol.
    """
    return decision.open, _CLOCK_WORDS.sub("~", decision.reason), decision.next_open_at, decision.since


def reconcile(ledger: Ledger, running: dict[str, Bead], owns: Callable[[int], bool], now: float,
              queue_timeout: float, owes: Callable[[str], bool]) -> list[Bead]:
    """Close runs whose owner is gone, and queued runs no kennel took in time, as ``abandoned``; returns those closed.

    ``owns`` says whether this process still executes (or has to record) a run:
    those are never touched, whoever the ledger says owns them.  Another's run
    is gone when its owner on this host is dead, or, on another host, when
    its lease ran out (``run_lease`` without a renewal: the owner died with
    its host, or lost the ledger).  Leases and the queue's wait are read on
    the ledger's own clock, never this host's, whatever ``now`` the patrol
    decides at.  A queued run waits ``queue_timeout`` for a kennel; after that
    it is abandoned, and its plugin escalates it (``owes(plugin)``) like a
    failed run.
    """
    from gtcore.dogs import processes
    from gtcore.storage.contract import Close

    closed, here, clock = [], processes.hostname(), ledger.clock()
    for run in running.values():
        owed = False
        if run.status == Result.QUEUED:
            why = _unclaimed(run, clock, queue_timeout)
            owed = why is not None and owes(run.plugin or "")
        else:
            owner = run.data.get("owner")
            if not isinstance(owner, dict) or owns(run.id):
                continue
            why = _gone(run, owner, here, clock)
            if why is not None and owner.get("host") == here and _kill_leftovers(run):
                why += "; its leftover processes were killed"
        if why is None:
            continue
        (answer,) = ledger.record_turn([Close(run.id, Result.ABANDONED, {"reason": why}, now, owed=owed)], [])
        if isinstance(answer, Exception):
            raise answer
        if answer.result == Result.ABANDONED and answer.closed_at == now:
            closed.append(answer)  # not a run that ended by itself since it was read: closing twice keeps the first result
    return closed


def _unclaimed(run: Bead, clock: float, queue_timeout: float) -> str | None:
    """Why a queued run is given up (no kennel took it within ``queue_timeout``, on the ledger's clock), or None."""
    queued = run.data.get("queued_at")
    waited = clock - (queued if isinstance(queued, int | float) else run.created_at)
    if waited < queue_timeout:
        return None
    hosts = run.data.get("hosts") or []
    where = f"a kennel on {', '.join(map(str, hosts))} ([execution] hosts)" if hosts else "a kennel that knows the plugin"
    return f"no kennel took it within {format_duration(waited)} (queue_timeout): it waited for {where}"


def _gone(run: Bead, owner: dict[str, Any], here: str, clock: float) -> str | None:
    """Why a run in flight that this process does not execute has lost its owner, or None while it has one.

    On this host the owner's process decides, never a clock: a living owner
    (its pid and start time) keeps its run whatever the lease says.  Another
    host's owner is judged by its lease, on the ledger's own clock (``clock``),
    which every host reads alike.
    """
    from gtcore.dogs import processes

    if owner.get("host") == here:
        ours = owner.get("pid") == processes.owner_identity()["pid"]
        if ours or processes.owner_dead(owner):
            return f"owner process {owner.get('pid')} on {owner.get('host')} ended before the run did"
        return None
    lease = run.data.get("lease_until")
    if isinstance(lease, int | float) and lease < clock:
        return f"the lease of its owner (process {owner.get('pid')} on {owner.get('host')}) ran out {format_duration(clock - lease)} ago"
    return None


def _kill_leftovers(run: Bead) -> bool:
    """Every process of an abandoned run still alive on this host: all carry its token (older runs: its group)."""
    from gtcore.dogs import processes

    token = run.data.get("token")
    if isinstance(token, str) and token:
        return processes.sweep(token, 0.0, everywhere=True) > 0
    return processes.kill_orphan(run.data.get("pid"), run.data.get("pid_start"))


class Patrol:
    """Runs patrol cycles for one town and remembers gate states between them.

    It is handed what it uses rather than the engine that owns it: the town,
    its ledger, bus and plugin cache as they are, and as callables what the
    engine makes on demand or replaces while it runs: the scan, the settings
    in force (a reload replaces them), the escalations, the dogs (started by
    the first dispatch, so a read-only patrol starts none) and what this
    process's runner knows of its own runs.
    """

    def __init__(self, town: Town, ledger: Ledger, bus: EventBus, plugin_cache: PluginCache, *,
                 scan: Callable[[], PluginSet], settings: Callable[[], Settings], escalations: Callable[[], Escalations],
                 queue: Queue, wait: Wait, owns_run: Callable[[int], bool], recover: Callable[[], list[Problem]],
                 kennel_problem: Callable[[], str | None],
                 call_kennel: Callable[[], None]) -> None:
        self.town, self.ledger, self.bus, self.plugin_cache = town, ledger, bus, plugin_cache
        self.scan, self.settings, self.escalations, self.queue, self.wait = scan, settings, escalations, queue, wait
        self.owns_run, self.recover = owns_run, recover
        self.kennel_problem, self.call_kennel = kennel_problem, call_kennel
        self._gates: dict[str, tuple[bool, str, float | None, float | None]] = {}
        self._last_upkeep = float("-inf")  # the first patrol of a process (every --once) does the upkeep
        self.checks: dict[str, Any] = {}  # CheckResult of a condition, EventCount of a city's event order
        self.checked_at: dict[str, float] = {}

    def run_once(self, now: float | None = None, *, wait: bool = False, follow: Follow | None = None) -> PatrolReport:
        started = time.time() if now is None else now
        report = PatrolReport(str(self.town.root), started)
        writes = not self.ledger.readonly  # a read-only patrol evaluates and reports; it changes nothing
        plugin_set = self.scan()
        self.bus.publish(PluginSetChanged(plugin_set))  # the control room shows the new scan before the checks and runs are done
        report.invalid, report.warnings = plugin_set.invalid, plugin_set.warnings
        report.problems += self.settings().problems
        report.problems += filter(None, [self.town.daemon_problem(), self.town.controller_problem()])
        if plugin_set.city is not None:
            report.problems += plugin_set.city.problems()
        report.problems += [Problem(str(self.town.root), None, failure) for failure in self.bus.take_failures()]
        if writes:
            self._read_town_events(plugin_set)
            self._take_over(plugin_set, started)
            recovered = self.recover()  # results refused earlier go in before any run is judged abandoned
            report.unrecorded += [problem.reason for problem in recovered]
            report.problems += recovered
        facts = self.ledger.gate_facts()
        if writes and facts.running:
            report.abandoned = self._reconcile(plugin_set, facts, started)
            if report.abandoned:
                facts = self.ledger.gate_facts()
        if writes and self._waits_here(plugin_set, facts):
            self.call_kennel()  # runs queued earlier wait for this host's kennel: wake it, or start it
        running = {plugin: run.ref for plugin, run in facts.running.items()}
        checks = self._check_conditions(plugin_set, facts, started)
        announce = self.bus.wants(GateChanged)
        for plugin, decision in decide_all(plugin_set.plugins, facts.summary, running, facts.paused, facts.events, started, checks):
            report.plugins.append(PluginReport(plugin, decision))
            if announce:
                self._publish_gate(plugin.name, decision)
        self.plugin_cache.save()  # the cron slots the gates found, for the next process
        if not writes:
            for item in report.plugins:
                item.note = "read-only: not dispatched" if item.decision.open else None
            self._town_status(report, facts, started)
            report.finished_at = time.time()
            return report
        self._dispatch(report, facts.summary)
        try:
            self._escalation_upkeep(report, plugin_set, started)
            self._ledger_upkeep(report, plugin_set, facts.events, started)
        except LedgerError as exc:  # the runs are queued: a ledger that refuses the upkeep must not cost their report
            report.problems.append(Problem(str(self.town.root), None, f"{exc}; the upkeep (escalations owed and due, digests,"
                                           " pruning) is the next patrol's"))
        if problem := self.kennel_problem():
            report.problems.append(Problem(str(self.town.root), None, problem))
        if wait:
            self.collect(report, follow)
            try:
                self._delivery_report(report, started)
            except LedgerError as exc:
                report.problems.append(Problem(str(self.town.root), None, f"{exc}; the deliveries' outcomes are the next patrol's to say"))
        self._town_status(report, facts, started)
        report.finished_at = time.time()
        self.bus.publish(PatrolFinished(report))
        return report

    def _town_status(self, report: PatrolReport, facts: LedgerFacts, now: float) -> None:
        """Each plugin as the ledger knows it once the patrol is done (its runs queued, or waited for), and the open
        escalations counted: what the report's health is judged from.  Said as a problem when the ledger cannot tell."""
        try:
            summary = self.ledger.plugin_summary() if report.plugins else {}
            decisions = {item.plugin.name: item.decision for item in report.plugins}
            report.facts = plugin_facts(self.ledger, [item.plugin for item in report.plugins], summary, facts.pauses, decisions)
            escalations = self.escalations()
            try:
                settings = escalations.settings()
            except SettingsError:
                settings = None  # said by the upkeep already; stale cannot be judged without its threshold
            report.escalations = escalation_counts(escalations.list(now=now, settings=settings), settings, now)
        except LedgerError as exc:
            report.problems.append(Problem(str(self.town.root), None, f"{exc}; the town's state is the next patrol's to say"))

    @staticmethod
    def _waits_here(plugin_set: PluginSet, facts: LedgerFacts) -> bool:
        """Whether a run queued before this patrol may run on this host (its kennel may have died, or never started)."""
        queued = [run.plugin for run in facts.running.values() if run.status == Result.QUEUED]
        if not queued:
            return False
        here = _here()
        return any((plugin := plugin_set.get(name or "")) is not None and plugin.execution.runs_on(here) for name in queued)

    def _reconcile(self, plugin_set: PluginSet, facts: LedgerFacts, now: float) -> list[Bead]:
        """Close what lost its owner or waited too long in the queue; a queued run given up escalates at once, as a failure would."""
        def owes(name: str) -> bool:
            plugin = plugin_set.get(name)
            return plugin is not None and plugin.execution.notify_on_failure

        closed = reconcile(self.ledger, facts.running, self.owns_run, now, self.settings().queue_timeout.seconds, owes)
        for run in closed:
            plugin = plugin_set.get(run.plugin or "")
            if plugin is not None and OWED in run.labels:
                self.escalations().plugin_run_failed(plugin.name, plugin.execution.severity, run, now=now)
        return closed

    def _check_conditions(self, plugin_set: PluginSet, facts: LedgerFacts, now: float) -> dict[str, Any]:
        """Run the condition checks of the plugins that could open now, side by side (none: nothing is loaded); count the
        events of a city's event orders."""
        eligible = [p for p in plugin_set.plugins if p.gate.type in ("condition", "event") and p.runs_by_itself
                    and p.name not in facts.paused and p.name not in facts.running and not (p.order and p.order.blocked)]
        conditions = [plugin for plugin in eligible if plugin.gate.type == "condition"]
        events = [plugin for plugin in eligible if plugin.gate.type == "event" and plugin.order is not None]
        if not conditions and not events:
            return {}
        checks: dict[str, Any] = {}
        if conditions:
            from gtcore.gates.conditions import run_checks

            checks = run_checks(conditions, self.town.root)
        if events:
            from gtcore.gascity.runs import event_counts

            checks.update(event_counts(events, plugin_set.city.events, self.ledger))  # type: ignore[union-attr]
        stamped = {name: found._replace(at=now) for name, found in checks.items() if isinstance(found, CheckResult)}
        self.checks = {**self.checks, **checks, **stamped}  # this patrol decides by its own answers, whatever the clock did
        self.checked_at.update(dict.fromkeys(checks, now))
        self.plugin_cache.remember_checks(stamped)
        return checks

    def _take_over(self, plugin_set: PluginSet, now: float) -> None:
        """A city's orders gtui never ran: their last runs under Gas City's controller first (:mod:`gtcore.gascity.takeover`)."""
        if plugin_set.city is None:
            return
        from gtcore.gascity.takeover import import_last_runs

        import_last_runs(self.ledger, plugin_set.plugins, plugin_set.city, self.town.state_dir / "gascity" / "imported.json", now)

    def _read_town_events(self, plugin_set: PluginSet) -> None:
        """Gas Town's event log opens event gates too; only the events some gate listens for are recorded."""
        wanted = {plugin.gate.on for plugin in plugin_set.plugins if plugin.gate.type == "event" and plugin.gate.on}
        if wanted:
            from gtcore.town import event_log as town_events

            town_events.ingest(self.town, self.ledger, wanted)

    def _escalation_upkeep(self, report: PatrolReport, plugin_set: PluginSet, now: float) -> None:
        """Raise what failed runs still owe, retry due deliveries, re-escalate stale escalations; what keeps them from a person
        is a problem."""
        escalations = self.escalations()
        report.problems += escalations.pay_owed(plugin_set, now)
        try:
            settings = escalations.settings()
        except SettingsError as exc:
            report.problems.append(exc.problem())
            report.undeliverable = report.deliveries_held = True
            return
        report.problems += settings.problems
        report.undeliverable = any(problem.level == "error" for problem in settings.problems)
        escalations.deliver_due(now, wait=False)  # off the patrol's path: outcomes are recorded as they come
        report.reescalated = [escalation.ref for escalation, _, _ in escalations.reescalate_stale(now, wait=False)]

    def _delivery_report(self, report: PatrolReport, now: float) -> None:
        """After the patrol's runs and deliveries settled: every delivery still failing is a problem."""
        if report.deliveries_held:
            return  # the settings cannot be read: nothing was delivered, and that problem is already said
        escalations = self.escalations()
        escalations.settle()
        failing = escalations.delivery_problems(now)
        report.problems += failing
        report.undeliverable = report.undeliverable or bool(failing)

    def _dispatch(self, report: PatrolReport, summary: dict[str, PluginStats]) -> None:
        """Queue a run of every open plugin, longest-waiting first, in one commit.

        A plugin pinned to other hosts (``[execution] hosts``) is queued too:
        the kennel of one of its hosts takes it.
        """
        open_items = [item for item in report.plugins if item.decision.open]
        open_items.sort(key=lambda item: report.started_at if item.decision.since is None else item.decision.since)
        requests: list[Dispatch] = []
        for item in open_items:
            stats = summary.get(item.plugin.name)
            requests.append((item.plugin, None, item.decision.since, stats.last_run_id if stats else None))
        answers = self.queue(requests) if requests else []
        here = None
        for item, answer in zip(open_items, answers, strict=True):
            item.dispatched = isinstance(answer, Bead)
            if isinstance(answer, Bead):
                item.run = answer
                if not item.plugin.execution.runs_on(here := here or _here()):
                    item.note = f"pinned to {', '.join(item.plugin.execution.hosts)}: queued for their kennels, not {here}'s"
            else:
                item.note = _refused(answer)

    def _ledger_upkeep(self, report: PatrolReport, plugin_set: PluginSet, events: dict[str, EventMark], now: float) -> None:
        """Digest past days of digest plugins and prune old runs of the others, at most hourly for the whole town.

        When it last happened is a town event on the ledger, so a Deacon's
        ``gtui --once`` each minute does the upkeep once an hour, not each time.
        """
        mark = events.get(UPKEEP_EVENT)
        last = max(self._last_upkeep, mark.at if mark is not None else float("-inf"))
        if now - last < UPKEEP_INTERVAL:
            return
        from gtcore.digest import make_digest, prune, undigested_days

        ledger = self.ledger
        ledger.emit_event(UPKEEP_EVENT, source="patrol", now=now)
        self._last_upkeep = now
        digested = [plugin.name for plugin in plugin_set.plugins if plugin.tracking.digest]
        for day in undigested_days(ledger, digested, now):
            report.digests.append(make_digest(ledger, day, digested, now=now).to_json()["title"])
        others = [plugin.name for plugin in plugin_set.plugins if not plugin.tracking.digest] if plugin_set.invalid else None
        report.pruned = prune(ledger, digested, self.settings().retention_days, now=now, only_plugins=others)

    def current_checks(self, summary: dict[str, PluginStats]) -> dict[str, Any]:
        """The last check of every condition (this patrol's, else one a patrol of this town kept in its cache: the gate
        says it as the last check once a run started since), and the event counts still current."""
        return {**self.plugin_cache.fresh_checks(), **{
            name: result for name, result in self.checks.items() if isinstance(result, CheckResult)
            or name not in summary or summary[name].last_started_at < self.checked_at.get(name, 0.0)}}

    def collect(self, report: PatrolReport, follow: Follow | None = None) -> None:
        """Wait until the runs this patrol queued have ended, and fill in their results (``follow`` hears their output)."""
        queued = {item.run.id: item for item in report.plugins if item.run is not None}
        if queued:
            for run_id, run in self.wait(queued, follow=follow).items():
                queued[run_id].run = run

    def _publish_gate(self, name: str, decision: GateDecision) -> None:
        state = gate_state(decision)
        if self._gates.get(name) != state:
            self._gates[name] = state
            self.bus.publish(GateChanged(name, decision.open, decision.reason, decision.next_open_at))


def _here() -> str:
    from gtcore.dogs.processes import hostname

    return hostname()


def _refused(answer: object) -> str:
    """Why a run was not queued, in the report's words (another patrol's run in flight, a gate that moved, the ledger)."""
    return "already queued or running" if isinstance(answer, RunInFlight) else f"not queued: {answer}"
