"""The ledger's vocabulary: beads (runs, notes, escalations, mail) and the words for their states (results,
severities, gate states), a plugin's report, drift, dogs' names, and the ids people type (``run-12``).

Plain records and pure functions: every part of the engine stands on them, and they import nothing of gtcore but
the other leaves of :mod:`gtcore.core`.
"""

from __future__ import annotations

from enum import StrEnum

from gtcore.core.errors import NotFound
from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class Result(StrEnum):
    """How a run ended (``queued`` until a kennel takes it, ``running`` while it has not ended)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    ABANDONED = "abandoned"
    WARNING = "warning"  # reported by a plugin: it ran, something deserves a look
    CHECK_ONLY = "check-only"  # reported by a plugin: it only checked, changed nothing

    @property
    def failed(self) -> bool:
        return self in FAILED


FAILED = frozenset({Result.FAILURE, Result.TIMEOUT})
UNFINISHED = frozenset({Result.QUEUED, Result.RUNNING})  # a run in flight: claimed, and not yet closed
REPORTABLE = frozenset({Result.SUCCESS, Result.FAILURE, Result.SKIPPED, Result.WARNING, Result.CHECK_ONLY})


class Severity(StrEnum):
    """How loudly an escalation asks, lowest first."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITIES = tuple(severity.value for severity in Severity)  # plain words: argparse and messages print them as typed


class EscalationStatus(StrEnum):
    """Where an escalation stands: open until a person acknowledges it, closed with a reason."""

    OPEN = "open"
    ACKED = "acked"
    CLOSED = "closed"


UNCLOSED = (EscalationStatus.OPEN, EscalationStatus.ACKED)  # an escalation a person has yet to close


class GateState(StrEnum):
    """What a gate decided, for the dispatch queue and for how the control room shows it."""

    OPEN = "open"
    WAITING = "waiting"  # closed until a time, a slot, an event or a check says otherwise
    RUNNING = "running"  # a run is in flight
    PAUSED = "paused"  # paused by the operator
    DISABLED = "disabled"  # enabled = false, or not a plugin that runs by itself
    MANUAL = "manual"  # runs only when asked
    ERROR = "error"  # the gate could not be decided: it stays closed, the reason says why


class Report(Record):
    """A plugin's own word on its run (``bd create ... -l type:plugin-run,result:X``, ``gt plugin record-run`` or ``gtui report``).

    ``labels`` are the recorder's own (``gt plugin record-run -l K:V``, its
    ``--rig`` as ``rig:R``): the run's record carries them too.
    """

    result: str
    summary: str = ""
    detail: str = ""
    labels: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"result": self.result, "summary": self.summary, "detail": self.detail}
        return {**shown, "labels": list(self.labels)} if self.labels else shown


class DriftOutcome(StrEnum):
    """How a call to the plugin-facing ``gt``/``bd`` that gtui did not answer as asked went for the plugin."""

    HANDED = "handed"  # a real gt/bd later on PATH took it (and answered, or not: its own business)
    UNANSWERED = "unanswered"  # nothing took it: the plugin got exit 127
    REFUSED = "refused"  # gtui refused it as written (a flag or a word it does not take, a required flag missing): exit 1
    IGNORED = "ignored"  # answered, with words no flag takes ignored, as Gas Town ignores them
    FAILED = "failed"  # gtui failed while answering it (a bug in gtui): exit 1


ANSWERED_ELSEWHERE = frozenset({DriftOutcome.HANDED, DriftOutcome.IGNORED})  # the plugin got an answer: a warning, not an error


class Drift(Record):
    """A call a run made to the plugin-facing ``gt``/``bd`` that gtui did not answer as asked: kept on the run, for its problems.

    Only what gtui chose to keep is here, never what the plugin passed: the
    verb as Gas Town names it (``rig show``), the flags' names (never their
    values), how it went, and for a refused or failed call gtui's one-line
    reason.  The same call again only counts up (``count``).
    """

    tool: str
    verb: str
    flags: tuple[str, ...] = ()
    outcome: str = DriftOutcome.UNANSWERED
    handed_to: str | None = None
    reason: str = ""
    calls: int = 1

    @property
    def level(self) -> str:
        """``error`` when the plugin got no answer (exit 127, or refused), ``warning`` when it got one anyway."""
        return "warning" if self.outcome in ANSWERED_ELSEWHERE else "error"

    def same_call(self) -> tuple[object, ...]:
        """What makes two notes one call made again."""
        return self[:6]

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "verb": self.verb, "flags": list(self.flags), "outcome": str(self.outcome),
                "handed_to": self.handed_to, "reason": self.reason, "count": self.calls}

    @classmethod
    def from_json(cls, kept: dict[str, Any]) -> Drift:
        """A kept note; one kept before notes had an outcome is read as what it was (handed over, or unanswered)."""
        handed_to = kept.get("handed_to")
        outcome = kept.get("outcome") or (DriftOutcome.HANDED if handed_to else DriftOutcome.UNANSWERED)
        return cls(str(kept.get("tool", "?")), str(kept.get("verb", "?")), tuple(kept.get("flags") or ()), outcome, handed_to,
                   str(kept.get("reason") or ""), int(kept.get("count") or 1))


def readable(text: str) -> str:
    """``text`` as valid Unicode: each byte of an argument that was not UTF-8 (Python keeps it as a lone surrogate) is U+FFFD.

    What a plugin passes is stored and printed, and neither a database nor a
    terminal takes a lone surrogate: a report must not be lost to one byte.
    """
    if text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)


def settle(exit_result: str, report: dict[str, Any] | None) -> tuple[str, str | None]:
    """The run's final result and, when the plugin's report could not be taken as written, why.

    A timeout or a non-zero exit decides first: a plugin that crashed after
    saying "success" failed.  Otherwise the plugin's report decides (it knows
    it skipped); without one, the exit code's ``success`` stands.
    """
    if exit_result != Result.SUCCESS or not report:
        return exit_result, None
    reported = str(report.get("result", ""))
    if reported in REPORTABLE:
        return reported, None
    return exit_result, f"reported result {reported!r} is not one gtui knows ({', '.join(sorted(REPORTABLE))}): recorded as success"


DOG_NAMES = ("rex", "fido", "bolt", "luna", "scout", "ziggy", "pepper", "ruby", "nova", "biscuit", "ace", "maple")


def dog_names(count: int) -> list[str]:
    """Names for ``count`` dogs: the kennel's names first, then ``dog-N``."""
    return [DOG_NAMES[i] if i < len(DOG_NAMES) else f"dog-{i + 1}" for i in range(count)]


class Dog(Record):
    """A dog as the dogs pane shows it."""

    name: str
    state: str = "idle"
    plugin: str | None = None
    run_ref: str | None = None  # "run-12"
    started_at: float | None = None
    timeout_s: float | None = None


NOUNS = {"wisp": "run", "digest": "digest", "escalation": "escalation", "mail": "mail", "event": "event", "note": "note"}
KIND_WORDS = {"wisp": "a run", "digest": "a digest", "escalation": "an escalation", "mail": "a mail", "event": "an event", "note": "a note"}
PREFIX = {"wisp": "run", "digest": "dig", "escalation": "esc", "mail": "mail", "event": "evt", "note": "note"}


class Bead(Record):
    """One ledger record as read back (immutable; ``data`` is its own copy, never shared with the ledger)."""

    id: int
    kind: str
    title: str
    status: str
    body: str
    created_at: float
    updated_at: float
    closed_at: float | None
    plugin: str | None
    rig: str | None
    result: str | None
    data: dict[str, Any]
    labels: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """The id people type: ``run-12``, ``esc-3``."""
        return format_ref(self.kind, self.id)

    @classmethod
    def from_row(cls, row: Sequence[Any], data: dict[str, Any], labels: tuple[str, ...] = ()) -> Bead:
        """A bead from a storage row whose first 11 columns are its fields up to ``result``."""
        return cls._make((*row[:11], data, labels))


class PluginStats(Record):
    """What the ledger knows about one plugin's runs (one row of the summary)."""

    plugin: str
    run_count: int
    failure_count: int
    last_run_id: int
    last_started_at: float
    last_result: str
    last_summary: str = ""
    failure_streak: int = 0  # runs in a row, the latest included, that ended failure, timeout or abandoned

    @property
    def failure_rate(self) -> float:
        return self.failure_count / self.run_count if self.run_count else 0.0


def format_ref(kind: str, bead_id: int) -> str:
    return f"{PREFIX[kind]}-{bead_id}"


MAX_ID = 2**63 - 1  # the largest id either backend holds (a 64-bit integer): a larger one names nothing, it is no error


def parse_ref(ref: str | int, kind: str) -> int:
    """Accept ``esc-12`` or plain ``12`` for a bead of ``kind``, exactly as written: ``run-1\n``, ``run-١`` (an Arabic
    digit) and `` run-1`` are not ids, and a number no ledger can hold names no record (both :class:`NotFound`, said as
    ``no such run: ...``, as the ledger says an id it does not have)."""
    text = str(ref)
    prefix = PREFIX[kind] + "-"
    number = text[len(prefix):] if text.startswith(prefix) else text
    if not (number.isascii() and number.isdigit()):
        raise NotFound(f"no such {NOUNS[kind]}: {KIND_WORDS[kind]} id looks like {prefix}12, not {text!r}")
    value = int(number)
    if value > MAX_ID:
        raise NotFound(f"no such {NOUNS[kind]}: {prefix}{number} is not on the ledger")
    return value
