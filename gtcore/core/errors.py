"""Errors the engine reports to a person: one line saying what and where; and a problem of a settings file, said
where the Deacon and the operator look (a :class:`SettingsError` is one, kept)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gtcore.core.records import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any

CRASH_REPORTS_KEPT = 20


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


class GtError(Exception):
    """A problem the user can act on; its message is shown as a single line."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


class LedgerError(GtError):
    """The ledger cannot be opened, read or written (corrupt, locked, full)."""


class SettingsError(GtError):
    """A settings file that cannot be used as written: which file, which field, and why."""

    def __init__(self, file: object, reason: str, field: str | None = None) -> None:
        self.file, self.field, self.reason = str(file), field, " ".join(reason.split())
        super().__init__(f"{self.file}: field '{field}' {self.reason}" if field else f"{self.file}: {self.reason}")

    def problem(self) -> Problem:
        return Problem(self.file, self.field, self.reason)


class NotFound(GtError):
    """A named thing (plugin, run, escalation, town) does not exist."""


class Refused(GtError):
    """A command refused as written: a flag or a word it does not take, a required flag missing, a value it cannot hold.

    The plugin-facing ``gt`` and ``bd`` exit 1 on it, as Gas Town's do, and
    inside a run keep it among the run's problems: a plugin that silences the
    call (``|| true``) must not lose its report without anyone hearing of it.
    ``flags`` are the names of the flags at fault (never their values).
    """

    def __init__(self, message: str, flags: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.flags = flags


def brief(value: object, limit: int = 60) -> str:
    """A value as a message may quote it: its repr, on one line, cut to ``limit`` characters.

    Messages quote what a file held; a file may hold a megabyte on one key.
    """
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def save_crash_report(directory: Path, report: str) -> str:
    """Write a crash report (a traceback, for developers) into ``directory``, keeping the newest few.

    Returns where it went, or why it could not be written: a crash report must
    never become a second crash, nor fill the disk one patrol at a time.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.txt"
        path.write_text(report, encoding="utf-8")
        reports = sorted(directory.glob("crash-*.txt"), key=lambda item: item.stat().st_mtime, reverse=True)
        for old in reports[CRASH_REPORTS_KEPT:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        return f"no crash report could be written to {directory}: {exc.strerror or exc}"
    return f"details in {path}"


class RunInFlight(GtError):
    """A run of this plugin is already claimed and not yet closed."""


class RunTaken(GtError):
    """A queued run is no longer waiting: another kennel took it, or it was closed meanwhile."""


class KennelBusy(GtError):
    """Another kennel holds this town on this host."""


class GateMoved(GtError):
    """Another run started after the gate was evaluated: this dispatch is stale."""
