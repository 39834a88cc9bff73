"""Running condition gates' ``check`` commands, several at once, off the patrol thread.

A check is ``bash -c CHECK`` in the plugin directory (a Gas City order's:
``sh -c CHECK`` in its city or rig root, with Gas City's environment), in its
own process group, killed as a group at ``check_timeout``.  Its output is
read only up to a small limit: the first line is the gate's reason, the rest
is not kept.
"""

from __future__ import annotations

import io
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gtcore.dogs import processes
from gtcore.gates.decisions import CheckResult
from gtcore.plugins.spec import Plugin

_OUTPUT_LIMIT = 64 * 1024
MAX_PARALLEL_CHECKS = 8
REASON_LIMIT = 200  # a gate reason is one line in a table, not a log


def run_check(plugin: Plugin, town_root: Path) -> CheckResult:
    """Run one plugin's check and report exit code, first line, or timeout."""
    token = processes.new_token()
    if plugin.order is not None:
        from gtcore.gascity.runs import check_command

        argv, cwd, env = check_command(plugin, town_root, token)
    else:
        argv, cwd = ["bash", "-c", plugin.gate.check or ""], plugin.workdir
        env = processes.child_environment({"GT_TOWN": str(town_root), "GT_RIG": "" if plugin.rig == "town" else plugin.rig,
                                           "GT_PLUGIN": plugin.name, processes.RUN_TOKEN: token})
    try:
        proc = processes.spawn(argv, cwd, env)
    except OSError as exc:
        return CheckResult(None, error=exc.strerror or str(exc))
    head: list[bytes] = []
    reader = threading.Thread(target=_read_head, args=(proc, head), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=plugin.gate.check_timeout.seconds)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    processes.signal_group(proc.pid, signal.SIGKILL)
    processes.reap(proc)
    processes.sweep(token, 0.0)  # a check is a question: whatever it left running goes with it
    reader.join(timeout=1.0)
    if timed_out:
        return CheckResult(None, timed_out=True)
    text = b"".join(head).decode("utf-8", "replace").strip()
    first = text.splitlines()[0].strip() if text else ""
    return CheckResult(proc.returncode, first[:REASON_LIMIT])


def _read_head(proc: subprocess.Popen[bytes], head: list[bytes]) -> None:
    """Keep the first ``_OUTPUT_LIMIT`` bytes and throw the rest away as it comes."""
    stdout = proc.stdout
    assert isinstance(stdout, io.BufferedReader)  # a buffered PIPE (Popen's default bufsize), which has read1
    kept = 0
    while chunk := stdout.read1(65536):
        if kept < _OUTPUT_LIMIT:
            head.append(chunk[: _OUTPUT_LIMIT - kept])
            kept += len(head[-1])
    stdout.close()


def run_checks(plugins: list[Plugin], town_root: Path) -> dict[str, CheckResult]:
    """Run the checks of ``plugins`` in parallel; keyed by plugin name."""
    if not plugins:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CHECKS, len(plugins)), thread_name_prefix="check") as pool:
        results = pool.map(lambda plugin: run_check(plugin, town_root), plugins)
        return {plugin.name: result for plugin, result in zip(plugins, results, strict=True)}
