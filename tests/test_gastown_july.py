"""gtui on Gas Town as it is at 649b832b (1.2.1, July 2026): the shapes its 13 plugins took since April, as behaviour.

Why these tests exist: since April (a8bd79bf) Gas Town's plugins record their runs with ``gt plugin
record-run``, dedupe escalations with ``gt escalate --fingerprint``, ask ``gt session health`` and
``gt hook show --json``, read ``gt stale``'s build ref and ``GT_DOLT_HOST``/``GT_DOLT_PORT``.  Each
fixture plugin here is our own, written from Gas Town's sources at 649b832b: it calls ``gt``/``bd``
in exactly the shipped shapes, silenced with ``>/dev/null 2>&1 || true`` or ``2>/dev/null || true``
where the shipped ones are, under ``set -euo pipefail``, and the test checks what the run recorded
through gtui's JSON.  The April shapes stay in tests/test_gastown.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from enginekit import gtui_env
from gastown_town import commit, git, write_json
from test_gastown import (
    COOLDOWN,
    MANUAL,
    cli,
    entry,
    escalations,
    history,
    mail,
    no_real_gt_or_bd,
    ok,
    once,
    plugin,
    plugins_listed,
    probed,
    run,
    the_town,
    written,
)

GO_WHITESPACE = "".join(map(chr, (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                                    0x202F, 0x205F, 0x3000)))
"""Go's ``unicode.IsSpace`` (what ``strings.TrimSpace`` trims), written out from its documentation: Latin-1's six and NEL and
NBSP, then Unicode's White_Space.  Python's ``str.strip`` trims more (``\x1c``-``\x1f``)."""


def fingerprint(key: str) -> str:
    """Gas Town's ``escalationFingerprintLabel``: ``escalation-fp:`` and the first 6 bytes of the trimmed key's SHA-256."""
    return "escalation-fp:" + hashlib.sha256(key.strip(GO_WHITESPACE).encode()).hexdigest()[:12]


def shim(town: Path, tool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The town's plugin-facing ``gt``/``bd`` (``.gtui/bin``, written by the first run), called outside any run."""
    return subprocess.run([str(town / ".gtui" / "bin" / tool), *args], capture_output=True, text=True, cwd=town, timeout=60,
                          env={**gtui_env(), "GT_TOWN_ROOT": str(town), **(env or {})})


# -- gt plugin record-run -----------------------------------------------------------------------------------

RECORD_RUNS: dict[str, tuple[str, str, str, str, str | None]] = {  # name -> (run.sh, result, summary, reported, detail)
    "compactor-ok": ("""SUMMARY="compactor-ok: compacted=2 skipped=1 errors=0 (threshold=2000)"
gt plugin record-run --plugin compactor-ok --result success \\
  --title "$SUMMARY" --description "$SUMMARY" >/dev/null 2>&1 || true
""", "success", "compactor-ok: compacted=2 skipped=1 errors=0 (threshold=2000)", "success",
        "compactor-ok: compacted=2 skipped=1 errors=0 (threshold=2000)"),
    "compactor-check": ("""SUMMARY="compactor-check: 2 databases above threshold (check only)"
gt plugin record-run --plugin compactor-check --result check-only \\
  --title "$SUMMARY" --description "$SUMMARY" >/dev/null 2>&1 || true
""", "check-only", "compactor-check: 2 databases above threshold (check only)", "check-only",
        "compactor-check: 2 databases above threshold (check only)"),
    "compactor-errors": ("""ERRORS=2
SUMMARY="compacted=1 skipped=0 errors=$ERRORS"
gt escalate "compactor-errors: $ERRORS databases had compaction errors" -s MEDIUM \\
  --reason "Compaction cycle completed with errors. $SUMMARY" 2>/dev/null || true
gt plugin record-run --plugin compactor-errors --result warning \\
  --title "compactor-errors: ERRORS — $SUMMARY" \\
  --description "Compaction completed with $ERRORS errors. $SUMMARY" >/dev/null 2>&1 || true
""", "warning", "compactor-errors: ERRORS — compacted=1 skipped=0 errors=2", "warning",
        "Compaction completed with 2 errors. compacted=1 skipped=0 errors=2"),
    "rebuild-fresh": ("""gt plugin record-run --plugin rebuild-fresh --result success --rig gastown \\
  --title "rebuild-gt: binary is fresh" >/dev/null 2>&1 || true
""", "success", "rebuild-gt: binary is fresh", "success", None),
    "rebuild-skip": ("""gt plugin record-run --plugin rebuild-skip --result skipped --rig gastown \\
  --title "Plugin: rebuild-gt [skipped]" \\
  --description "Skipped: not safe to rebuild" >/dev/null 2>&1 || true
""", "skipped", "Plugin: rebuild-gt [skipped]", "skipped", "Skipped: not safe to rebuild"),
    "rebuild-fails": ("""ERROR="make build/safe-install failed"
gt plugin record-run --plugin rebuild-fails --result failure --rig gastown \\
  --title "Plugin: rebuild-gt [failure]" \\
  --description "Build failed: $ERROR" >/dev/null 2>&1 || true
gt escalate "Plugin FAILED: rebuild-fails" -s medium 2>/dev/null || true
exit 1
""", "failure", "Plugin: rebuild-gt [failure]", "failure", "Build failed: make build/safe-install failed"),
    "log-rotate": ("""SIZE_MB=0
MAX_MB="${GT_DOLT_LOG_MAX_MB:-100}"
gt plugin record-run --plugin log-rotate --result success \\
  --title "dolt-log-rotate: log size ${SIZE_MB}MB, below ${MAX_MB}MB threshold" >/dev/null 2>&1 || true
""", "success", "dolt-log-rotate: log size 0MB, below 100MB threshold", "success", None),
    "archive-var": ("""RESULT=warning
SUMMARY="dolt-archive: 3 databases, 1 export failed"
gt plugin record-run --plugin archive-var --result "$RESULT" \\
  --title "$SUMMARY" --description "$SUMMARY" >/dev/null 2>&1 || true
""", "warning", "dolt-archive: 3 databases, 1 export failed", "warning", "dolt-archive: 3 databases, 1 export failed"),
    "tool-updater": ("""RESULT=success
gt plugin record-run --plugin tool-updater --result success \\
  --title "tool-updater: all tools current (beads=$(bd version 2>/dev/null | awk '{print $3}'), dolt=)" >/dev/null 2>&1 || true
""", "success", "tool-updater: all tools current (beads=0.59.0, dolt=)", "success", None),
    "odd-result": ("""gt plugin record-run --plugin odd-result --result partial --title "odd-result: half done" >/dev/null 2>&1 || true
""", "success", "odd-result: half done", "partial", None),
    "no-title": ("""gt plugin record-run --plugin no-title --result skipped >/dev/null 2>&1 || true
""", "skipped", "Plugin run: no-title", "skipped", None),
    "says-twice": ("""gt plugin record-run --plugin says-twice --result success --title "says-twice: first pass" >/dev/null 2>&1 || true
gt plugin record-run --plugin says-twice --result warning --title "says-twice: drift in 2 files" \\
  -l team:dolt -l "scope:hq,gt" >/dev/null 2>&1 || true
""", "warning", "says-twice: drift in 2 files", "warning", None),
}


def test_every_record_run_shape_of_the_shipped_plugins_is_the_runs_own_report(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    for name, (script, *_) in RECORD_RUNS.items():
        plugin(town, name, script, gate=COOLDOWN)

    report = once(town)
    listed = plugins_listed(town)
    for name, (_, result, summary, reported, detail) in RECORD_RUNS.items():
        ran = entry(report, name)["run"]
        assert (ran["result"], ran["summary"], ran["reported_result"]) == (result, summary, reported), (name, ran)
        (latest,) = history(town, name)  # the report is the run's record: no receipt of its own
        assert latest["id"] == ran["id"] and latest["detail"] == detail, (name, latest)
        assert latest["problems"] == [], (name, latest)  # every verb answered by gtui
        assert listed[name]["failure_count"] == (1 if result == "failure" else 0), (name, listed[name])
    assert {"rig:gastown", "type:plugin-run", "plugin:rebuild-skip"} <= set(history(town, "rebuild-skip")[0]["labels"])
    said = set(history(town, "says-twice")[0]["labels"])  # -l a,b is two labels: Gas Town hands it to bd create, which splits it
    assert {"team:dolt", "scope:hq", "gt"} <= said
    assert "partial" in history(town, "odd-result")[0]["reason"]  # a result gtui does not know: success, said
    raised = {item["subject"]: item for item in escalations(town)}
    assert raised["compactor-errors: 2 databases had compaction errors"]["source"] == "plugin:compactor-errors"
    assert raised["Plugin FAILED: rebuild-fails"]["related"] == entry(report, "rebuild-fails")["run"]["id"]


RECORD_PROBE = """probe id gt plugin record-run --plugin record-probe --result success --title "record-probe: ok"
probe no-plugin gt plugin record-run --result success --title "who?"
probe no-result gt plugin record-run --plugin record-probe --title "how?"
probe empty-plugin gt plugin record-run --plugin "" --result success
probe not-a-flag gt plugin record-run --plugin record-probe --result success --subject "no such flag"
"""


def test_record_run_answers_with_the_id_and_gas_towns_required_flag_errors(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "record-probe", RECORD_PROBE, gate=MANUAL)
    ran = run(town, "record-probe")
    assert probed(town, "id").rc == 0 and probed(town, "id").out == ran["id"] + "\n"
    for name, error in (("no-plugin", "--plugin is required"), ("empty-plugin", "--plugin is required"),
                        ("no-result", "--result is required"), ("not-a-flag", "unknown flag: --subject")):
        refused = probed(town, name)
        assert refused.rc == 1 and refused.one_error_line() == f"Error: {error}", (name, refused)  # cobra's first line
    assert (ran["summary"], ran["reported_result"]) == ("record-probe: ok", "success")
    assert ran["result"] == "warning"  # four calls refused: said among its problems, never green
    refusals = {problem["reason"].split("refused it: ")[1]: problem["reason"] for problem in ran["problems"]}
    assert set(refusals) == {"--plugin is required (exit 1)", "--result is required (exit 1)", "unknown flag: --subject (exit 1)"}
    assert "(gt plugin record-run --plugin, 2 times)" in refusals["--plugin is required (exit 1)"]  # the same call, counted


SILENCED = """gt plugin record-run --plugin silenced --result failure --title "silenced: broke" --run-id 7 >/dev/null 2>&1 || true
gt escalate "silenced: boom" -s high --dedupe-key x 2>/dev/null || true
"""  # the review's reproduction: a flag Gas Town never had, silenced as the shipped plugins silence every call
STRAYS = """TITLE="strays: two words"
gt plugin record-run --plugin strays --result success --title $TITLE >/dev/null 2>&1 || true
"""  # an unquoted title: Gas Town keeps the first word and ignores the rest
DASHED = """gt plugin record-run --plugin dashed --result success --title -x --description --desc >/dev/null 2>&1 || true
gt plugin record-run --plugin dashed --result success --title=-y --desc=z >/dev/null 2>&1 || true
"""  # pflag: a value flag takes the next word whatever it looks like; a name is never abbreviated


def test_a_call_gtui_refuses_or_cuts_is_never_silent_though_the_plugin_silences_it(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    for name, script in (("silenced", SILENCED), ("strays", STRAYS), ("dashed", DASHED)):
        plugin(town, name, script, gate=COOLDOWN)
    done = cli(town, "--once", "--wait", "--json")
    assert done.code == 1, done  # a run in finished got no answer to a call: the Deacon hears of it in the exit status
    finished = {item["plugin"]: item for item in done.json()["finished"]}

    silenced = history(town, "silenced")[0]
    assert (silenced["result"], silenced["summary"]) == ("warning", None)  # its report was refused: a run, never a green one
    assert "2 call(s) to gt or bd got no answer from gtui" in silenced["reason"]
    said = {problem["field"]: problem for problem in silenced["problems"]}
    assert set(said) == {"gt plugin record-run", "gt escalate"} and {problem["level"] for problem in said.values()} == {"error"}
    assert "(gt plugin record-run --run-id): gtui refused it: unknown flag: --run-id (exit 1)" in said["gt plugin record-run"]["reason"]
    assert "unknown flag: --dedupe-key" in said["gt escalate"]["reason"]
    assert finished["silenced"]["problems"] == silenced["problems"] and "silenced: boom" not in json.dumps(escalations(town))
    log = Path(silenced["log"]).read_text()
    assert "[gtui: drift: gt plugin record-run --run-id: gtui refused it: unknown flag: --run-id (exit 1)]" in log

    strays = history(town, "strays")[0]
    assert (strays["result"], strays["summary"]) == ("success", "strays:")  # as Gas Town records it: the first word
    ((ignored),) = strays["problems"]
    assert ignored["level"] == "warning" and "2 word(s) no flag takes: ignored, as Gas Town ignores them" in ignored["reason"]

    dashed = history(town, "dashed")[0]
    assert (dashed["result"], dashed["summary"], dashed["detail"]) == ("warning", "-x", "--desc"), dashed
    assert "unknown flag: --desc" in dashed["problems"][0]["reason"]  # the second call: --desc is no abbreviation of anything


QUALITY_REVIEW = """RIG=gastown
gt plugin record-run --plugin quality-review-result --result success --rig "$RIG" \\
  --label "worker:nux" --label "score:0.82" --label "recommendation:approve" \\
  --title "quality-review-result: nux 0.82" --description "Worker: nux
Avg Score: 0.82" >/dev/null 2>&1 || true
probe recent bd list --json --all -l type:plugin-run,plugin:quality-review-result --created-after=-24h
gt plugin record-run --plugin quality-review --result success --title "quality-review: 1 worker reviewed" >/dev/null 2>&1 || true
"""


def test_a_receipt_of_another_plugin_is_a_closed_run_that_history_and_gates_count(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "quality-review", QUALITY_REVIEW, gate=MANUAL)
    plugin(town, "quality-review-result", "echo 'never run by a gate'\n", gate=COOLDOWN)
    ran = run(town, "quality-review")
    assert (ran["result"], ran["summary"]) == ("success", "quality-review: 1 worker reviewed")

    (seen,) = probed(town, "recent").json()  # read back the way quality-review reads it, closed as Gas Town's receipts are
    assert seen["status"] == "closed" and seen["closed_at"] and seen["title"] == "quality-review-result: nux 0.82"
    assert {"type:plugin-run", "plugin:quality-review-result", "rig:gastown", "result:success", "worker:nux", "score:0.82",
            "recommendation:approve"} <= set(seen["labels"])
    (receipt,) = history(town, "quality-review-result")
    assert receipt["id"] == seen["id"] and receipt["detail"] == "Worker: nux\nAvg Score: 0.82" and receipt["dog"] is None
    gate = entry(once(town), "quality-review-result")
    assert (gate["gate"]["state"], gate["dispatched"]) == ("waiting", False)  # its cooldown counts from the receipt

    by_hand = shim(town, "gt", "plugin", "record-run", "--plugin", "quality-review-result", "--result", "failure",
                   "--title", "recorded by hand")  # outside any run at all
    assert by_hand.returncode == 0 and by_hand.stdout.strip().startswith("run-"), by_hand
    latest = history(town, "quality-review-result")[0]
    assert (latest["id"], latest["result"], latest["summary"]) == (by_hand.stdout.strip(), "failure", "recorded by hand")
    assert plugins_listed(town)["quality-review-result"]["failure_count"] == 1
    people = cli(town, "plugin", "history", "quality-review-result")
    assert "recorded by hand" in people.out and "quality-review-result: nux 0.82" in people.out  # each run's summary shows
    shown = shim(town, "gt", "plugin", "history", "quality-review-result").stdout.splitlines()  # as Gas Town prints it
    day = latest["queued_at"][:16].replace("T", " ")
    assert shown[:3] == ["● Execution history for quality-review-result (2 runs)", "", f"  ✗ {day}  {latest['id']}"]
    assert re.fullmatch(rf"  ✓ \d{{4}}-\d\d-\d\d \d\d:\d\d  {receipt['id']}", shown[3]) and len(shown) == 4
    assert shim(town, "gt", "plugin", "history", "nothing-yet").stdout == "○ No execution history for plugin: nothing-yet\n"
    after = cli(town, "--once", "--json")
    (listed,) = [item for item in after.json()["finished"] if item["id"] == latest["id"]]
    assert after.code == 0 and (listed["result"], listed["receipt"]) == ("failure", True)  # a record someone wrote, not a run
    assert after.json()["health"]["status"] == "degraded"
    assert after.json()["health"]["reasons"][0] == (
        f"plugin quality-review-result (a receipt): its last run ended badly; last {latest['id']} failure: recorded by hand")


# -- gt escalate --fingerprint ------------------------------------------------------------------------------

AGENT_DOG = """CONFIRMED_TOTAL=3
gt escalate "Mass agent death: $CONFIRMED_TOTAL agents down" \\
  -s CRITICAL \\
  --source "plugin:stuck-agent-dog" \\
  --fingerprint "stuck-agent-dog:mass-death" 2>/dev/null || true
DEACON_ISSUE=stuck_heartbeat_1500s
DEACON_SEVERITY="MEDIUM"
DEACON_FINGERPRINT="stuck-agent-dog:deacon:stuck-heartbeat"
\tgt escalate "Deacon $DEACON_ISSUE detected by stuck-agent-dog" \\
\t\t-s "$DEACON_SEVERITY" \\
\t\t--source "plugin:stuck-agent-dog" \\
\t\t--fingerprint "$DEACON_FINGERPRINT" 2>/dev/null || true
probe again-json gt escalate "Mass agent death: 4 agents down" -s CRITICAL --source "plugin:stuck-agent-dog" \\
  --fingerprint " stuck-agent-dog:mass-death " --json
probe again-text gt escalate "Mass agent death: 5 agents down" -s CRITICAL --fingerprint "stuck-agent-dog:mass-death"
probe dry gt escalate "Mass agent death: dry" -s CRITICAL --fingerprint "stuck-agent-dog:mass-death" -n
probe created gt escalate "Deacon zombie detected by stuck-agent-dog" -s HIGH --source "plugin:stuck-agent-dog" \\
  --fingerprint "stuck-agent-dog:deacon:zombie"
SUMMARY="Agent health: 3 crashed, 0 stuck, 0 healthy, deacon=$DEACON_ISSUE"
gt plugin record-run --plugin agent-dog --result success \\
  --title "stuck-agent-dog: $SUMMARY" --description "$SUMMARY" >/dev/null 2>&1 || true
"""
MASS_DEATH = fingerprint("stuck-agent-dog:mass-death")
HEARTBEAT = fingerprint("stuck-agent-dog:deacon:stuck-heartbeat")


def fingerprinted(town: Path, label: str) -> list[dict[str, Any]]:
    return [item for item in escalations(town, "--all") if item["fingerprint"] == label]


def test_a_fingerprinted_escalation_is_suppressed_while_open_or_acknowledged_and_released_by_its_close(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "agent-dog", AGENT_DOG, gate=MANUAL)
    first = run(town, "agent-dog")
    assert (first["result"], first["problems"]) == ("success", [])
    (death,) = fingerprinted(town, MASS_DEATH)
    (heartbeat,) = fingerprinted(town, HEARTBEAT)
    assert (death["subject"], death["severity"], death["source"]) == ("Mass agent death: 3 agents down", "critical",
                                                                      "plugin:stuck-agent-dog")
    assert (death["fingerprint_key"], death["count"], heartbeat["severity"]) == ("stuck-agent-dog:mass-death", 3, "medium")
    suppressed = probed(town, "again-json").json()
    assert suppressed == {"id": death["id"], "status": "duplicate_suppressed", "fingerprint": MASS_DEATH}
    assert list(suppressed) == ["fingerprint", "id", "status"]  # Go marshals a map with its keys sorted
    assert probed(town, "again-text").out.splitlines() == [f"✓ Duplicate escalation suppressed: {death['id']}",
                                                          f"  Fingerprint: {MASS_DEATH}"]
    assert probed(town, "dry").out.splitlines() == [
        "Would create escalation:", "  Severity: critical", "  Description: Mass agent death: dry", "  Source: plugin:agent-dog",
        f"  Fingerprint: {MASS_DEATH}", "  Actions: bead, mail:mayor, email:human, sms:human", "  Mail targets: mayor"]
    (zombie,) = fingerprinted(town, fingerprint("stuck-agent-dog:deacon:zombie"))
    assert probed(town, "created").out.splitlines() == [
        f"⚠️ Escalation created: {zombie['id']}", "  Severity: high", "  Source: plugin:stuck-agent-dog",
        f"  Fingerprint: {zombie['fingerprint']}", "  Routed to: mayor"]  # Gas Town's lines; email:human has no contact
    assert len([item for item in mail(town) if "Mass agent death" in item["subject"]]) == 1  # mail:mayor, once
    assert MASS_DEATH in cli(town, "escalate", "show", death["id"]).out

    ok(town, "escalate", "ack", death["id"])
    run(town, "agent-dog")
    (acked,) = fingerprinted(town, MASS_DEATH)  # acknowledged still suppresses (Gas Town only adds an "acked" label)
    assert (acked["id"], acked["status"], acked["count"]) == (death["id"], "acked", 6)

    ok(town, "escalate", "close", death["id"], "--reason", "polecats restarted")
    run(town, "agent-dog")
    closed, new = sorted(fingerprinted(town, MASS_DEATH), key=lambda item: item["id"] != death["id"])
    assert (closed["status"], new["status"], new["count"]) == ("closed", "open", 3)  # closing released it
    assert len([item for item in mail(town) if "Mass agent death" in item["subject"]]) == 2
    assert [item["count"] for item in fingerprinted(town, HEARTBEAT)] == [3]  # never closed: one, suppressed twice


def test_gtui_escalate_takes_the_fingerprint_too(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    raised = ok(town, "escalate", "Deacon zombie detected", "-s", "high", "--fingerprint", "stuck-agent-dog:deacon:zombie")
    assert (raised["created"], raised["fingerprint"]) == (True, fingerprint("stuck-agent-dog:deacon:zombie"))
    again = ok(town, "escalate", "Deacon zombie seen again", "-s", "low", "--fingerprint", "stuck-agent-dog:deacon:zombie")
    assert again == {"id": raised["id"], "status": "duplicate_suppressed", "fingerprint": raised["fingerprint"]}
    blank = ok(town, "escalate", "Deacon zombie seen again", "--fingerprint", "  ")  # blank: no fingerprint, as in Gas Town
    assert blank["created"] is True and "fingerprint" not in blank
    listed = cli(town, "escalate", "list")
    assert "stuck-agent-dog:deacon:zombie" in listed.out


# -- gt session health, read from a real tmux ---------------------------------------------------------------

SESSIONS = ("gt-nux", "gt-furiosa", "gt-slit", "gt-codex", "gt-split", "gt-pinned", "gt-gone")
HEALTH = """for SESSION in """ + " ".join(SESSIONS) + """; do
  probe "$SESSION" gt session health "$SESSION" --json --max-inactivity "${GT_STUCK_AGENT_DOG_MAX_INACTIVITY:-0s}"
done
session_health_status() {
  local health_json="" status=""
  health_json=$(gt session health "$1" --json --max-inactivity "$2" 2>/dev/null) || return 1
  status=$(printf '%s' "$health_json" | jq -r '.status // empty' 2>/dev/null || true)
  [ -n "$status" ] || return 1
  printf '%s\\n' "$status"
}
session_health_status gt-nux 1ns > "$OUT/hung"
session_health_status gt-nux 1000h > "$OUT/patient"
probe plain gt session health gt-nux
probe days gt session health gt-nux --json --max-inactivity 2d
probe no-name gt session health --json
"""


@pytest.fixture
def tmux_socket() -> Iterator[str]:
    """A private tmux server for one test (killed after it): the test's sessions never touch anyone else's."""
    socket = f"gtui-test-{uuid.uuid4().hex[:10]}"
    yield socket
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True, timeout=10).stdout.strip()


def agent_session(socket: str, name: str, command: str, **environment: str) -> None:
    """A detached session running ``command``, with ``environment`` in the session's tmux environment (as Gas Town sets it)."""
    tmux(socket, "new-session", "-d", "-s", name, command)
    for key, value in environment.items():
        tmux(socket, "set-environment", "-t", name, key, value)


def test_session_health_reads_tmux_as_gas_town_does(tmp_path: Path, tmux_socket: str) -> None:
    town = the_town(tmp_path)
    agent_session(tmux_socket, "gt-nux", "sleep 600", GT_PROCESS_NAMES="claude,sleep")  # the agent is the pane's command
    agent_session(tmux_socket, "gt-furiosa", "bash -c 'sleep 600; true'", GT_PROCESS_NAMES="sleep")  # a shell with it under
    agent_session(tmux_socket, "gt-slit", "bash -c 'sleep 600; true'")  # no GT_PROCESS_NAMES: node, claude
    agent_session(tmux_socket, "gt-codex", "sleep 600", GT_AGENT="codex")  # a preset's names: codex
    for name in ("gt-split", "gt-pinned"):  # the agent in a second window
        agent_session(tmux_socket, name, "cat", GT_PROCESS_NAMES="sleep")
        tmux(tmux_socket, "new-window", "-d", "-t", name, "sleep 600")
    tmux(tmux_socket, "set-environment", "-t", "gt-pinned", "GT_PANE_ID", tmux(tmux_socket, "display-message", "-p", "-t",
                                                                                "gt-pinned:^", "#{pane_id}"))
    plugin(town, "agent-health", HEALTH, gate=MANUAL)

    done = cli(town, "plugin", "run", "agent-health", "--json", env={"GT_TMUX_SOCKET": tmux_socket})
    refused = {problem["reason"].split("refused it: ")[1] for problem in done.json()["problems"]}
    assert done.code == 0 and refused == {"invalid argument for --max-inactivity: '2d' has unknown unit 'd' (exit 1)",
                                          "the following arguments are required: session (exit 1)"}, done  # its two probes
    statuses = {name: probed(town, name).json() for name in SESSIONS}
    assert statuses["gt-nux"] == {"session": "gt-nux", "status": "healthy", "healthy": True, "zombie": False,
                                  "max_inactivity_seconds": 0}
    assert {name: shown["status"] for name, shown in statuses.items()} == {
        "gt-nux": "healthy", "gt-furiosa": "healthy", "gt-slit": "agent-dead", "gt-codex": "agent-dead",
        "gt-split": "healthy",  # found in any pane
        "gt-pinned": "agent-dead",  # only the pane the session declared (GT_PANE_ID) counts
        "gt-gone": "session-dead"}
    assert (statuses["gt-slit"]["zombie"], statuses["gt-gone"]["zombie"]) == (True, False)
    assert (written(town, "hung"), written(town, "patient")) == ("agent-hung\n", "healthy\n")
    assert (probed(town, "plain").rc, probed(town, "plain").out) == (0, "gt-nux: healthy\n")
    assert probed(town, "days").rc == 1 and "unknown unit 'd'" in probed(town, "days").one_error_line()  # a Go duration
    assert probed(town, "no-name").rc == 1


def test_without_gt_tmux_socket_session_health_reads_the_towns_own_socket_named_as_gas_town_names_it(tmp_path: Path) -> None:
    """Gas Town's ``townSocketName``: the town directory's name, lowercased, anything but [a-z0-9-] as one ``-``, then 6 hex
    digits of the SHA-256 of its real path.  A wrong name would make every session ``session-dead``."""
    from gtcore.town.sessions import socket_name

    assert socket_name(Path("/nonexistent-gtui-test/Gas Town!"), {}) == "gas-town-8d4d83"  # pinned: sha256 of those bytes
    assert socket_name(Path("/nonexistent-gtui-test/gt"), {"GT_TMUX_SOCKET": "auto"}) == "gt-" + hashlib.sha256(
        b"/nonexistent-gtui-test/gt").hexdigest()[:6]
    assert socket_name(Path("/nonexistent-gtui-test/gt"), {"GT_TMUX_SOCKET": "mine"}) == "mine"
    town = the_town(tmp_path)
    named = "gt-" + hashlib.sha256(os.path.realpath(town).encode()).hexdigest()[:6]
    try:
        agent_session(named, "gt-nux", "sleep 600", GT_PROCESS_NAMES="sleep")
        plugin(town, "agent-health", 'probe nux gt session health gt-nux --json\n', gate=MANUAL)
        assert run(town, "agent-health")["result"] == "success"
        assert probed(town, "nux").json()["status"] == "healthy"
    finally:
        subprocess.run(["tmux", "-L", named, "kill-server"], capture_output=True, timeout=10)


# -- gt hook show and other verbs gtui does not answer: drift, never silent ---------------------------------

DRIFTER = """RIG=gastown
PCAT=nux
dir="$GT_TOWN_ROOT/$RIG/mayor/rig"
hook_json=$( ( cd "$dir" 2>/dev/null && gt hook show "$RIG/polecats/$PCAT" --json 2>/dev/null ) || true )
bead=$(printf '%s' "$hook_json" | jq -r '.bead_id // empty' 2>/dev/null || true)
status=$(printf '%s' "$hook_json" | jq -r '.status // empty' 2>/dev/null || true)
echo "$bead|$status" > "$OUT/hook"
PLUGIN_ENABLED=$(gt rig show "$RIG" --json 2>/dev/null \\
  | jq -r '.plugins["submodule-commit"].enabled // false' 2>/dev/null || echo "false")
echo "$PLUGIN_ENABLED" > "$OUT/enabled"
gt plugin record-run --plugin drifter --result success --title "drifter: checked" >/dev/null 2>&1 || true
"""


ELSEWHERE = """setsid bash -c 'gt rig show gastown --json 2>/dev/null || true' > "$OUT/own-file"
setsid env -u GTUI_RUN_TOKEN bash -c 'GTUI_RUN_TOKEN="$0" gt rig show gastown --json 2>/dev/null; true' "$GTUI_RUN_TOKEN" \\
  | cat > "$OUT/foreign-pipe"
"""  # the drift line goes into the run's own output only: never a file the plugin chose, nor a pipe of a process not the run's


def drift_of(problems: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {problem["field"]: problem for problem in problems if problem["field"] in ("gt hook show", "gt rig show")}


def test_a_verb_gtui_does_not_answer_is_in_the_runs_log_and_problems_even_silenced(tmp_path: Path) -> None:
    no_real_gt_or_bd()
    town = the_town(tmp_path)
    plugin(town, "drifter", DRIFTER + ELSEWHERE, gate=COOLDOWN)
    done = cli(town, "--once", "--wait", "--json")
    report = done.json()
    ran = history(town, "drifter")[0]
    assert (ran["summary"], written(town, "hook"), written(town, "enabled")) == ("drifter: checked", "|\n", "false\n")
    assert ran["result"] == "warning" and done.code == 1  # its hook check came back empty for want of an answer: never green
    for where in (drift_of(ran["problems"]), drift_of(report["problems"])):
        assert set(where) == {"gt hook show", "gt rig show"}, where
        hook = where["gt hook show"]
        assert hook["level"] == "error" and "drifter" in hook["reason"] and "--json" in hook["reason"] and "127" in hook["reason"]
        assert hook["file"] == ran["log"]
    log = Path(ran["log"]).read_text()
    assert "[gtui: drift: gt hook show --json: gtui does not answer it; no other gt is on PATH" in log
    assert log.count("[gtui: drift: gt rig show --json: gtui does not answer it") == 1
    assert (written(town, "own-file"), written(town, "foreign-pipe")) == ("", "")
    (rig_show,) = [problem for problem in ran["problems"] if problem["field"] == "gt rig show"]
    assert "--json, 3 times)" in rig_show["reason"]  # kept once, counted: three calls


def test_a_verb_a_real_gt_answers_is_still_drift_and_the_plugin_reads_its_answer(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    real = tmp_path / "real-bin"
    real.mkdir()
    (real / "gt").write_text("""#!/bin/sh
case "$1 $2" in
  "hook show") echo '{"agent":"gastown/polecats/nux","bead_id":"gt-abc12","title":"fix it","status":"hooked"}' ;;
  "rig show") echo '{"name":"gastown","plugins":{"submodule-commit":{"enabled":true}}}' ;;
esac
""", encoding="utf-8")
    (real / "gt").chmod(0o755)
    plugin(town, "drifter", DRIFTER, gate=MANUAL)
    done = cli(town, "plugin", "run", "drifter", "--json", env={"PATH": f"{real}{os.pathsep}{os.environ['PATH']}"})
    assert done.code == 0, done
    assert (written(town, "hook"), written(town, "enabled")) == ("gt-abc12|hooked\n", "true\n")
    drift = drift_of(done.json()["problems"])
    assert set(drift) == {"gt hook show", "gt rig show"}
    assert all(item["level"] == "warning" and f"handed to {real / 'gt'}" in item["reason"] for item in drift.values()), drift


def test_the_april_hook_reading_fails_visibly_without_a_real_gt(tmp_path: Path) -> None:
    """April's stuck-agent-dog pipes ``gt hook show`` under pipefail: with no hooks to read, its run fails and says why,
    where an invented empty hook would have been a green no-op."""
    no_real_gt_or_bd()
    town = the_town(tmp_path)
    plugin(town, "old-dog", """HOOK_OUTPUT=$(gt hook show "gastown/polecats/nux" 2>/dev/null | head -1)
echo "never here" > "$OUT/after"
""", gate=MANUAL)
    ran = run(town, "old-dog")
    assert ran["result"] == "failure" and not (town / "out" / "after").exists()
    assert list(drift_of(ran["problems"])) == ["gt hook show"]


WORK = """has_in_progress_work() {
  local output="" count=""
  output=$(cd "$GT_TOWN_ROOT" && bd list --status=in_progress --json --limit=1 2>/dev/null) || return 0
  count=$(printf '%s' "$output" | jq 'length' 2>/dev/null || echo 1)
  [ "${count:-1}" -gt 0 ]
}
if has_in_progress_work; then echo busy > "$OUT/work"; else echo idle > "$OUT/work"; fi
probe runs bd list --status=in_progress --json -l type:plugin-run
"""  # stuck-agent-dog's has_in_progress_work (run.sh:82), run from the town root


def test_stuck_agent_dogs_work_in_progress_is_asked_of_gas_towns_beads_never_answered_with_gtuis_own_run(tmp_path: Path) -> None:
    """On gtui's ledger only plugin runs are ever in progress: answering would make the dog's own run "work", and an idle
    Deacon with a stale heartbeat an escalated STUCK instead of a SKIP."""
    no_real_gt_or_bd()
    town = the_town(tmp_path)
    plugin(town, "agent-dog", WORK, gate=MANUAL)
    alone = run(town, "agent-dog")
    assert written(town, "work") == "busy\n"  # no bd to ask: the plugin's own fail-safe (assume work), said, not gtui's run
    (asked,) = alone["problems"]
    assert (asked["field"], asked["level"]) == ("bd list", "error") and "--status" in asked["reason"] and "127" in asked["reason"]
    assert [item["id"] for item in probed(town, "runs").json()] == [alone["id"]]  # asked about plugin runs: gtui's to answer

    real = tmp_path / "real-bin"
    real.mkdir()
    (real / "bd").write_text('#!/bin/sh\ncase "$*" in *in_progress*) echo "[]" ;; esac\n', encoding="utf-8")
    (real / "bd").chmod(0o755)
    assert cli(town, "kennel", "stop").code == 0  # the next run's kennel starts with the PATH below
    handed = cli(town, "plugin", "run", "agent-dog", "--json", env={"PATH": f"{real}{os.pathsep}{os.environ['PATH']}"})
    assert handed.code == 0 and written(town, "work") == "idle\n"  # Gas Town's beads say it: nothing in progress
    ((asked),) = handed.json()["problems"]
    assert asked["level"] == "warning" and f"handed to {real / 'bd'}" in asked["reason"]


HOSTILE = r"""probe bytes gt $'\xff\xfe' --json
LONG="worker:$(python3 -c 'import os; print(os.urandom(3000).hex())')"
probe report gt plugin record-run --plugin hostile --result warning --title $'hostile: t\xff' --description $'d\xfe' \
  -l $'k:\xff' -l "$LONG"
probe receipt gt plugin record-run --plugin $'other\xff' --result success --title $'r\xff' -l "$LONG"
probe escalated gt escalate $'hostile: boom \xff' --fingerprint $'key\xff' --json
probe mailed gt mail send mayor/ -s $'hostile: s\xff' --stdin <<< $'body \xff'
probe piped gt escalate "hostile: piped" --stdin <<< $'why \xfe'
probe huge gt "$(head -c 100000 /dev/zero | tr '\0' x)" --json
probe valued bd update gt-abc12 --status "in progress" --notes=secret -- --not-a-flag
probe flagged gt rig show gastown "--$(head -c 5000 /dev/zero | tr '\0' a)" $(printf -- '--many%s ' $(seq 1 30))
for number in $(seq 1 21); do bd "verb$number" --json 2>/dev/null || true; done
for number in 1 2 3; do gt rig show gastown 2>/dev/null || true; done
"""  # what no plugin means to send, on every new path: bytes that are not UTF-8, 100 kB words, 6 kB labels, values


def test_hostile_arguments_are_kept_readable_and_bounded_on_both_backends_never_a_traceback(tmp_path: Path, storage: str) -> None:
    no_real_gt_or_bd()
    town = the_town(tmp_path)
    plugin(town, "hostile", HOSTILE, gate=MANUAL)
    ran = run(town, "hostile")
    for name in ("bytes", "report", "receipt", "escalated", "mailed", "piped", "huge", "valued", "flagged"):
        assert "Traceback" not in probed(town, name).err, (name, probed(town, name).err)
    assert (probed(town, "bytes").rc, probed(town, "huge").rc, probed(town, "valued").rc) == (127, 127, 127)
    assert (ran["summary"], ran["detail"], ran["reported_result"]) == ("hostile: t\ufffd", "d\ufffd", "warning")
    assert "k:\ufffd" in ran["labels"] and any(label.startswith("worker:") and len(label) == 255 for label in ran["labels"])

    receipt = history(town, "other\ufffd")[0]
    assert probed(town, "receipt").out == receipt["id"] + "\n" and receipt["labels"] and receipt["problems"][0]["field"] == "labels"
    raw = "escalation-fp:" + hashlib.sha256(b"key\xff").hexdigest()[:12]  # Gas Town hashes the bytes it was given
    raised = probed(town, "escalated").json()
    assert raised["fingerprint"] == raw and ok(town, "escalate", "show", raised["id"])["fingerprint_key"] == "key\ufffd"
    assert [item["body"] for item in mail(town) if item["subject"] == "hostile: s\ufffd"] == ["body \ufffd"]
    assert [item["body"] for item in escalations(town) if item["subject"] == "hostile: piped"] == ["why \ufffd"]

    problems = {problem["field"]: problem for problem in ran["problems"]}
    assert len(json.dumps(ran["problems"])) < 20_000  # a 100 kB word is not kept, nor is any value
    assert problems["gt (not a command name)"]["level"] == "error" and "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" not in json.dumps(problems)
    assert "(bd update --notes --status)" in problems["bd update"]["reason"] and "secret" not in json.dumps(problems)
    assert "gt-abc12" not in json.dumps(problems) and "--not-a-flag" not in json.dumps(problems)
    assert {f"bd verb{number}" for number in range(1, 22)} <= set(problems)  # more than 20 different calls: every one kept
    assert "3 times" in problems["gt rig show"]["reason"] and problems["labels"]["level"] == "warning"
    (flagged,) = [problem["reason"] for problem in ran["problems"] if "--many" in problem["reason"]]
    assert f" --{'a' * 62} --many1 " in flagged and flagged.count("--many") == 15  # 16 names at most, each cut to 64


def test_a_bug_in_a_plugin_facing_command_is_one_line_and_exit_1_never_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from gtui.shims.context import guarded

    def broken(argv: list[str]) -> int:
        raise RuntimeError("a bug")

    assert guarded("gt", ["plugin", "list", "--json"], {"plugin": {"list": broken}}) == 1
    assert capsys.readouterr() == ("", "Error: internal error (a bug in gtui): RuntimeError: a bug\n")


# -- gt stale: the build ref --------------------------------------------------------------------------------

REBUILD = """STALE_JSON=$(gt stale --json 2>/dev/null) || {
  echo "failed" > "$OUT/stale"
  exit 0
}
echo "$STALE_JSON" > "$OUT/stale.json"
probe quiet gt stale -q
IS_STALE=$(echo "$STALE_JSON" | python3 -c "import json,sys; print(json.load(sys.stdin).get('stale', False))" 2>/dev/null || echo "False")
if [ "$IS_STALE" != "True" ]; then
  gt plugin record-run --plugin rebuild-gt --result success --rig gastown \\
    --title "rebuild-gt: binary is fresh" >/dev/null 2>&1 || true
  exit 0
fi
gt plugin record-run --plugin rebuild-gt --result skipped --rig gastown \\
  --title "Plugin: rebuild-gt [skipped]" --description "Skipped: not safe to rebuild" >/dev/null 2>&1 || true
"""


def test_gt_stale_compares_with_a_build_branch_and_says_when_it_cannot(tmp_path: Path) -> None:
    settings = ('dogs = 2\nkill_grace = "1s"\n[[stale.binaries]]\nname = "gt"\nbinary = "bin/gt"\n'
                'repo = "gastown/mayor/rig"\n')
    town = the_town(tmp_path, settings)
    clone = town / "gastown" / "mayor" / "rig"
    git(clone, "checkout", "-q", "-b", "polecat/nux")
    built = commit(clone, "polecat work the binary was built from", "cmd/gt/main.go")
    (town / "bin").mkdir()
    (town / "bin" / "gt").write_text(f'#!/bin/sh\necho "gt version 1.2.1 (dev: polecat/nux@{built[:12]})"\n', encoding="utf-8")
    (town / "bin" / "gt").chmod(0o755)
    plugin(town, "rebuild-gt", REBUILD, gate=MANUAL)

    ran = run(town, "rebuild-gt")
    said = json.loads(written(town, "stale.json"))
    assert (said["skipped"], said["stale"], said["binary_commit"]) == (True, False, built)
    assert said["skip_reason"] == "source worktree not on a build branch and no build-branch ref found to compare against"
    assert probed(town, "quiet").rc == 2  # skipped: undetermined
    assert (ran["result"], ran["summary"]) == ("success", "rebuild-gt: binary is fresh")  # what Gas Town's own plugin does

    git(clone, "checkout", "-q", "main")
    git(clone, "merge", "-q", "--ff-only", "polecat/nux")
    head = commit(clone, "a fix on main", "cmd/gt/fix.go")
    git(clone, "checkout", "-q", "polecat/nux")  # the mayor's clone is back on a feature branch
    ran = run(town, "rebuild-gt")
    said = json.loads(written(town, "stale.json"))
    assert (said["compare_ref"], said["repo_commit"], said["commits_behind"], said["stale"]) == ("main", head, 1, True)
    assert (said["on_main_branch"], said["safe_to_rebuild"], probed(town, "quiet").rc) == (False, False, 0)
    assert (ran["result"], ran["detail"]) == ("skipped", "Skipped: not safe to rebuild")


# -- GT_DOLT_HOST and GT_DOLT_PORT --------------------------------------------------------------------------

DOLT = """DOLT_HOST="${GT_DOLT_HOST:-${DOLT_HOST:-127.0.0.1}}"
DOLT_PORT="${GT_DOLT_PORT:-${DOLT_PORT:-3307}}"
echo "$DOLT_HOST:$DOLT_PORT" > "$OUT/dolt"
echo "${BEADS_DOLT_SERVER_HOST:-unset} ${BEADS_DOLT_SERVER_PORT:-unset} ${BEADS_DOLT_PORT:-unset}" > "$OUT/beads"
"""


def test_runs_get_the_dolt_server_gas_towns_daemon_gives_its_dogs(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "compactor", DOLT, gate=MANUAL)
    assert run(town, "compactor")["result"] == "success"
    assert written(town, "dolt") == "127.0.0.1:3307\n"  # nothing set: the plugin's own defaults

    write_json(town / "mayor" / "daemon.json", {"type": "daemon-patrol-config", "version": 1, "env": {"GT_DOLT_PORT": "3399"}})
    # A run's environment is its kennel's: each step stops the kennel, and the command that runs the plugin starts the
    # next one with the environment given here (read, like Gas Town's daemon reads it, when the kennel starts).
    assert cli(town, "kennel", "stop").code == 0
    assert cli(town, "plugin", "run", "compactor", env={"GT_DOLT_HOST": "dolt.internal", "GT_DOLT_PORT": "3400"}).code == 0
    assert written(town, "dolt") == "dolt.internal:3399\n"  # gt config set dolt.port wins over the environment, as in the daemon

    (town / ".dolt-data").mkdir()
    (town / ".dolt-data" / "config.yaml").write_text('log_level: info\nlistener:\n  host: "10.0.0.7"\n  port: 3311\n'
                                                     'behavior:\n  read_only: false\n', encoding="utf-8")
    beads = {"BEADS_DOLT_SERVER_HOST": "elsewhere", "BEADS_DOLT_SERVER_PORT": "4000", "BEADS_DOLT_PORT": "4001"}
    assert cli(town, "kennel", "stop").code == 0
    assert cli(town, "plugin", "run", "compactor", env={"GT_DOLT_HOST": "dolt.internal", **beads}).code == 0
    assert written(town, "dolt") == "10.0.0.7:3311\n"  # the town's managed server replaces both
    assert written(town, "beads") == "unset unset unset\n"  # and bd's own endpoint variables go, as the daemon drops them
    (town / ".dolt-data" / "config.yaml").write_text('listener:\n  host: "10.0.0.7"\n  port: 0\n', encoding="utf-8")
    assert cli(town, "kennel", "stop").code == 0
    assert cli(town, "plugin", "run", "compactor", env={"GT_DOLT_PORT": "3400"}).code == 0
    assert written(town, "dolt") == "10.0.0.7:3307\n"  # port 0 is no port (Gas Town sets one above 0): the plugin's default
    assert cli(town, "kennel", "stop").code == 0
    assert cli(town, "plugin", "run", "compactor", env={"GT_DOLT_HOST": "dolt.internal", "GT_DOLT_IGNORE_CONFIG": "1", **beads}).code == 0
    assert written(town, "dolt") == "dolt.internal:3399\n"
    assert written(town, "beads") == "elsewhere 4000 4001\n"  # no managed server in play: bd's variables are left alone
