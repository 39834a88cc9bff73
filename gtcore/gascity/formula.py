"""A formula order's run: ``gc order run NAME [--rig R] --json``, the wisp it made recorded on the run.

gtui cannot compile formulas; gc can.  A dog runs this module as the run's
command (``python -m gtcore.gascity.formula GC CITY NAME [--rig R]``): gc
instantiates the wisp, labels it ``order-run:<scoped>`` and records its own
closed tracking bead; its JSON answer (``orderRunJSON``: ``wisp_id``,
``routed_to``, ...) goes to the run's log and, as the run's own report,
onto the run (its summary, ``data.report.detail`` and a ``wisp:<id>`` label).
The exit status is gc's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        sys.stderr.write("usage: python -m gtcore.gascity.formula GC CITY NAME [--rig RIG]\n")
        return 2
    gc, city, name, rest = args[0], args[1], args[2], args[3:]
    command = [gc, "--city", city, "order", "run", name, *rest, "--json"]
    sys.stdout.write(f"$ {' '.join(command)}\n")
    sys.stdout.flush()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=city, stdin=subprocess.DEVNULL, errors="replace")
    except OSError as exc:
        sys.stderr.write(f"cannot run {gc}: {exc.strerror or exc}\n")
        return 127
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode == 0:
        _report(done.stdout)
    return done.returncode


def _report(output: str) -> None:
    """The run's own report: ``wisp <id>`` (and where gc routed it), gc's answer as its detail."""
    line = next((text for text in reversed(output.splitlines()) if text.strip().startswith("{")), "")
    try:
        answer = json.loads(line)
    except ValueError:
        return
    wisp = str(answer.get("wisp_id") or "") if isinstance(answer, dict) else ""
    run_id, token, town = (os.environ.get(key, "") for key in ("GT_RUN_ID", "GTUI_RUN_TOKEN", "GT_TOWN"))
    if not wisp or not run_id or not token or not town:
        return
    from gtcore.core.beads import Report
    from gtcore.core.errors import GtError
    from gtcore.engine import Engine
    from gtcore.town.layout import Town

    routed = f" → gc.routed_to={answer['routed_to']}" if answer.get("routed_to") else ""
    try:
        engine = Engine.tolerant(Town(Path(town)))
        engine.report(run_id, token, Report("success", f"wisp {wisp}{routed}", line.strip(), (f"wisp:{wisp}",)))
    except GtError as exc:
        sys.stderr.write(f"gtui: the wisp {wisp} could not be recorded on {run_id}: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
