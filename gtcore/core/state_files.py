"""gtui's small state files (a cursor in an event log, an answer of ``gc`` kept, what was asked of Gas City): JSON
written whole, so a reader never sees half of one, and quietly, since a file that cannot be written only loses a
cursor or a cached answer, which the next reader rebuilds."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def save_json(path: Path, data: object) -> None:
    """Write ``data`` to ``path`` whole (a file beside it, then renamed), making its directory; an OS error is dropped."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temp, path)
