"""What a gate is decided from and what it decides: the ledger's facts of a plugin, a condition check's outcome, and
the decision with its reason.  Records and pure words, shared by gtui's gates (:mod:`gtcore.gates.rules`) and Gas
City's triggers (:mod:`gtcore.gascity.triggers`), which both import them from here."""

from __future__ import annotations

from gtcore.core.beads import GateState
from gtcore.core.clock import age
from gtcore.core.records import Record


class GateFacts(Record):
    """What the ledger says about one plugin, as the gates need it."""

    last_started_at: float | None = None
    running_run: str | None = None
    paused: str | None = None
    last_run_id: int | None = None  # the last run's place in the ledger's order: what an event is compared with


class CheckResult(Record):
    """The outcome of a condition gate's ``check`` command."""

    exit_code: int | None
    first_line: str = ""
    timed_out: bool = False
    error: str | None = None
    at: float | None = None  # when it ran: an answer older than the plugin's last run is said as the last check, not as open
    missing: str = ""  # no check was run: why, in words (a read-only gtui runs none)


NOT_CHECKED = "check not run yet (the next patrol runs it)"


def unchecked(words: str) -> CheckResult:
    """No outcome, and why: what a gate says before its first check (or where checks are not run)."""
    return CheckResult(None, missing=words)


def check_words(check: CheckResult, now: float, passed: str, failed: str) -> str:
    """A check that ran before the plugin's last run: when, its outcome, and that the next patrol asks again."""
    outcome = passed if check.exit_code == 0 else failed
    when = age(check.at, now)
    return f"last check ({'just now' if when == 'now' else when}) {outcome}; its run started since, the next patrol checks again"


class GateDecision(Record):
    """The gate's state, why (for people) and, when known, when it may open.

    ``since`` is when the gate opened: the dispatch queue serves the
    longest-waiting plugin first.  Faces style a decision by its state,
    never by the words of its reason.
    """

    state: GateState
    reason: str
    next_open_at: float | None = None
    since: float | None = None

    @property
    def open(self) -> bool:
        return self.state is GateState.OPEN

    @property
    def error(self) -> bool:
        """The gate could not be decided (it stays closed); the reason says why."""
        return self.state is GateState.ERROR


def stale(check: CheckResult, facts: GateFacts) -> bool:
    """A run started at or after the check ran: the check's answer was used (or overtaken) already."""
    return check.at is not None and facts.last_started_at is not None and facts.last_started_at >= check.at
