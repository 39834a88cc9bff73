"""Records shared by the engine and its faces (CLI, control room): plain data, no behaviour that does I/O."""

from __future__ import annotations

from enum import StrEnum

from gtcore.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any


class Problem(Record):
    """Something wrong or suspicious in a settings file, said where the Deacon and the operator look.

    ``level`` is ``error`` when the file (or part of it) is not used as
    written, ``warning`` when it is used but something in it is ignored.
    """

    file: str
    field: str | None
    reason: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.file}: field '{self.field}' {self.reason}" if self.field else f"{self.file}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "field": self.field, "reason": self.reason, "level": self.level}


class Result(StrEnum):
    """How a run ended (``running`` while it has not)."""

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
REPORTABLE = frozenset({Result.SUCCESS, Result.FAILURE, Result.SKIPPED, Result.WARNING, Result.CHECK_ONLY})


class Report(Record):
    """A plugin's own word on its run (``bd create ... -l type:plugin-run,result:X`` or ``gtui report``)."""

    result: str
    summary: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"result": self.result, "summary": self.summary, "detail": self.detail}


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
    run_id: str | None = None
    started_at: float | None = None
    timeout_s: float | None = None
