"""JSON shapes of plugins and runs, shared by the CLI, ``--once`` and the TUI.

These dictionaries are the Deacon's interface: keep their keys stable.
"""

from __future__ import annotations

from gtcore.clock import iso
from gtcore.model import Bead, PluginStats, Problem, dog_names, format_ref
from gtcore.plugins import Plugin
from gtcore.records import TYPE_CHECKING
from gtcore.storage.contract import Ledger

if TYPE_CHECKING:
    from typing import Any


def plugin_json(plugin: Plugin, stats: PluginStats | None) -> dict[str, Any]:
    """One entry of ``gtui plugin list --json``."""
    return {
        "name": plugin.name,
        "rig": plugin.rig,
        "path": plugin.file,
        "description": plugin.description,
        "version": plugin.version,
        "enabled": plugin.runs_by_itself,
        "gate": plugin.gate.to_json(),
        "execution": plugin.execution.to_json(),
        "tracking": plugin.tracking.to_json(),
        "has_run_script": plugin.has_run_script,
        "shadowed": [str(path) for path in plugin.shadowed],
        "last_run": last_run_json(stats),
        "run_count": stats.run_count if stats else 0,
        "failure_count": stats.failure_count if stats else 0,
    }


def last_run_json(stats: PluginStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "id": format_ref("wisp", stats.last_run_id),
        "started_at": iso(stats.last_started_at),
        "result": stats.last_result,
        "summary": stats.last_summary or None,
    }


def run_json(run: Bead) -> dict[str, Any]:
    """One run wisp as the history and the patrol report show it."""
    return {
        "id": run.ref,
        "plugin": run.plugin,
        "rig": run.rig,
        "result": run.result,
        "started_at": iso(run.created_at),
        "finished_at": iso(run.closed_at),
        "exit_code": run.data.get("exit_code"),
        "duration_s": run.data.get("duration_s"),
        "dog": run.data.get("dog"),
        "log": run.data.get("log"),
        "reason": run.data.get("reason"),
        "summary": run.body or None,
        "reported_result": run.data.get("reported_result"),
        "detail": (run.data.get("report") or {}).get("detail") or None,
        "labels": list(run.labels),
        "problems": [problem.to_json() for problem in run_problems(run)],
    }


def run_problems(run: Bead) -> list[Problem]:
    """What a run asked of Gas Town that gtui did not answer (its drift: a ``gt``/``bd`` verb, with the flags it gave).

    An error when nothing answered it (the plugin got exit 127), a warning
    when a real ``gt``/``bd`` did: either way gtui and the plugin's Gas
    Town have drifted apart, and the Deacon should know.
    """
    problems = []
    for drift in run.data.get("drift", ()):
        call = f"{drift['tool']} {drift['verb']}"
        flags = "".join(f" {flag}" for flag in drift.get("flags", ()))
        handed_to = drift.get("handed_to")
        outcome = f"handed to {handed_to}" if handed_to else f"no other {drift['tool']} is on PATH, so it failed (exit 127)"
        problems.append(Problem(run.data.get("log") or run.ref, call,
                                f"called by {run.ref} of plugin {run.plugin} ({call}{flags}): gtui does not answer it; {outcome}",
                                "warning" if handed_to else "error"))
    return problems


def dogs_from_ledger(ledger: Ledger, size: int, now: float) -> list[dict[str, Any]]:
    """Dogs as another process sees them: working ones from running wisps, the rest idle.

    Dogs live in the process that runs them; the ledger is where every
    process can see them.  Names that no running wisp uses are listed idle.
    """
    working = []
    for run in ledger.running_runs():
        owner = run.data.get("owner") or {}
        working.append({
            "name": run.data.get("dog", "?"),
            "state": "working",
            "plugin": run.plugin,
            "run_id": run.ref,
            "started_at": iso(run.created_at),
            "elapsed_s": round(now - run.created_at, 1),
            "timeout_s": run.data.get("timeout_s"),
            "pid": owner.get("pid"),
        })
    busy = {dog["name"] for dog in working}
    idle = [{"name": name, "state": "idle", "plugin": None, "run_id": None, "started_at": None,
             "elapsed_s": None, "timeout_s": None, "pid": None} for name in dog_names(size) if name not in busy]
    return working + idle
