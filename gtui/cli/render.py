"""Rich rendering of command-line listings.

Every cell is a :class:`rich.text.Text`, never a markup string: text that
comes from a plugin file or the ledger is shown literally, ``[bold]`` and all.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gtcore.model import TYPE_CHECKING, age, format_duration, format_ref, iso, run_reason, run_summary
from gtui.terminal import safe
from gtui.tui.styles import RESULT_STYLE, SEVERITY_STYLE

if TYPE_CHECKING:
    from typing import Any

    from gtcore.model import (
        Bead,
        BinaryStatus,
        DigestResult,
        Escalation,
        EscalationSettings,
        PatrolReport,
        Pause,
        Plugin,
        PluginFacts,
        PluginSet,
    )


def _cell(value: object, style: str = "") -> Text:
    return Text(safe(value), style=style)


def words(value: object) -> object:
    """A value as people read it: yes and no, never Python's True and False."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


def _table(title: str, columns: Iterable[str], wrap: Iterable[str] = ("reason", "error", "file")) -> Table:
    """A listing table; only the free-text columns in ``wrap`` may wrap, and they take the spare width.

    The title is literal text: it may hold a plugin name or a town path, and ``[red]`` there is a name, not markup.
    """
    table = Table(title=_cell(title), box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    for column in columns:
        free = column in wrap
        table.add_column(column, overflow="fold", no_wrap=not free, ratio=1 if free else None)
    return table


def _short(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def result_text(result: str | None) -> Text:
    return _cell(result or "-", RESULT_STYLE.get(result or "", ""))


def plugin_list(console: Console, plugins: PluginSet, facts: dict[str, PluginFacts], now: float) -> None:
    """Plugins and, in a city, orders: a ``kind`` column says which once there are orders; then who paused what, and why."""
    kinds = any(plugin.kind == "order" for plugin in plugins.plugins)
    title = "Plugins and orders" if kinds else "Plugins"
    columns = ["name", *(["kind"] if kinds else []), "rig", "gate", "enabled", "last run", "result", "in a row", "runs", "failures"]
    table = _table(f"{title} ({len(plugins.plugins)})", columns)
    for plugin in plugins.plugins:
        known = facts.get(plugin.name)
        stats = known.stats if known is not None else None
        shadows = f" (+{len(plugin.shadowed)} shadowed)" if plugin.shadowed else ""
        streak = known.streak if known is not None else 0
        table.add_row(
            _cell(plugin.name, "bold") + _cell(shadows, "dim"),
            *([_cell(plugin.kind)] if kinds else []),
            _cell(plugin.rig),
            _cell(_short(plugin.gate.describe(), 40)),
            _enabled(plugin, known),
            _cell(age(stats.last_started_at if stats else None, now)),
            result_text(stats.last_result if stats else None),
            _cell(f"{streak} failed" if streak else "", "red" if streak else ""),
            _cell(stats.run_count if stats else 0),
            _cell(stats.failure_count if stats else 0),
        )
    console.print(table)
    for plugin in plugins.plugins:
        known = facts.get(plugin.name)
        if known is not None and known.pause is not None:
            console.print(_cell(f"{plugin.name}: {pause_words(known.pause, now)}", "yellow"))
    if plugins.invalid:
        invalid = _table(f"Invalid plugins ({len(plugins.invalid)})", ["name", "file", "error"])
        for bad in plugins.invalid:
            invalid.add_row(_cell(bad.name, "red"), _cell(bad.location(), "red"), _cell(bad.error, "red"))
        console.print(invalid)
    for warning in plugins.warnings:
        console.print(_cell(f"warning: {warning}", "yellow"))


def _enabled(plugin: Plugin, facts: PluginFacts | None) -> Text:
    if facts is not None and facts.pause is not None:
        return _cell("paused", "yellow")
    return _cell("yes" if plugin.runs_by_itself else "no", "" if plugin.runs_by_itself else "yellow")


def pause_words(pause: Pause, now: float) -> str:
    """``paused 2h ago by ann@build-box: waiting for the new disk``: who, when and why, whichever are known."""
    by = f" by {pause.by}" if pause.by else ""
    return f"paused {age(pause.at, now)}{by}" + (f": {pause.reason}" if pause.reason else " (no reason given)")


def plugin_detail(console: Console, plugin: Plugin, facts: PluginFacts, now: float) -> None:
    stats = facts.stats
    table = Table(box=box.SIMPLE, show_header=False, title=_cell(plugin.name, "bold"), title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, object]] = [
        ("kind", plugin.kind),
        ("description", plugin.description),
        ("rig", plugin.rig + (f" (crew {plugin.crew})" if plugin.crew else "")),
        ("path", plugin.path),
        ("version", plugin.version),
        ("enabled", "yes" if plugin.runs_by_itself else f"no ({plugin.disabled_reason})"),
        *([("paused", pause_words(facts.pause, now))] if facts.pause is not None else []),
        ("gate", plugin.gate.describe()),
        ("execution", f"{plugin.execution.type}, timeout {plugin.execution.timeout}, severity {plugin.execution.severity}"
                      + (", notify on failure" if plugin.execution.notify_on_failure else "")),
        ("labels", ", ".join(plugin.tracking.labels) or "-"),
        ("digest", "yes" if plugin.tracking.digest else "no"),
        ("run.sh", "yes" if plugin.has_run_script else "no"),
        ("runs", f"{stats.run_count} ({stats.failure_count} failed)" if stats else "0"),
        ("last run", _last_run(facts, now)),
        *([("in a row", f"the last {facts.streak} ended badly")] if facts.streak > 1 else []),
        *([("next due", iso(facts.decision.next_open_at))] if facts.decision and facts.decision.next_open_at else []),
    ]
    rows += _order_rows(plugin)
    rows += [("shadows", path) for path in plugin.shadowed]
    rows += [("warning", warning) for warning in plugin.warnings]
    for key, value in rows:
        table.add_row(key, _cell(value))
    console.print(table)
    if plugin.instructions:
        console.print(Text("Instructions", style="bold"))
        console.print(_cell(plugin.instructions))


def _order_rows(plugin: Plugin) -> list[tuple[str, object]]:
    """A Gas City order's own part: what gc calls it, what it runs, where, and why it cannot run now."""
    if plugin.order is None:
        return []
    shown = plugin.order.to_json()
    keys = ("scoped_name", "type", "exec", "formula", "target", "scope", "tz", "work_dir", "formula_layer", "blocked")
    rows: list[tuple[str, object]] = [(key.replace("_", " "), words(shown[key])) for key in keys if shown.get(key)]
    rows += [("env", f"{key}={value}") for key, value in shown["env"].items()]
    rows += [("param", f"{name}{' (required)' if spec['required'] else ''}") for name, spec in shown["params"].items()]
    return rows


def _last_run(facts: PluginFacts, now: float) -> str:
    """``run-7 3m ago, failure: exited 1``: the last run, when, how it ended, and why in its own words."""
    stats, run = facts.stats, facts.last_run
    if stats is None:
        return "never"
    line = f"{format_ref('wisp', stats.last_run_id)} {age(stats.last_started_at, now)}, {stats.last_result}"
    why = run_reason(run) if run is not None else None
    return line + (f": {why}" if why else "")


def run_history(console: Console, name: str, runs: list[Bead], days: list[dict[str, Any]], now: float) -> None:
    table = _table(f"Runs of {name} ({len(runs)})", ["run", "started", "result", "exit", "duration", "dog", "summary", "reason"],
                   wrap=("summary", "reason"))
    for run in runs:
        duration = run.data.get("duration_s")
        table.add_row(
            _cell(run.ref),
            _cell(age(run.created_at, now)),
            result_text(run.result),
            _cell(run.data.get("exit_code", "")),
            _cell(format_duration(duration) if duration is not None else ""),
            _cell(run.data.get("dog", "receipt" if run.data.get("receipt") else "")),
            _cell(run_summary(run)),
            _cell(run.data.get("reason") or ""),
        )
    console.print(table)
    if days:
        digested = _table(f"Digested days of {name} ({len(days)})", ["date", "runs", "results", "median", "max", "digest"])
        for day in days:
            results = ", ".join(f"{result} {count}" for result, count in day["by_result"].items())
            digested.add_row(_cell(day["date"]), _cell(day["runs"]), _cell(results), _seconds(day["median_duration_s"]),
                             _seconds(day["max_duration_s"]), _cell(day["id"]))
        console.print(digested)


def _seconds(value: float | None) -> Text:
    return _cell(format_duration(value) if value is not None else "")


def digest_result(console: Console, result: DigestResult) -> None:
    from gtcore.model import digest_title  # here, not with the module: only a digest's words need the digest code

    verb = "would squash" if result.dry_run else "squashed"
    where = f" into {result.digest.ref}" if result.digest else ""
    merged = " (merged into the existing digest)" if result.merged else ""
    console.print(_cell(f"{digest_title(result.day)}: {verb} {result.squashed} run(s){where}{merged}"))
    table = _table("Per plugin", ["plugin", "runs", "results", "median", "max", "failures"])
    for name, stats in result.plugins.items():
        table.add_row(_cell(name, "bold"), _cell(stats["runs"]), _cell(", ".join(f"{k} {v}" for k, v in stats["by_result"].items())),
                      _seconds(stats["median_duration_s"]), _seconds(stats["max_duration_s"]), _cell(len(stats["failures"])))
    if result.plugins:
        console.print(table)


def stale_report(console: Console, statuses: list[BinaryStatus]) -> None:
    for status in statuses:
        if status.error:
            console.print(_cell(f"{status.name}: error: {status.error}", "red"))
        elif status.skipped:
            console.print(_cell(f"skipped: {status.name} (built from {(status.binary_commit or '?')[:12]}): {status.skip_reason}", "dim"))
        elif status.stale:
            behind = f"{status.commits_behind} commit(s) behind {status.compare_ref}" if status.binary_commit else "not built yet"
            console.print(_cell(f"stale: {status.name} is {behind}; {_rebuild_safety(status)}", "yellow"))
        else:
            at = status.repo_commit[:12] if status.repo_commit else "?"
            console.print(_cell(f"fresh: {status.name} is at {at} (compared against {status.compare_ref})", "green"))


def _rebuild_safety(status: BinaryStatus) -> str:
    if status.safe_to_rebuild:
        return "safe to rebuild"
    if not status.on_main_branch:
        return "NOT safe to rebuild (the repository is not on a build branch: main, master or carry/*)"
    return f"NOT safe to rebuild ({status.compare_ref} does not descend from the binary's commit)"


def run_result(console: Console, run: Bead) -> None:
    duration = run.data.get("duration_s")
    line = Text.assemble(
        (f"{run.plugin} ", "bold"),
        (f"{run.ref} ", ""),
        result_text(run.result),
        f" in {format_duration(duration or 0)}",
        f" (exit {run.data['exit_code']})" if run.data.get("exit_code") is not None else "",
    )
    console.print(line)
    if run.body:
        console.print(_cell(f"  {run_summary(run)}"))
    if run.data.get("reason"):
        console.print(_cell(f"  {run.data['reason']}", "dim"))
    if run.data.get("log"):
        console.print(_cell(f"  log: {run.data['log']}", "dim"))
    from gtcore.model import run_problems

    for problem in run_problems(run):
        console.print(_cell(f"  {problem.level}: {problem.field}: {problem.reason}", "yellow"))


def patrol_report(console: Console, report: PatrolReport, finished: list[Bead]) -> None:
    table = _table(f"Patrol of {report.town}", ["plugin", "rig", "gate", "open", "reason", "run", "result"])
    for item in report.plugins:
        run = item.run
        table.add_row(
            _cell(item.plugin.name, "bold"),
            _cell(item.plugin.rig),
            _cell(item.plugin.gate.type),
            _cell("open" if item.decision.open else "closed", "green" if item.decision.open else "dim"),
            _cell(item.decision.reason + (f"; {item.note}" if item.note else "")),
            _cell(run.ref if run else ""),
            result_text(run.result) if run else _cell(""),
        )
    console.print(table)
    for run in report.abandoned:
        console.print(_cell(f"abandoned: {run.ref} ({run.plugin}): {run.data.get('reason', '')}", "yellow"))
    for bad in report.invalid:
        console.print(_cell(f"invalid: {bad.location()}: {bad.error}", "red"))
    for run in finished:
        line = Text.assemble(("finished: ", "dim"), (f"{run.plugin} ", "bold"), f"{run.ref} ", result_text(run.result))
        why = run_reason(run)
        if why:
            line.append(f" · {why}", "dim")
        console.print(line)
    health = report.health()
    style = {"ok": "green", "degraded": "yellow", "failing": "bold red"}[health.word.value]
    console.print(_cell(f"health: {health.word.value}", style))  # what the exit status says (1: failing)
    said = {str(problem) for problem in report.problems}  # printed on stderr already, one line each
    for reason in (reason for reason in health.reasons if reason not in said):
        console.print(_cell(f"  {reason}", style if health.word.value == "failing" else "yellow"))


def kennel_list(console: Console, kennels: list[dict[str, Any]]) -> None:
    table = _table(f"Kennels ({len(kennels)})", ["host", "pid", "state", "started", "heartbeat", "patrol", "dogs", "runs"])
    for kennel in kennels:
        working = len(kennel["runs"])
        age_s = kennel["beat_age_s"]
        table.add_row(
            _cell(kennel["host"], "bold"),
            _cell(kennel["pid"]),
            _cell("alive" if kennel["alive"] else "gone", "green" if kennel["alive"] else "red"),
            _cell(kennel["started_at"] or ""),
            _cell(f"{format_duration(age_s)} ago" if age_s is not None else "-"),
            _cell("yes" if kennel["patrol"] else "no"),
            _cell(f"{working}/{len(kennel['dogs'])} working" + (" (draining)" if kennel["draining"] else "")),
            _cell(", ".join(kennel["runs"])),
        )
    console.print(table)
    if not kennels:
        console.print(_cell("no kennel: the next command that queues a run starts one (kennel = \"auto\")", "dim"))
    for kennel in kennels:
        for problem in kennel["problems"]:
            console.print(_cell(f"{kennel['host']}: {problem}", "red"))


def dog_list(console: Console, dogs: list[dict[str, Any]]) -> None:
    table = _table(f"Dogs ({len(dogs)})", ["dog", "host", "state", "plugin", "run", "elapsed", "timeout", "kennel pid"])
    for dog in dogs:
        elapsed, timeout = dog["elapsed_s"], dog["timeout_s"]
        table.add_row(
            _cell(dog["name"], "bold"),
            _cell(dog["host"]),
            _cell(dog["state"], "cyan" if dog["state"] == "working" else "dim"),
            _cell(dog["plugin"]),
            _cell(dog["run_id"]),
            _cell(format_duration(float(elapsed)) if elapsed is not None else ""),
            _cell(format_duration(float(timeout)) if timeout is not None else ""),
            _cell(dog["kennel_pid"]),
        )
    console.print(table)
    if not dogs:
        console.print(_cell("no kennel is running: the next command that queues a run starts one", "dim"))


def escalation_list(console: Console, escalations: list[Escalation], settings: EscalationSettings, now: float) -> None:
    table = _table(f"Escalations ({len(escalations)})", ["id", "severity", "status", "age", "count", "source", "fingerprint", "subject",
                                                       "notes"], wrap=("subject",))
    for item in escalations:
        notes = item.notes(settings, now)
        table.add_row(
            _cell(item.ref, "bold"),
            _cell(item.severity, SEVERITY_STYLE[item.severity]),
            _cell(item.status),
            _cell(age(item.bead.created_at, now)),
            _cell(item.occurrences),
            _cell(item.source),
            _cell(item.bead.data.get("fingerprint_key") or item.fingerprint or ""),
            _cell(item.subject),
            _cell(", ".join(notes), "yellow"),
        )
    console.print(table)


def escalation_detail(console: Console, escalation: Escalation, settings: EscalationSettings, now: float) -> None:
    data = escalation.to_json(settings, now)
    table = Table(box=box.SIMPLE, show_header=False, title=_cell(f"{escalation.ref} {escalation.subject}", "bold"),
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key in ("severity", "original_severity", "status", "source", "fingerprint", "fingerprint_key", "count", "created_at",
                "last_seen_at", "reescalations", "stale", "acked_at", "close_reason", "recovered_at"):
        if data[key] is not None:
            table.add_row(key.replace("_", " "), _cell(words(data[key])))
    console.print(table)
    if escalation.bead.body:
        console.print(_cell(escalation.bead.body))
    deliveries = _table("Deliveries", ["at", "channel", "ok", "error"], wrap=("error",))
    for item in data["deliveries"]:
        deliveries.add_row(_cell(item["at"]), _cell(item["channel"]), _cell("yes" if item["ok"] else "no",
                           "green" if item["ok"] else "red"), _cell(item["error"] or ""))
    console.print(deliveries)
    history = _table("History", ["at", "event", "detail"], wrap=("detail",))
    for item in data["history"]:
        history.add_row(_cell(item["at"]), _cell(item["event"]), _cell(item["detail"]))
    console.print(history)


def mail_list(console: Console, mail: list[Bead], now: float) -> None:
    table = _table(f"Mail ({len(mail)})", ["id", "to", "age", "subject"], wrap=("subject",))
    for item in mail:
        table.add_row(_cell(item.ref), _cell(item.data.get("to")), _cell(age(item.created_at, now)), _cell(item.title))
    console.print(table)
