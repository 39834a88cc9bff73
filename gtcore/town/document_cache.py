"""The town's parsed ``gtui.toml``, kept in ``<town>/.gtui/settings.cache`` by file identity.

Every command reads the settings; parsing TOML (and importing the parser)
costs an idle ``gtui --once`` more than the settings themselves.  The cache
holds one document: the parsed file, keyed by its path, size, mtime in
nanoseconds and inode.  Like the plugin cache it is only a cache: absent,
damaged, foreign or unwritable, it is ignored and the file is parsed.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import threading
import time
from pathlib import Path

from gtcore import __version__
from gtcore.core.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

RACY_NS = 2_000_000_000  # a file changed this recently is not cached by its identity (see settled)

FileIdentity = tuple[str, int, int, int]  # path, size, mtime_ns, inode


def settled(mtime_ns: int, now_ns: int | None = None) -> bool:
    """Whether a file is old enough to be known by its identity.

    File times move in coarse ticks: a file rewritten twice within one tick,
    at the same size, keeps its identity.  A file last changed two seconds
    ago or more is past that (git calls the others "racy"); the others are
    parsed every time until they settle.
    """
    return (time.time_ns() if now_ns is None else now_ns) - mtime_ns >= RACY_NS


def lookup(cache: Path, path: Path) -> tuple[FileIdentity | None, dict[str, Any] | None]:
    """The file's identity now (None: it cannot be stat'ed) and its cached parse (None: none that still holds)."""
    try:
        info = os.stat(path)
    except OSError:
        return None, None  # absent or unreadable: the reader of the file says which
    identity = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    if not settled(info.st_mtime_ns):
        return None, None
    try:
        with open(cache, "rb") as handle:
            stored = marshal.loads(handle.read())
        if stored["gtui"] == __version__ and tuple(stored["identity"]) == identity and isinstance(stored["data"], dict):
            return identity, stored["data"]
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        pass
    return identity, None


def keep(cache: Path, identity: FileIdentity | None, data: dict[str, Any]) -> None:
    """Remember ``data`` as the parse of the file ``identity`` names; a file with dates in it (marshal cannot hold them) is not kept."""
    if identity is None:
        return
    with contextlib.suppress(OSError, ValueError):
        payload = marshal.dumps({"gtui": __version__, "identity": identity, "data": data})
        cache.parent.mkdir(parents=True, exist_ok=True)
        temp = cache.with_name(f".{cache.name}.{os.getpid()}.{threading.get_ident()}")
        temp.write_bytes(payload)
        os.replace(temp, cache)
