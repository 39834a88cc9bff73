"""JSON shapes of plugins and runs, shared by the CLI, ``--once`` and the TUI.

These dictionaries are the Deacon's interface: keep their keys stable.
"""

from __future__ import annotations

from gtcore.clock import iso
from gtcore.model import Bead, PluginStats, Problem, dog_names, format_ref
from gtcore.plugins import Plugin
from gtcore.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def plugin_json(plugin: Plugin, stats: PluginStats | None) -> dict[str, Any]:
    """One entry of ``gtui plugin list --json``."""
    return {
        "name": plugin.name,
        "kind": plugin.kind,
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
        "order": plugin.order.to_json() if plugin.order is not None else None,
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
    """One run wisp as the history and the patrol report show it (``queued_at``: when it was claimed; ``started_at``:
    when a kennel took it, or its claim for a run still queued)."""
    return {
        "id": run.ref,
        "plugin": run.plugin,
        "rig": run.rig,
        "status": run.status,
        "result": run.result,
        "queued_at": iso(run.created_at),
        "started_at": iso(started_at(run)),
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


def started_at(run: Bead) -> float:
    """When a run started: when its kennel took it (its claim, for runs recorded before kennels, or still queued)."""
    started = run.data.get("started_at")
    return float(started) if isinstance(started, int | float) else run.created_at


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


def finished_json(run: Bead) -> dict[str, Any]:
    """One entry of ``gtui --once --json`` ``finished``: a run that ended since the previous ``--once``."""
    return {
        "plugin": run.plugin,
        "rig": run.rig,
        "id": run.ref,
        "result": run.result,
        "summary": run.body or None,
        "reason": run.data.get("reason"),
        "started_at": iso(started_at(run)),
        "finished_at": iso(run.closed_at),
        "duration_s": run.data.get("duration_s"),
        "exit_code": run.data.get("exit_code"),
        "escalation": run.data.get("escalation"),
        "problems": [problem.to_json() for problem in run_problems(run)],
    }


def dogs_json(kennels: list[dict[str, Any]], in_flight: list[Bead], now: float, here: str, size: int) -> list[dict[str, Any]]:
    """Every dog of every living kennel, working (from its run on the ledger) or idle (from the kennel's last heartbeat).

    With no kennel alive on this host (``here``), its ``size`` dogs are listed
    idle, as the kennel that the next run starts will have them.  A run whose
    kennel is not among them (it died; the next patrol closes the run) is
    listed too, so no run in flight is ever out of sight.
    """
    working = {((run.data.get("owner") or {}).get("host"), (run.data.get("owner") or {}).get("pid"), run.data.get("dog")): run
               for run in in_flight if run.status == "running"}
    dogs = []
    for kennel in kennels:
        if not kennel["alive"]:
            continue
        for dog in kennel["dogs"]:
            run = working.pop((kennel["host"], kennel["pid"], dog.get("name")), None)
            dogs.append(_dog_json(dog.get("name", "?"), kennel["host"], kennel["pid"], run, now))
    if not any(kennel["alive"] and kennel["host"] == here for kennel in kennels):
        dogs += [_dog_json(name, here, None, None, now) for name in dog_names(size)]
    dogs += [_dog_json(name, host, pid, run, now) for (host, pid, name), run in working.items()]
    return dogs


def _dog_json(name: str, host: str | None, pid: int | None, run: Bead | None, now: float) -> dict[str, Any]:
    began = started_at(run) if run is not None else None
    return {
        "name": name,
        "host": host,
        "kennel_pid": pid,
        "state": "working" if run is not None else "idle",
        "plugin": run.plugin if run is not None else None,
        "run_id": run.ref if run is not None else None,
        "started_at": iso(began),
        "elapsed_s": round(now - began, 1) if began is not None else None,
        "timeout_s": run.data.get("timeout_s") if run is not None else None,
    }
