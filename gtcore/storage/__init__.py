"""Storage: the ledger behind one contract (:mod:`gtcore.storage.contract`), with two backends.

SQLite (:mod:`gtcore.storage.sqlite`) is the embedded default: one file in
the town's ``.gtui/``.  PostgreSQL (:mod:`gtcore.storage.postgresql`) is the
ledger several hosts share, chosen by ``GT_LEDGER_URL``.  No module outside
this package executes SQL or holds a connection.
"""

from __future__ import annotations

import os

from gtcore.core.records import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from gtcore.storage.contract import Ledger

URL_VARIABLE = "GT_LEDGER_URL"


def open_ledger(path: Path, *, readonly: bool = False, wait: float = 10.0, url: str | None = None) -> Ledger:
    """The town's ledger: ``GT_LEDGER_URL`` when set (it wins), else ``url``, else the SQLite file at ``path``.

    Read-only: never created, migrated or locked.
    """
    chosen = os.environ.get(URL_VARIABLE) or url
    if chosen:
        return ledger_at(chosen, readonly=readonly, wait=wait, said_by=URL_VARIABLE if os.environ.get(URL_VARIABLE) else "ledger")
    from gtcore.storage.sqlite import SqliteLedger

    return SqliteLedger(path, readonly=readonly, wait=wait)


def ledger_at(url: str, *, readonly: bool = False, wait: float = 10.0, said_by: str = "--to") -> Ledger:
    """The shared ledger at ``url`` (``said_by``: where the URL came from, for the message when it is not one)."""
    if not url.startswith(("postgresql://", "postgres://")):
        from gtcore.core.errors import SettingsError

        raise SettingsError(said_by, f"{url.split('://')[0]!r} is not a ledger gtui knows: use postgresql://... (or none, for SQLite)")
    from gtcore.storage.postgresql import PgLedger

    return PgLedger(url, readonly=readonly, wait=wait)
