"""Storage: the ledger behind one contract (:mod:`gtcore.storage.contract`), SQLite its first backend.

No module outside this package executes SQL or holds a connection; the
engine asks :class:`~gtcore.storage.contract.Ledger` for domain operations.
"""

from __future__ import annotations

from gtcore.records import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from gtcore.storage.contract import Ledger


def open_ledger(path: Path, *, readonly: bool = False, wait: float = 10.0) -> Ledger:
    """The town's ledger at ``path`` (read-only: never created, migrated or locked)."""
    from gtcore.storage.sqlite import SqliteLedger

    return SqliteLedger(path, readonly=readonly, wait=wait)
