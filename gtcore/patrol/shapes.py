"""JSON shapes of plugins and runs, shared by the CLI, ``--once`` and the TUI.

These dictionaries are the Deacon's interface: keep their keys stable.
"""

from __future__ import annotations

from gtcore.core.beads import Bead, Drift, DriftOutcome, dog_names, format_ref
from gtcore.core.clock import iso
from gtcore.core.errors import Problem
from gtcore.core.records import TYPE_CHECKING
from gtcore.plugins.spec import Plugin
from gtcore.storage.shared import LABEL_CAP, MAX_DRIFTS

if TYPE_CHECKING:
    from typing import Any

    from gtcore.patrol.health import EscalationCounts, Health, PluginFacts
    from gtcore.storage.contract import KennelBeat, Pause


REPORT_SCHEMA = 2
"""The version of ``gtui --once --json``'s shape: raised when a key changes meaning or goes (new keys do not raise it)."""


def plugin_json(plugin: Plugin, facts: PluginFacts | None) -> dict[str, Any]:
    """One entry of ``gtui plugin list --json``: the plugin as written, and as the ledger knows it (:func:`facts_json`)."""
    stats = facts.stats if facts is not None else None
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
        "run_count": stats.run_count if stats else 0,
        "failure_count": stats.failure_count if stats else 0,
        "order": plugin.order.to_json() if plugin.order is not None else None,
        **facts_json(facts),
    }


def facts_json(facts: PluginFacts | None) -> dict[str, Any]:
    """What the ledger knows of a plugin, as ``--once`` and ``plugin list`` say it: its last run, its failure streak,
    its pause (why, who, when), and when its gate next opens (when known)."""
    decision = facts.decision if facts is not None else None
    return {
        "last_run": last_run_json(facts),
        "failure_streak": facts.streak if facts is not None else 0,
        "paused": pause_json(facts.pause if facts is not None else None),
        "next_due": iso(decision.next_open_at) if decision is not None else None,
    }


def last_run_json(facts: PluginFacts | None) -> dict[str, Any] | None:
    """A plugin's latest run in a few words: the whole run when it was read, else what the summary keeps."""
    stats = facts.stats if facts is not None else None
    if stats is None:
        return None
    run = facts.last_run if facts is not None else None
    if run is None:
        return {"id": format_ref("wisp", stats.last_run_id), "status": None, "result": stats.last_result,
                "started_at": iso(stats.last_started_at), "finished_at": None, "summary": stats.last_summary or None,
                "summary_from_log": False, "reason": None}
    return {"id": run.ref, "status": run.status, "result": run.result, "started_at": iso(started_at(run)),
            "finished_at": iso(run.closed_at), "summary": run.body or None, "summary_from_log": bool(run.data.get("summary_from_log")),
            "reason": run.data.get("reason")}


def pause_json(pause: Pause | None) -> dict[str, Any] | None:
    return None if pause is None else {"reason": pause.reason or None, "by": pause.by or None, "at": iso(pause.at)}


def escalations_json(counts: EscalationCounts) -> dict[str, Any]:
    """The open escalations counted: all, by severity, those nobody acknowledged (their ids, by severity), the stale ones."""
    return {"open": counts.open, "by_severity": counts.by_severity,
            "unacknowledged": {severity: refs for severity, refs in counts.unacknowledged.items() if refs}, "stale": counts.stale}


def health_json(health: Health) -> dict[str, Any]:
    return {"status": health.word.value, "reasons": health.reasons}


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
        "summary_from_log": bool(run.data.get("summary_from_log")),
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
    """What a run asked of Gas Town that gtui did not answer as asked (each call: the verb and the flags it gave, how often),
    and what of its report gtui could not keep whole.

    An error when the plugin got no answer (nothing took the call: exit 127;
    or gtui refused it as written: exit 1), a warning when it got one anyway
    (a real ``gt``/``bd`` answered; words no flag takes were ignored, as Gas
    Town ignores them): either way gtui and the plugin's Gas Town have drifted
    apart, and the Deacon should know.
    """
    where = run.data.get("log") or run.ref
    problems = [_drift_problem(run, where, Drift.from_json(note)) for note in run.data.get("drift", ())]
    for level, more in sorted((run.data.get("drift_more") or {}).items()):
        problems.append(Problem(where, "drift", f"{run.ref} of plugin {run.plugin} made {more} more call(s) gtui did not answer"
                                                f" as asked, not kept one by one (a run keeps at most {MAX_DRIFTS} different ones)",
                                level))
    cut = (run.data.get("report") or {}).get("labels_cut")
    if cut:
        problems.append(Problem(where, "labels", f"{cut} label(s) of the report of {run.ref} of plugin {run.plugin} were longer"
                                                 f" than {LABEL_CAP} characters: kept cut to {LABEL_CAP}", "warning"))
    return problems


def _drift_problem(run: Bead, where: str, drift: Drift) -> Problem:
    call = f"{drift.tool} {drift.verb}"
    said = f"{call}{''.join(f' {flag}' for flag in drift.flags)}"
    times = f", {drift.calls} times" if drift.calls > 1 else ""
    return Problem(where, call, f"called by {run.ref} of plugin {run.plugin} ({said}{times}): {drift_words(drift)}", drift.level)


def drift_words(drift: Drift) -> str:
    """How a call went, in the words the run's log and its problems use."""
    if drift.outcome == DriftOutcome.HANDED:
        return f"gtui does not answer it; handed to {drift.handed_to}"
    if drift.outcome == DriftOutcome.REFUSED:
        return f"gtui refused it: {drift.reason} (exit 1)"
    if drift.outcome == DriftOutcome.IGNORED:
        return f"{drift.reason}: ignored, as Gas Town ignores them"
    if drift.outcome == DriftOutcome.FAILED:
        return f"gtui failed to answer it: {drift.reason} (exit 1)"
    return f"gtui does not answer it; no other {drift.tool} is on PATH, so it failed (exit 127)"


def finished_json(run: Bead) -> dict[str, Any]:
    """One entry of ``gtui --once --json`` ``finished``: a run that ended since the previous ``--once``."""
    return {
        "plugin": run.plugin,
        "rig": run.rig,
        "id": run.ref,
        "result": run.result,
        "summary": run.body or None,
        "summary_from_log": bool(run.data.get("summary_from_log")),
        "reason": run.data.get("reason"),
        "started_at": iso(started_at(run)),
        "finished_at": iso(run.closed_at),
        "duration_s": run.data.get("duration_s"),
        "exit_code": run.data.get("exit_code"),
        "escalation": run.data.get("escalation"),
        "receipt": bool(run.data.get("receipt")),
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


def _dog_json(name: str | None, host: str | None, pid: int | None, run: Bead | None, now: float) -> dict[str, Any]:
    """One dog; ``name`` is None only for a run in flight that names no dog (a run of no kennel)."""
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


def kennel_json(beat: KennelBeat, living: bool, now: float, runs: list[Bead]) -> dict[str, Any]:
    """One kennel as ``gtui kennel status --json`` says it: its heartbeat, its dogs, its runs, its problems."""
    return {"host": beat.host, "pid": beat.pid, "alive": living, "started_at": iso(beat.started_at), "last_beat": iso(beat.beat_at),
            "beat_age_s": round(max(0.0, now - beat.beat_at), 1), "patrol": bool(beat.data.get("patrol")),
            "draining": bool(beat.data.get("draining")), "dogs": beat.data.get("dogs", []),
            "runs": [run.ref for run in runs], "problems": beat.data.get("problems", [])}


def unbeaten_kennel_json(host: str, local: dict[str, Any]) -> dict[str, Any]:
    """This host's kennel, alive by its lock, before its first heartbeat reached the ledger."""
    return {"host": host, "pid": local.get("pid"), "alive": True, "started_at": iso(local.get("started_at")), "last_beat": None,
            "beat_age_s": None, "patrol": bool(local.get("patrol")), "draining": False, "dogs": [], "runs": [], "problems": []}
