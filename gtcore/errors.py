"""Errors the engine reports to a person: one line saying what and where."""


class GtError(Exception):
    """A problem the user can act on; its message is shown as a single line."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


class LedgerError(GtError):
    """The ledger cannot be opened, read or written (corrupt, locked, full)."""


class NotFound(GtError):
    """A named thing (plugin, run, escalation, town) does not exist."""
