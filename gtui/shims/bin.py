"""Where a run finds the plugin-facing ``gt`` and ``bd``: small scripts in ``<town>/.gtui/bin``.

They are written with this interpreter's path, so they run the gtui that
runs the plugin whatever PATH holds, and rewritten only when their text
changes (a new interpreter, a new gtui).  A town whose state directory
cannot be written gets them in a private temporary directory instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from gtcore.model import TYPE_CHECKING

if TYPE_CHECKING:
    from gtcore.model import Town

TOOLS = ("gt", "bd")
SCRIPT = """#!{python}
# Written by gtui: the plugin-facing {tool} for runs of this town (see docs/gastown.md). Rewritten when gtui changes.
# The town's kennel answers it when it can (gtui/thin.py), else it runs here.
from gtui.thin import shim
raise SystemExit(shim("{tool}"))
"""


def plugin_bin(town: Town) -> tuple[Path, ...]:
    """The directory to put first on every run's PATH (empty when none could be written)."""
    for where in ("town", "temp"):
        if where == "town":
            directory = town.state_dir / "bin"
        else:
            import tempfile

            directory = Path(tempfile.gettempdir()) / f"gtui-bin-{os.getuid()}"
        try:
            _write_scripts(directory)
        except OSError:
            continue
        return (directory,)
    return ()


def _write_scripts(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        path = directory / tool
        text = SCRIPT.format(python=sys.executable, tool=tool)
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == text and os.access(path, os.X_OK):
                continue
        temp = path.with_name(f".{tool}.{os.getpid()}")
        temp.write_text(text, encoding="utf-8")
        temp.chmod(0o755)
        os.replace(temp, path)  # our own file: replacing it whole means a run never sees half a script
