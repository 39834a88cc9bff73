"""gtui on a real Gas Town: the issue 10 contract (/work/notes/issue10-contract.md), as behaviour.

Why these tests exist: Gas Town's 13 shipped plugins call ``gt`` and ``bd`` in fixed shapes
(/work/notes/gastown.md §0-1), read Gas Town's files and expect Gas Town's environment.  gtui runs
them with its own plugin-facing ``gt`` and ``bd`` first on every run's PATH.  Each test here builds a
town the way ``gt install`` does (``tests/gastown_town.py``), writes small plugins of its own whose
``run.sh`` calls ``gt``/``bd`` in exactly those shapes under ``set -euo pipefail``, runs them through
the real ``gtui`` command, and checks what lands on the ledger through gtui's JSON outputs.

``gt`` and ``bd`` exist only on a run's PATH, so a call to check is made from inside a run: the
plugin's ``probe NAME CMD...`` keeps the command's stdout, stderr and exit status in
``$GT_TOWN_ROOT/out/NAME.{out,err,rc}`` for the test to read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from enginekit import Result, gtui_env, wait_for
from gastown_town import (
    INSTALL_DAEMON_CONFIG,
    INSTALL_ESCALATION_JSON,
    PROBE,
    RIGS,
    SETTINGS,
    commit,
    gastown_plugin,
    gastown_town,
    git,
    write_json,
)
from servers import SmtpServer

from gtcore.escalation.escalations import Escalations
from gtcore.storage import open_ledger
from gtcore.town.layout import Town

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MANUAL = 'type = "manual"'
COOLDOWN = 'type = "cooldown"\nduration = "1h"'
BD_ISSUE_KEYS = {"id", "title", "description", "status", "issue_type", "labels", "created_at", "updated_at", "closed_at"}
BD_CREATED_KEYS = {"id", "title", "description", "status", "issue_type", "labels", "created_at", "ephemeral"}
STALE_REQUIRED = {"stale", "forward", "on_main_branch", "safe_to_rebuild", "binary_commit", "repo_commit"}
STALE_OPTIONAL = {"compare_ref", "commits_behind", "skipped", "skip_reason", "error"}
RIG_LIST_KEYS = {"name", "beads_prefix", "status", "witness", "refinery", "polecats", "crew", "repo_path"}

PRELUDE = """OUT="$GT_TOWN_ROOT/out"
mkdir -p "$OUT"
""" + PROBE


# -- running gtui --------------------------------------------------------------------------------------------


def cli(town: Path | None, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        stdin: str | None = None) -> Result:
    """The real ``gtui`` as a process (``--town`` unless ``town`` is None); never a traceback."""
    argv = [sys.executable, "-m", "gtui", *(["--town", str(town)] if town is not None else []), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env={**gtui_env(), **(env or {})}, cwd=cwd,
                          timeout=90)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def ok(town: Path, *args: str, **options: Any) -> Any:
    """``gtui ARGS --json`` that must succeed; its JSON."""
    done = cli(town, *args, "--json", **options)
    assert done.code == 0, (args, done.code, done.out, done.err)
    return done.json()


def once(town: Path) -> dict[str, Any]:
    """One headless patrol (``gtui --once --json``), waiting for its runs; the report."""
    done = cli(town, "--once", "--wait", "--json")
    assert done.code in (0, 1), (done.code, done.out, done.err)
    return done.json()


def entry(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One plugin's line of a ``--once`` report."""
    return next(item for item in report["plugins"] if item["name"] == name)


def run(town: Path, name: str, *flags: str) -> dict[str, Any]:
    """``gtui plugin run NAME --json`` (exit 0 or 1: the run happened); the newest run of NAME from its history."""
    done = cli(town, "plugin", "run", name, *flags, "--json")
    assert done.code in (0, 1), (done.code, done.out, done.err)
    return history(town, name)[0]


def history(town: Path, name: str) -> list[dict[str, Any]]:
    """The runs of ``gtui plugin history NAME --json``, newest first."""
    return ok(town, "plugin", "history", name)["runs"]


def plugins_listed(town: Path) -> dict[str, dict[str, Any]]:
    """``gtui plugin list --json`` by plugin name."""
    return {item["name"]: item for item in ok(town, "plugin", "list")["plugins"]}


def escalations(town: Path, *flags: str) -> list[dict[str, Any]]:
    """``gtui escalate list --json`` (open ones; ``--all`` for every one)."""
    return ok(town, "escalate", "list", *flags)["escalations"]


def escalation(town: Path, subject: str) -> dict[str, Any]:
    """The one escalation with this subject, in full (``gtui escalate show ID --json``)."""
    (found,) = [item for item in escalations(town, "--all") if item["subject"] == subject]
    return ok(town, "escalate", "show", found["id"])


def mail(town: Path) -> list[dict[str, Any]]:
    """``gtui mail list --json``: where ``gt mail send`` and ``mail:`` routes land."""
    return ok(town, "mail", "list")["mail"]


def problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The problems of a ``--once`` report: what the Deacon reads every cycle."""
    return report["problems"]


# -- reading what a run left behind ---------------------------------------------------------------------------


@dataclass
class Probe:
    """What one ``probe NAME CMD`` of a run.sh recorded."""

    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def one_error_line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


def probed(town: Path, name: str) -> Probe:
    """What ``probe NAME`` recorded; failing loudly when the script died before it (set -e after a shim error)."""
    base = town / "out"
    assert (base / f"{name}.rc").exists(), f"the run never got to probe {name}: {sorted(p.name for p in base.glob('*'))}"
    return Probe(int((base / f"{name}.rc").read_text()), (base / f"{name}.out").read_text(), (base / f"{name}.err").read_text())


def written(town: Path, name: str) -> str:
    """A file the run.sh wrote into ``$GT_TOWN_ROOT/out`` by itself (for pipelines a probe cannot wrap)."""
    return (town / "out" / name).read_text(encoding="utf-8")


def plugin(town: Path, name: str, script: str, **options: Any) -> Path:
    """A Gas Town style plugin whose run.sh starts with :data:`PRELUDE` (``$OUT`` and ``probe``)."""
    return gastown_plugin(town, name, PRELUDE + script, **options)


def the_town(tmp_path: Path, settings: str = SETTINGS) -> Path:
    """A fresh Gas Town for one test, named ``gt`` like the default ``~/gt``."""
    return gastown_town(tmp_path / "gt", settings)


def parse_time(text: str) -> datetime:
    """An RFC3339 timestamp (``Z`` or an offset); it must carry its zone."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, text
    return moment


def no_real_gt_or_bd() -> None:
    """The 127 cases need a PATH without Gas Town's real tools: gtui would hand the call to them."""
    found = [tool for tool in ("gt", "bd") if shutil.which(tool)]
    if found:
        pytest.skip(f"a real {' and '.join(found)} is on PATH ({', '.join(str(shutil.which(tool)) for tool in found)})")


# -- the fixture town ---------------------------------------------------------------------------------------


def test_the_fixture_town_is_what_gt_install_and_gt_rig_add_leave_and_gtui_reads_it(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    raw = (town / "settings" / "escalation.json").read_bytes()
    assert raw == INSTALL_ESCALATION_JSON.encode() and not raw.endswith(b"\n") and b"smtp_port" not in raw
    assert json.loads(raw)["contacts"] == {}
    assert "handler" not in json.loads((town / "mayor" / "daemon.json").read_text())["patrols"]
    assert json.loads((town / "mayor" / "town.json").read_text())["type"] == "town"
    assert set(json.loads((town / "mayor" / "rigs.json").read_text())["rigs"]) == set(RIGS)
    for rig in RIGS:
        assert git(town / rig / "mayor" / "rig", "rev-list", "--count", "HEAD") == "1"
        assert (town / rig / "crew" / "max").is_dir() and (town / rig / "polecats").is_dir() and (town / rig / "plugins").is_dir()

    listing = ok(town, "plugin", "list")
    assert listing["town"] == str(town.resolve())
    assert (listing["plugins"], listing["invalid"]) == ([], [])
    assert cli(town, "escalate", "list", "--json").code == 0  # gt install's escalation.json is accepted as it is


# -- town: rigs, canonical clones, discovery -------------------------------------------------------------------


def test_rigs_are_the_keys_of_rigs_json_and_unknown_fields_are_ignored(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    write_json(town / "mayor" / "rigs.json", {"version": 1, "future": {"x": 1}, "rigs": {
        "gastown": {"git_url": "https://example.com/gastown.git", "push_url": "git@example.com:gastown.git", "local_repo": "/src/gt",
                    "added_at": "2026-04-30T09:10:00Z", "beads": {"repo": "", "prefix": "gt"}, "some_new_field": [1, 2]},
        "beads": {"git_url": "https://example.com/beads.git", "added_at": "2026-04-30T09:11:00Z", "beads": {"repo": "", "prefix": "bd"}},
    }})
    gastown_plugin(town, "sheriff", "echo sheriff\n", gate=MANUAL, where="gastown/plugins")
    gastown_plugin(town, "librarian", "echo librarian\n", gate=MANUAL, where="beads/plugins")
    gastown_plugin(town, "squatter", "echo squatter\n", gate=MANUAL, where="stray/plugins")  # a directory, not a registered rig
    gastown_plugin(town, "crewed", "echo crewed\n", gate=MANUAL, where="loner/crew/ann/plugins")  # only a crew clone has plugins
    gastown_plugin(town, "town-sweep", "echo sweep\n", gate=MANUAL)

    assert {name: item["rig"] for name, item in plugins_listed(town).items()} == {
        "sheriff": "gastown", "librarian": "beads", "town-sweep": "town"}

    (town / "mayor" / "rigs.json").unlink()  # no registry: every child directory holding plugins/ or crew/*/plugins/ is a rig
    assert {name: item["rig"] for name, item in plugins_listed(town).items()} == {
        "sheriff": "gastown", "librarian": "beads", "squatter": "stray", "crewed": "loner", "town-sweep": "town"}


def bare_town(root: Path) -> Path:
    """The least a directory needs to be a Gas Town: ``mayor/town.json`` (no git, so it is cheap)."""
    write_json(root / "mayor" / "town.json", {"type": "town", "version": 2, "name": root.name, "created_at": "2026-04-30T09:02:38Z"})
    (root / "settings").mkdir(parents=True, exist_ok=True)
    (root / "settings" / "gtui.toml").write_text(SETTINGS, encoding="utf-8")
    return root


def test_the_town_root_is_found_from_flags_environment_working_directory_then_home(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    first, second, third = (bare_town(tmp_path / name) for name in ("first", "second", "third"))
    inner = bare_town(town / "gastown" / "crew" / "max" / "inner")
    home = tmp_path / "home"
    bare_town(home / "gt")
    (tmp_path / "nowhere").mkdir()
    (inner / "sub").mkdir()

    def found(cwd: Path, *flags: str, **env: str) -> str:
        done = cli(None, *flags, "plugin", "list", "--json", cwd=cwd, env={"HOME": str(home), **env})
        assert done.code == 0, (cwd, env, done.err)
        return done.json()["town"]

    crew = town / "gastown" / "crew" / "max"
    assert found(crew) == str(town.resolve())  # no --town, no GT_*: the nearest mayor/town.json above the cwd
    assert found(town / "gastown" / "mayor" / "rig") == str(town.resolve())
    assert found(inner / "sub") == str(inner.resolve())  # nearest, not outermost
    assert found(crew, GT_TOWN_ROOT=str(first)) == str(first.resolve())
    assert found(crew, GT_ROOT=str(second)) == str(second.resolve())
    assert found(crew, GT_TOWN=str(third)) == str(third.resolve())
    assert found(crew, GT_TOWN_ROOT=str(first), GT_ROOT=str(second), GT_TOWN=str(third)) == str(first.resolve())
    assert found(crew, GT_ROOT=str(second), GT_TOWN=str(third)) == str(second.resolve())
    assert found(crew, "--town", str(third), GT_TOWN_ROOT=str(first), GT_ROOT=str(second)) == str(third.resolve())
    assert found(tmp_path / "nowhere") == str((home / "gt").resolve())  # nothing above the cwd: ~/gt


ENV_DUMP = """python3 - env.json <<'PY'
import json, os, sys
keys = ["GT_TOWN_ROOT", "GT_ROOT", "GT_TOWN", "GIT_CEILING_DIRECTORIES", "GT_ROLE", "GT_DOG_NAME", "GT_DOG", "BD_ACTOR",
        "GT_RIG_ROOT", "GT_RIG", "GT_PLUGIN", "GT_RUN_ID", "GTUI_RUN_TOKEN", "PATH"]
json.dump({key: os.environ.get(key) for key in keys}, open(sys.argv[1], "w"))
PY
"""


def test_a_runs_environment_is_the_one_gas_towns_plugins_expect(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    shutil.rmtree(town / "beads" / "mayor" / "rig")  # no mayor/rig: the rig directory itself is the canonical clone
    dirs = {
        "env-town": gastown_plugin(town, "env-town", ENV_DUMP),
        "env-gastown": gastown_plugin(town, "env-gastown", ENV_DUMP, where="gastown/plugins"),
        "env-beads": gastown_plugin(town, "env-beads", ENV_DUMP, where="beads/plugins"),
    }
    report = once(town)
    root = str(town.resolve())
    rig_roots = {"env-town": "", "env-gastown": f"{root}/gastown/mayor/rig", "env-beads": f"{root}/beads"}
    rigs = {"env-town": "", "env-gastown": "gastown", "env-beads": "beads"}
    for name, directory in dirs.items():
        ran = entry(report, name)["run"]
        assert ran is not None and ran["result"] == "success", (name, ran)
        env = json.loads((directory / "env.json").read_text())
        assert env["GT_TOWN_ROOT"] == env["GT_ROOT"] == env["GIT_CEILING_DIRECTORIES"] == env["GT_TOWN"] == root, env
        assert (env["GT_ROLE"], env["GT_DOG_NAME"], env["BD_ACTOR"]) == ("dog", ran["dog"], f"deacon/dogs/{ran['dog']}"), env
        assert env["GT_DOG"] == ran["dog"] and env["GT_PLUGIN"] == name and env["GT_RUN_ID"] == ran["id"] and env["GTUI_RUN_TOKEN"]
        assert env["GT_RIG_ROOT"] == rig_roots[name], (name, env["GT_RIG_ROOT"])  # set, and empty for a town-level run
        assert env["GT_RIG"] == rigs[name]
        first, second, *_ = env["PATH"].split(os.pathsep)
        for tool in ("gt", "bd"):
            assert os.access(Path(first) / tool, os.X_OK), (first, tool)
        assert second == os.path.dirname(sys.executable)  # then gtui's own bin dir


# -- format -------------------------------------------------------------------------------------------------


def test_a_plugin_without_a_gate_table_is_manual_without_a_warning(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "hand-crank", "echo cranked\n", gate=None)

    listing = ok(town, "plugin", "list")
    (item,) = listing["plugins"]
    assert item["gate"]["type"] == "manual" and listing["invalid"] == []
    assert not any("hand-crank" in warning for warning in listing["warnings"])
    assert ok(town, "plugin", "show", "hand-crank")["warnings"] == []

    for _ in range(2):
        item = entry(once(town), "hand-crank")
        assert (item["dispatched"], item["run"]) == (False, None)
    assert history(town, "hand-crank") == []
    done = cli(town, "plugin", "run", "hand-crank", "--json")
    assert done.code == 0, done.err
    assert done.json()["result"] == "success"


def test_gate_disabled_true_never_runs_by_itself_and_plugin_run_needs_force(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "dolt-archive", "echo archived\n", gate=COOLDOWN + "\ndisabled = true")

    item = entry(once(town), "dolt-archive")
    assert (item["dispatched"], item["run"]) == (False, None)
    assert "disabled in plugin.md (gate.disabled = true)" in item["gate"]["reason"]
    assert not [w for w in ok(town, "plugin", "show", "dolt-archive")["warnings"] if "disabled" in w]

    refused = cli(town, "plugin", "run", "dolt-archive")
    assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1 and "--force" in refused.err, refused.err
    assert history(town, "dolt-archive") == []
    forced = cli(town, "plugin", "run", "dolt-archive", "--force", "--json")
    assert forced.code == 0 and forced.json()["result"] == "success", forced.err
    assert entry(once(town), "dolt-archive")["dispatched"] is False


def test_severity_in_any_case_is_lowercased_and_what_cannot_run_stays_invalid(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "loud", "echo\n", execution=(
        'timeout = "5m"\nnotify_on_failure = true\nseverity = "MEDIUM"\n\n'
        "# Opt-in per rig via plugin frontmatter:\n# [plugin.loud]\n# enabled = true  # a comment, as submodule-commit has"))
    gastown_plugin(town, "louder", "echo\n", execution='timeout = "5m"\nnotify_on_failure = true\nseverity = "High"')
    bad = [
        gastown_plugin(town, "no-duration", "echo\n", gate='type = "cooldown"'),
        gastown_plugin(town, "webhook-gate", "echo\n", gate='type = "webhook"'),
        gastown_plugin(town, "wrapped", "echo\n", execution='type = "exec-wrapper"\nwrapper = ["env", "FOO=1"]'),
    ]
    listing = ok(town, "plugin", "list")
    severities = {item["name"]: item["execution"]["severity"] for item in listing["plugins"]}
    assert severities == {"loud": "medium", "louder": "high"}
    assert sorted(item["path"] for item in listing["invalid"]) == sorted(str((d / "plugin.md").resolve()) for d in bad)


# -- results: what a plugin reports -------------------------------------------------------------------------------

# name -> (run.sh, final result, summary, reported_result, detail that must be kept somewhere on the run)
RECEIPTS: dict[str, tuple[str, str, str | None, str | None, str | None]] = {
    "dolt-compact": ("""SUMMARY="dolt-compact: compacted=0 skipped=1 errors=0 (threshold=2000)"
bd create "$SUMMARY" -t chore --ephemeral \\
  -l type:plugin-run,plugin:dolt-compact,result:success \\
  -d "$SUMMARY" --silent 2>/dev/null || true
""", "success", "dolt-compact: compacted=0 skipped=1 errors=0 (threshold=2000)", "success", None),
    "dolt-backup": ("""SUMMARY="backed up 3 databases"
bd create --title "dolt-backup: $SUMMARY" -t chore --ephemeral \\
  -l type:plugin-run,plugin:dolt-backup,result:success \\
  -d "$SUMMARY" --silent 2>/dev/null || true
""", "success", "dolt-backup: backed up 3 databases", "success", None),
    "rebuild-gt": ("""FORWARD=false
ON_MAIN=true
bd create --wisp-type patrol \\
  --labels type:plugin-run,plugin:rebuild-gt,rig:gastown,result:skipped \\
  --description "Skipped: not safe to rebuild (forward=$FORWARD, main=$ON_MAIN)" \\
  "Plugin: rebuild-gt [skipped]"
""", "skipped", "Plugin: rebuild-gt [skipped]", "skipped", "Skipped: not safe to rebuild (forward=false, main=true)"),
    "log-rotate": ("""SIZE_MB=3
MAX_MB=100
bd create "log-rotate: log size ${SIZE_MB}MB, below ${MAX_MB}MB threshold" \\
  -t chore --ephemeral -l type:plugin-run,plugin:log-rotate,result:success \\
  --silent 2>/dev/null || true
""", "success", "log-rotate: log size 3MB, below 100MB threshold", "success", None),
    "gitignore-fix": ("""RESULT=warning
REPO_PATH="$GT_TOWN_ROOT/gastown/mayor/rig"
bd create "gitignore-fix: gastown has 2 tracked+ignored file(s)" \\
  -t chore \\
  -l "plugin:gitignore-fix,category:git-hygiene" \\
  -d "$(printf "Repo: %s\\nSkipped: %s\\nFiles:\\n%s" "$REPO_PATH" "none" "a.log")" \\
  --silent 2>/dev/null || true
SUMMARY="gitignore-fix: 1 repo checked, 1 with tracked+ignored files"
bd create "$SUMMARY" -t chore --ephemeral \\
  -l "type:plugin-run,plugin:gitignore-fix,result:$RESULT" \\
  -d "$SUMMARY" --silent 2>/dev/null || true
""", "warning", "gitignore-fix: 1 repo checked, 1 with tracked+ignored files", "warning", None),
    "rebuild-check": ("""bd create "Plugin: rebuild-check [skipped]" -t chore --ephemeral \\
  -l type:plugin-run,plugin:rebuild-check,rig:gastown,result:skipped \\
  -d "Skipped: not safe to rebuild" --silent 2>/dev/null || true
""", "skipped", "Plugin: rebuild-check [skipped]", "skipped", "Skipped: not safe to rebuild"),
    "compactor-errors": ("""SUMMARY="compacted=1 skipped=0 errors=2 (threshold=2000)"
bd create "compactor-errors: ERRORS — $SUMMARY" -t chore --ephemeral \\
  -l type:plugin-run,plugin:compactor-errors,result:warning \\
  -d "Compaction completed with 2 errors. $SUMMARY" --silent 2>/dev/null || true
""", "warning", "compactor-errors: ERRORS — compacted=1 skipped=0 errors=2 (threshold=2000)", "warning",
        "Compaction completed with 2 errors."),
    "compactor-check": ("""SUMMARY="compactor-check: 2 databases above threshold (check only)"
bd create "$SUMMARY" -t chore --ephemeral \\
  -l type:plugin-run,plugin:compactor-check,result:check-only \\
  -d "$SUMMARY" --silent 2>/dev/null || true
""", "check-only", "compactor-check: 2 databases above threshold (check only)", "check-only", None),
    "tool-updater": ("""bd create "tool-updater: all tools current (beads=$(bd version 2>/dev/null | awk '{print $3}'), \\
dolt=$(dolt version 2>/dev/null | awk '{print $3}'))" \\
  -t chore --ephemeral -l type:plugin-run,plugin:tool-updater,result:success \\
  --silent 2>/dev/null || true
""", "success", "tool-updater: all tools current (beads=0.59.0, dolt=)", "success", None),
    "double-report": ("""bd create "double-report: first pass" -t chore --ephemeral \\
  -l type:plugin-run,plugin:double-report,result:success --silent
bd create "double-report: second pass found drift" -t chore --ephemeral \\
  -l type:plugin-run,plugin:double-report,result:warning -d "drift in 2 files" --silent
""", "warning", "double-report: second pass found drift", "warning", "drift in 2 files"),
    "odd-result": ("""bd create "odd-result: half done" -t chore --ephemeral \\
  -l type:plugin-run,plugin:odd-result,result:partial --silent 2>/dev/null || true
""", "success", "odd-result: half done", "partial", None),
    "says-nothing": ("echo 'nothing to report'\n", "success", None, None, None),
}


def test_every_receipt_shape_of_the_shipped_plugins_becomes_the_runs_result_and_summary(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    for name, (script, *_) in RECEIPTS.items():
        plugin(town, name, script, gate=COOLDOWN)

    report = once(town)
    listed = plugins_listed(town)
    for name, (_, result, summary, reported, detail) in RECEIPTS.items():
        ran = entry(report, name)["run"]
        assert ran is not None, name
        assert (ran["result"], ran["reported_result"]) == (result, reported), (name, ran)
        if summary is not None:
            assert ran["summary"] == summary, (name, ran)
        (latest,) = history(town, name)
        assert latest["id"] == ran["id"] and (latest["result"], latest["reported_result"]) == (result, reported), (name, latest)
        if summary is not None:
            assert latest["summary"] == summary, (name, latest)
        if detail is not None:
            assert detail in json.dumps(latest, ensure_ascii=False), (name, latest)  # the description is kept as the detail
        assert listed[name]["failure_count"] == 0, (name, listed[name])  # skipped, warning, check-only: no failure
    assert entry(report, "says-nothing")["run"]["reported_result"] is None


PRECEDENCE: dict[str, tuple[str, str, str]] = {  # name -> (run.sh, execution, final result)
    "exits-one": ("""bd create "exits-one: all good" -t chore --ephemeral -l type:plugin-run,plugin:exits-one,result:success --silent
exit 1
""", 'timeout = "20s"', "failure"),
    "runs-over": ("""bd create "runs-over: all good" -t chore --ephemeral -l type:plugin-run,plugin:runs-over,result:success --silent
sleep 30
""", 'timeout = "1s"', "timeout"),
    "skips": ("""bd create "Plugin: skips [skipped]" -t chore --ephemeral -l type:plugin-run,plugin:skips,result:skipped \\
  -d "Skipped: repo has uncommitted changes" --silent
""", 'timeout = "20s"', "skipped"),
    "reports-failure": ("""bd create "reports-failure: FAILED" -t chore --ephemeral \\
  -l type:plugin-run,plugin:reports-failure,result:failure \\
  -d "Build failed: make exited 2" --silent 2>/dev/null || true
""", 'timeout = "20s"', "failure"),
}


def test_a_non_zero_exit_or_a_timeout_wins_over_the_report_and_only_failures_count(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    for name, (script, execution, _) in PRECEDENCE.items():
        plugin(town, name, script, gate=COOLDOWN, execution=execution)

    report = cli(town, "--once", "--wait", "--json")
    assert report.code == 1, report.err  # something failed
    for name, (_, _, result) in PRECEDENCE.items():
        ran = entry(report.json(), name)["run"]
        assert ran["result"] == result, (name, ran)
    assert entry(report.json(), "exits-one")["run"]["reported_result"] == "success"
    assert entry(report.json(), "runs-over")["run"]["reported_result"] == "success"
    assert history(town, "exits-one")[0]["summary"] == "exits-one: all good"
    counts = {name: item["failure_count"] for name, item in plugins_listed(town).items()}
    assert counts == {"exits-one": 1, "runs-over": 1, "skips": 0, "reports-failure": 1}


def test_gtui_report_is_a_plain_plugins_way_to_report_and_is_refused_outside_a_run(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "reporter", 'gtui report skipped "nothing to compact today" --detail "no database above 2000 commits"\n',
                   gate=MANUAL)
    ran = run(town, "reporter")
    assert (ran["result"], ran["reported_result"], ran["summary"]) == ("skipped", "skipped", "nothing to compact today")
    assert "no database above 2000 commits" in json.dumps(ran)
    assert plugins_listed(town)["reporter"]["failure_count"] == 0

    outside = cli(town, "report", "success", "not in a run")
    assert outside.code == 2 and outside.err.strip(), outside
    assert len(history(town, "reporter")) == 1


def test_a_report_carrying_another_token_is_refused(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "forger", """bd create "forger: all good" -t chore --ephemeral -l type:plugin-run,plugin:forger,result:success --silent
probe forged env GTUI_RUN_TOKEN=not-the-token bd create "forger: forged failure" -t chore --ephemeral \\
  -l type:plugin-run,plugin:forger,result:failure --silent
probe forged-gtui env GTUI_RUN_TOKEN=not-the-token gtui report failure "forged through gtui report"
""", gate=MANUAL)
    ran = run(town, "forger")
    assert probed(town, "forged").rc == 1
    assert probed(town, "forged-gtui").rc != 0
    assert (ran["result"], ran["reported_result"], ran["summary"]) == ("success", "success", "forger: all good")


# -- plugin-facing bd ---------------------------------------------------------------------------------------


def test_bd_create_prints_what_bd_prints_and_anything_but_a_report_is_a_note(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "probe", """probe silent-report bd create "probe: report" -t chore --ephemeral \\
  -l type:plugin-run,plugin:probe,result:success --silent
probe json-report bd create "probe: report again" -t chore --ephemeral -l type:plugin-run,plugin:probe,result:success --json
probe plain-note bd create "probe: plain note" -t chore -l "plugin:probe,category:git-hygiene" -d "line one
line two"
probe silent-note bd create "probe: silent note" -t chore -l plugin:probe --silent
probe json-note bd create "probe: json note" -t chore --ephemeral -l plugin:probe,category:x -d "json described" --json
probe outside-run env -u GT_RUN_ID -u GTUI_RUN_TOKEN bd create "probe: not a report" -t chore --ephemeral \\
  -l type:plugin-run,plugin:probe,result:failure --silent
probe global-first bd --allow-stale create "probe: global first" -l plugin:probe --silent
probe globals-after bd create "probe: globals after" -l plugin:probe --actor deacon/dogs/alpha -q --silent
probe leading-json bd --json create "probe: leading json" -l plugin:probe
probe aliases bd create "probe: aliases" --label plugin:probe --label category:alias --body "via --body" --priority 2 \\
  --assignee mayor --silent
probe message bd create "probe: message" --labels plugin:probe -m "via -m" --silent
probe show-aliases bd show "$(cat "$OUT/aliases.out")" --json
probe listed bd list --json --all -l plugin:probe
""", gate=MANUAL)
    ran = run(town, "probe")
    assert probed(town, "silent-report").out == f"{ran['id']}\n"  # a report prints the run's id
    report = probed(town, "json-report").json()
    assert report["id"] == ran["id"] and set(report) >= BD_CREATED_KEYS, report
    # bd says "✓ Created issue: <id>", and real bd may add the title after the id
    assert re.fullmatch(r"✓ Created issue: note-\d+( .*)?\n", probed(town, "plain-note").out), probed(town, "plain-note").out
    assert re.fullmatch(r"note-\d+\n", probed(town, "silent-note").out), probed(town, "silent-note").out

    note = probed(town, "json-note").json()
    assert set(note) >= BD_CREATED_KEYS, note
    assert re.fullmatch(r"note-\d+", note["id"]) and note["title"] == "probe: json note" and note["description"] == "json described"
    assert (note["status"], note["issue_type"], note["ephemeral"]) == ("open", "chore", True)
    assert {"plugin:probe", "category:x"} <= set(note["labels"])
    assert note["created_at"].endswith("Z") and parse_time(note["created_at"]).utcoffset().total_seconds() == 0

    assert re.fullmatch(r"note-\d+\n", probed(town, "outside-run").out)  # no run identity: even type:plugin-run is a note
    for name in ("global-first", "globals-after", "aliases", "message"):
        assert probed(town, name).rc == 0 and re.fullmatch(r"note-\d+\n", probed(town, name).out), (name, probed(town, name))
    assert re.fullmatch(r"note-\d+", probed(town, "leading-json").json()["id"])
    (aliased,) = probed(town, "show-aliases").json()
    assert {"plugin:probe", "category:alias"} <= set(aliased["labels"]) and aliased["description"] == "via --body"

    beads = {item["title"]: item for item in probed(town, "listed").json()}
    plain = beads["probe: plain note"]
    assert (plain["description"], plain["issue_type"], plain["status"]) == ("line one\nline two", "chore", "open")
    assert beads["probe: message"]["description"] == "via -m"
    assert {"probe: silent note", "probe: not a report", "probe: global first", "probe: globals after", "probe: leading json",
            "probe: aliases"} <= set(beads)
    # the last report wins; the note with result:failure made outside the run's identity changed nothing
    assert (ran["result"], ran["reported_result"], ran["summary"]) == ("success", "success", "probe: report again")


LISTER = """bd create "quality-review: nux dipped" -t chore -l "plugin:quality-review,category:quality" -d "score 0.41" --silent >/dev/null
probe rr bd list --json --all -l type:plugin-run,plugin:quality-review-result --created-after=-24h
probe qr bd list --json --all -l plugin:quality-review
probe qr-and bd list --json --all -l type:plugin-run -l plugin:quality-review
probe qr-open bd list --json -l plugin:quality-review
probe qr-closed bd list --json --status closed -l plugin:quality-review
probe future bd list --json --all -l type:plugin-run --created-after=1h
probe since-date bd list --json --all -l type:plugin-run --created-after 2000-01-01
probe since-rfc bd list --json --all -l type:plugin-run --created-after "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)"
probe since-week bd list --json --all -l type:plugin-run --created-after=-7d
probe after-now bd list --json --all -l type:plugin-run --created-after "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
probe newest bd list --json --all -l type:plugin-run -n 1
probe newest-closed bd list --json --status closed --limit 1
probe unlimited bd --allow-stale list --json --all --flat -l type:plugin-run --limit 0
RECENT_RUNS=$(bd list --label plugin:quality-review --status closed --json 2>/dev/null \\
  | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["created_at"])' 2>/dev/null || echo "unknown")
echo "$RECENT_RUNS" > "$OUT/recent-runs"
"""


def test_bd_list_reads_the_ledger_as_bd_does_labels_and_exact_newest_first(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "quality-review", "echo reviewed\n", gate=MANUAL)
    gastown_plugin(town, "quality-review-result", "echo scored\n", gate=MANUAL)
    plugin(town, "lister", LISTER, gate=MANUAL)
    review, result = run(town, "quality-review"), run(town, "quality-review-result")
    lister = run(town, "lister")
    assert lister["result"] == "success", lister

    def ids(name: str) -> list[str]:
        found = probed(town, name)
        assert found.rc == 0, (name, found)
        return [item["id"] for item in found.json()]

    note = probed(town, "qr-open").json()
    assert [item["title"] for item in note] == ["quality-review: nux dipped"]  # open note; the closed run is left out
    assert ids("rr") == [result["id"]]  # exact label equality: plugin:quality-review-result only
    assert ids("qr") == [note[0]["id"], review["id"]]  # ...and plugin:quality-review never matches -result, newest first
    assert ids("qr-and") == [review["id"]]  # several -l: ALL must match
    assert ids("qr-closed") == [review["id"]]
    assert ids("future") == [] and ids("after-now") == []  # "1h" has no sign: the future, as in bd
    everything = [lister["id"], result["id"], review["id"]]
    for name in ("since-date", "since-rfc", "since-week", "unlimited"):
        assert ids(name) == everything, name
    assert ids("newest") == [lister["id"]] and ids("newest-closed") == [result["id"]]

    beads = {item["id"]: item for item in probed(town, "unlimited").json()}
    for item in beads.values():
        assert set(item) >= BD_ISSUE_KEYS and item["status"] in ("open", "in_progress", "closed"), item
    assert beads[lister["id"]]["status"] == "in_progress" and beads[lister["id"]]["closed_at"] is None
    finished = beads[review["id"]]
    assert finished["status"] == "closed" and finished["closed_at"]
    assert {"type:plugin-run", "plugin:quality-review", "result:success"} <= set(finished["labels"])
    assert any(label.startswith("rig:") for label in finished["labels"]), finished["labels"]
    recent = written(town, "recent-runs").strip()
    assert abs((parse_time(recent) - parse_time(review["queued_at"])).total_seconds()) < 1, (recent, review["queued_at"])


def test_bd_list_stops_at_50_unless_told_otherwise(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    # 51 open escalations (bd list shows escalations too), raised in-process as the CLI does: 51 bd processes would cost seconds
    service = Escalations(Town(town.resolve()), open_ledger(town / ".gtui" / "ledger.db"))
    for number in range(1, 52):
        service.raise_(f"hoarder: finding {number}", "low", source="test", now=time.time())
    plugin(town, "hoarder", """bd create "hoarder: the one note" -t chore -l plugin:hoarder --silent >/dev/null
probe default bd list --json
probe unlimited bd list --json --limit 0
probe all bd list --json --all
probe short bd list --json -n 3
""", gate=MANUAL)
    assert run(town, "hoarder")["result"] == "success"
    assert len(probed(town, "default").json()) == 50
    assert len(probed(town, "unlimited").json()) == 53  # 51 escalations, the note and the run itself, in progress
    assert len(probed(town, "all").json()) == 53
    newest = probed(town, "short").json()
    assert len(newest) == 3 and newest[0]["title"] == "hoarder: the one note" and newest[2]["title"] == "hoarder: finding 51", newest


def test_bd_show_and_bd_close_as_stuck_agent_dog_reads_them(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "inspector", """NOTE=$(bd create "inspector: hooked work" -t task -l plugin:inspector --silent)
probe show-note bd show "$NOTE" --json
AGENT_STATE=$(bd show "$NOTE" --json 2>/dev/null \\
  | python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0].get('status',''))" 2>/dev/null || echo "")
echo "$AGENT_STATE" > "$OUT/agent-state"
probe show-run bd show "$GT_RUN_ID" --json
probe show-missing bd show gt-nosuch --json
probe show-beyond bd show run-99999999999999999999 --json
probe close-note bd close "$NOTE" --reason "handled"
probe show-closed bd show "$NOTE" --json
probe close-run bd close "$GT_RUN_ID" --reason "plugin run recorded"
bd create "inspector: done" -t chore --ephemeral -l type:plugin-run,plugin:inspector,result:success --silent
""", gate=MANUAL)
    ran = run(town, "inspector")
    (shown,) = probed(town, "show-note").json()
    assert re.fullmatch(r"note-\d+", shown["id"]) and shown["status"] == "open" and set(shown) >= BD_ISSUE_KEYS
    assert written(town, "agent-state").strip() == "open"
    (itself,) = probed(town, "show-run").json()
    assert (itself["id"], itself["status"]) == (ran["id"], "in_progress")
    missing = probed(town, "show-missing")
    assert missing.rc == 1 and "no issues found matching gt-nosuch" in missing.err, missing
    beyond = probed(town, "show-beyond")  # past any id a ledger holds: not found, no database error
    assert beyond.rc == 1 and beyond.one_error_line() == "no issues found matching run-99999999999999999999", beyond
    assert probed(town, "close-note").rc == 0
    assert probed(town, "show-closed").json()[0]["status"] == "closed"
    closing_run = probed(town, "close-run")
    assert closing_run.rc == 0 and "gtui" in closing_run.err, closing_run
    assert (ran["result"], ran["summary"]) == ("success", "inspector: done")


def test_unknown_subcommands_exit_127_with_one_line_naming_them_in_the_runs_log(tmp_path: Path) -> None:
    no_real_gt_or_bd()
    town = the_town(tmp_path)
    plugin(town, "oddities", """probe bd-version bd version
probe gt-version bash -c 'gt version | head -1'
probe bd-export bd export --db hq --format jsonl
probe gt-rig-show gt rig show gastown --json
PLUGIN_ENABLED=$(gt rig show "gastown" --json 2>/dev/null \\
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["plugins"]["oddities"]["enabled"])' 2>/dev/null || echo "false")
echo "$PLUGIN_ENABLED" > "$OUT/enabled"
bd export --db hq --format jsonl || true
gt rig show gastown --json || true
""", gate=MANUAL)
    ran = run(town, "oddities")
    assert ran["result"] == "warning" and "got no answer from gtui" in ran["reason"], ran  # the plugin exited 0, yet not green
    assert re.fullmatch(r"bd version 0\.59\.0 \(gtui [^)\s]+\)\n", probed(town, "bd-version").out), probed(town, "bd-version").out
    assert re.fullmatch(r"gt version 1\.2\.1 \(gtui [^)\s]+\)\n", probed(town, "gt-version").out), probed(town, "gt-version").out
    export, rig_show = probed(town, "bd-export"), probed(town, "gt-rig-show")
    assert export.rc == 127 and "bd export" in export.one_error_line(), export
    assert rig_show.rc == 127 and "rig show" in rig_show.one_error_line(), rig_show
    assert written(town, "enabled").strip() == "false"  # submodule-commit's fail-safe reading
    log = Path(ran["log"]).read_text()
    assert export.one_error_line() in log and rig_show.one_error_line() in log


def test_what_gtui_does_not_provide_goes_to_the_next_real_gt_and_bd_on_path(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    real = tmp_path / "real-bin"
    real.mkdir()
    for tool, status in (("bd", 7), ("gt", 5)):
        (real / tool).write_text(f'#!/bin/sh\necho "real {tool} got: $*"\nexit {status}\n', encoding="utf-8")
        (real / tool).chmod(0o755)
    plugin(town, "handoff", """probe bd-export bd export --db hq --format jsonl
probe gt-rig-show gt rig show gastown --json
probe bd-version bd version
""", gate=MANUAL)
    done = cli(town, "plugin", "run", "handoff", "--json", env={"PATH": f"{real}{os.pathsep}{os.environ['PATH']}"})
    assert done.code == 0, done.err
    export, rig_show = probed(town, "bd-export"), probed(town, "gt-rig-show")
    assert (export.rc, export.out) == (7, "real bd got: export --db hq --format jsonl\n"), export
    assert (rig_show.rc, rig_show.out) == (5, "real gt got: rig show gastown --json\n"), rig_show
    assert probed(town, "bd-version").out.startswith("bd version 0.59.0 (gtui ")  # what gtui provides stays gtui's


# -- plugin-facing gt ---------------------------------------------------------------------------------------

ALARMIST = """DB=hq
gt escalate "alarmist: integrity failure in $DB" -s HIGH \\
  --reason "Row count mismatch after flatten compaction on $DB. MANUAL INSPECTION REQUIRED." 2>/dev/null || true
gt escalate "Dolt compaction recommended" \\
  -s MEDIUM \\
  --reason "Commit growth analysis:
hq: 2400 commits

Recommendation: Run compaction." 2>/dev/null || true
gt escalate "alarmist: JSONL export failed for 2 databases (hq,gt)" \\
    -s critical \\
    --reason "JSONL is our last-resort recovery layer." 2>/dev/null || true
gt escalate "Plugin FAILED: alarmist" \\
  --severity low \\
  --reason "simulated error"
gt escalate "Deacon stuck detected by alarmist" -s HIGH 2>/dev/null || true
gt escalate Mass agent death: 3 agents down -s CRITICAL
probe json gt escalate "alarmist: json form" -s medium --json
echo "piped reason" | gt escalate "alarmist: from stdin" --stdin -s low
probe help gt escalate
probe subject-body gt escalate --severity=medium --subject="Plugin FAILED: alarmist" --body="err" --source="plugin:alarmist"
probe dry gt escalate "alarmist: dry run only" -s high -n
probe dry-long gt escalate "alarmist: dry run, long flag" -s high --dry-run
probe bad-severity gt escalate "alarmist: bad severity" -s urgent
probe explicit gt escalate "alarmist: explicit source" --source deacon --related gt-abc12 -r "given" -s low
"""

ALARMS = {  # subject -> (severity, body)
    "alarmist: integrity failure in hq": ("high", "Row count mismatch after flatten compaction on hq. MANUAL INSPECTION REQUIRED."),
    "Dolt compaction recommended": ("medium", "Commit growth analysis:\nhq: 2400 commits\n\nRecommendation: Run compaction."),
    "alarmist: JSONL export failed for 2 databases (hq,gt)": ("critical", "JSONL is our last-resort recovery layer."),
    "Plugin FAILED: alarmist": ("low", "simulated error"),
    "Deacon stuck detected by alarmist": ("high", ""),
    "Mass agent death: 3 agents down": ("critical", ""),
    "alarmist: json form": ("medium", ""),
    "alarmist: from stdin": ("low", "piped reason"),
    "alarmist: explicit source": ("low", "given"),
}


def test_gt_escalate_in_every_shape_the_plugins_use_raises_plugin_escalations_tied_to_the_run(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "alarmist", ALARMIST, gate=MANUAL)
    ran = run(town, "alarmist")
    assert ran["result"] == "warning", (ran, Path(ran["log"]).read_text())  # two calls were refused: never green (below)

    found = {item["subject"]: item for item in escalations(town, "--all")}
    assert set(found) == set(ALARMS), sorted(found)  # no dry run, no refused call left anything
    for subject, (severity, body) in ALARMS.items():
        item = found[subject]
        assert (item["severity"], item["body"].rstrip("\n"), item["status"]) == (severity, body, "open"), item
        expected_source = "deacon" if subject == "alarmist: explicit source" else "plugin:alarmist"
        assert item["source"] == expected_source, item
    tied = ok(town, "escalate", "show", found["alarmist: integrity failure in hq"]["id"])
    assert tied["source"] == "plugin:alarmist" and ran["id"] in json.dumps(tied), tied  # related to the run that raised it
    assert "gt-abc12" in json.dumps(ok(town, "escalate", "show", found["alarmist: explicit source"]["id"]))
    assert probed(town, "json").json()["id"] == found["alarmist: json form"]["id"]

    helped = probed(town, "help")
    assert helped.rc == 0 and helped.out.strip(), helped  # no words: help, nothing raised
    assert probed(town, "subject-body").one_error_line() == "Error: unknown flag: --subject"  # rebuild-gt's plugin.md bug
    assert probed(town, "dry").rc == 0 and probed(town, "dry-long").rc == 0
    assert probed(town, "bad-severity").one_error_line() == "Error: invalid severity 'urgent': must be critical, high, medium, or low"
    refused = {problem["reason"].split("refused it: ", 1)[1]: problem for problem in ran["problems"]}
    assert set(refused) == {"unknown flag: --subject (exit 1)", "invalid severity 'urgent': must be critical, high, medium, or low"
                            " (exit 1)"}, ran["problems"]  # each refused call is said, though exit 1 is Gas Town's answer too
    assert all(problem["field"] == "gt escalate" and problem["level"] == "error" for problem in refused.values())


def test_a_plugin_that_escalates_its_own_failure_leaves_one_escalation_counted_per_failing_run(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    notify = 'timeout = "20s"\nnotify_on_failure = true\nseverity = "high"'
    plugin(town, "dolt-guard", """ERROR="backup target $GT_TOWN_ROOT/.dolt-backup is missing"
bd create "dolt-guard: FAILED - $ERROR" -t chore --ephemeral \\
  -l type:plugin-run,plugin:dolt-guard,result:failure -d "$ERROR" --silent 2>/dev/null || true
gt escalate "Plugin FAILED: dolt-guard" -s high --reason "$ERROR" 2>/dev/null || true
exit 1
""", gate=MANUAL, execution=notify)
    plugin(town, "quiet-failer", "echo 'oops'\nexit 1\n", gate=MANUAL, execution=notify)

    first = run(town, "dolt-guard")
    assert first["result"] == "failure"
    (only,) = [item for item in escalations(town) if item["source"] == "plugin:dolt-guard"]
    assert (only["subject"], only["count"], only["severity"]) == ("Plugin FAILED: dolt-guard", 1, "high")
    shown = ok(town, "escalate", "show", only["id"])
    assert any(first["id"] in json.dumps(item) for item in shown["history"]), shown["history"]  # the failure is noted on it

    second = run(town, "dolt-guard")
    assert second["result"] == "failure" and second["id"] != first["id"]
    (still,) = [item for item in escalations(town, "--all") if item["source"] == "plugin:dolt-guard"]
    assert (still["id"], still["count"], still["status"]) == (only["id"], 2, "open")
    assert second["id"] in json.dumps(ok(town, "escalate", "show", still["id"]))
    assert not [item for item in escalations(town, "--all") if "dolt-guard is failing" in item["subject"]]

    assert run(town, "quiet-failer")["result"] == "failure"  # a failure the plugin did not escalate: gtui does
    (own,) = [item for item in escalations(town) if item["source"] == "plugin:quiet-failer"]
    assert own["subject"] == "plugin quiet-failer is failing"


STALE_PROBE = """probe json gt stale --json
probe quiet gt stale -q
probe quiet-long gt stale --quiet
probe plain gt stale
STALE_JSON=$(gt stale --json 2>/dev/null) || {
  echo "gt stale --json failed" > "$OUT/rebuild"
  exit 0
}
IS_STALE=$(echo "$STALE_JSON" | python3 -c "import json,sys; print(json.load(sys.stdin).get('stale', False))" 2>/dev/null || echo "False")
SAFE=$(echo "$STALE_JSON" | python3 -c "import json,sys; print(json.load(sys.stdin).get('safe_to_rebuild', False))" 2>/dev/null \\
  || echo "False")
echo "$IS_STALE $SAFE" > "$OUT/rebuild"
"""


def stale_settings(repo: str) -> str:
    """gtui.toml with the binary named ``gt`` first, then one that would error: ``gt stale`` must check only ``gt``."""
    return (SETTINGS + '[[stale.binaries]]\nname = "gt"\nbinary = "bin/gt"\nrepo = "' + repo + '"\n'
            '[[stale.binaries]]\nname = "tool"\nbinary = "bin/tool"\nrepo = "nowhere/tool"\n')


def test_gt_stale_prints_one_flat_object_and_quiet_exit_codes_say_stale_fresh_error(tmp_path: Path) -> None:
    town = the_town(tmp_path, stale_settings("gastown/mayor/rig"))
    clone = town / "gastown" / "mayor" / "rig"
    built = git(clone, "rev-parse", "HEAD")
    (town / "bin").mkdir()
    (town / "bin" / "gt").write_text('#!/bin/bash\n[ "$1" = --version ] && echo "gt version 1.0.1 (dev: main@' + built[:12] + ')"\n',
                                     encoding="utf-8")
    (town / "bin" / "gt").chmod(0o755)
    plugin(town, "stale-probe", STALE_PROBE, gate=MANUAL)

    def check(stale: bool, quiet: int, plain: int, rebuild: str) -> dict[str, Any]:
        assert run(town, "stale-probe")["result"] == "success"
        answer = probed(town, "json")
        assert answer.rc == 0, answer
        flat = answer.json()
        assert STALE_REQUIRED <= set(flat) <= STALE_REQUIRED | STALE_OPTIONAL, flat
        assert flat["stale"] is stale, flat
        for name in ("quiet", "quiet-long"):
            assert (probed(town, name).rc, probed(town, name).out) == (quiet, ""), name
        said = probed(town, "plain")
        assert said.rc == plain and (said.out + said.err).strip(), said
        assert written(town, "rebuild").strip() == rebuild
        return flat

    fresh = check(False, 1, 0, "False False")
    assert (fresh["binary_commit"], fresh["repo_commit"], fresh["safe_to_rebuild"]) == (built, built, False)
    assert not fresh.get("error")

    head = commit(clone, "gastown: a fix")
    behind = check(True, 0, 0, "True True")
    assert (behind["forward"], behind["on_main_branch"], behind["safe_to_rebuild"]) == (True, True, True)
    assert (behind["binary_commit"], behind["repo_commit"], behind["commits_behind"]) == (built, head, 1)

    (town / "settings" / "gtui.toml").write_text(stale_settings("gastown/gone"), encoding="utf-8")
    broken = check(False, 2, 1, "False False")
    assert isinstance(broken["error"], str) and broken["error"]


RIG_WALKER = """probe rigs gt rig list --json
probe plain gt rig list
RIG_JSON=$(gt rig list --json 2>/dev/null) || {
  echo "SKIP: could not get rig list" > "$OUT/paths"
  exit 0
}
RIG_PATHS=$(echo "$RIG_JSON" | python3 -c "
import json, sys
rigs = json.load(sys.stdin)
for r in rigs:
    p = r.get('repo_path') or ''
    if p: print(p)
" 2>/dev/null || true)
echo "$RIG_PATHS" > "$OUT/paths"
: > "$OUT/heads"
for REPO_PATH in $RIG_PATHS; do
  git -C "$REPO_PATH" rev-parse HEAD >> "$OUT/heads"
done
"""


def test_gt_rig_list_gives_every_rig_with_its_canonical_clone_as_repo_path(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    for directory in ("gastown/polecats/nux", "gastown/polecats/.scratch", "gastown/crew/joe", "beads/crew/.hidden"):
        (town / directory).mkdir(parents=True)
    plugin(town, "rig-walker", RIG_WALKER, gate=MANUAL)
    assert run(town, "rig-walker")["result"] == "success"

    rigs = probed(town, "rigs")
    assert rigs.rc == 0, rigs
    by_name = {item["name"]: item for item in rigs.json()}
    assert set(by_name) == set(RIGS)
    root = town.resolve()
    for name, prefix in RIGS.items():
        item = by_name[name]
        assert set(item) == RIG_LIST_KEYS, item
        assert (item["beads_prefix"], item["repo_path"]) == (prefix, str(root / name / "mayor" / "rig"))
        assert all(isinstance(item[key], str) for key in ("status", "witness", "refinery"))
    assert (by_name["gastown"]["polecats"], by_name["gastown"]["crew"]) == (1, 2)  # dot-directories do not count
    assert (by_name["beads"]["polecats"], by_name["beads"]["crew"]) == (0, 1)
    assert set(written(town, "paths").split()) == {str(root / name / "mayor" / "rig") for name in RIGS}
    assert set(written(town, "heads").split()) == {git(town / name / "mayor" / "rig", "rev-parse", "HEAD") for name in RIGS}
    assert probed(town, "plain").rc == 0 and "gastown" in probed(town, "plain").out

    write_json(town / "mayor" / "rigs.json", {"version": 1, "rigs": {}})  # what gt install leaves
    assert run(town, "rig-walker")["result"] == "success"
    empty = probed(town, "rigs")
    assert empty.rc == 0 and empty.out.startswith("No rigs configured."), empty


def test_gt_mail_send_with_stdin_message_and_to_lands_as_mail(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "mailer", """RIG="$GT_RIG"
PCAT=nux
gt mail send "$RIG/witness" -s "RESTART_POLECAT: $RIG/$PCAT" --stdin <<BODY > "$OUT/witness"
Polecat $PCAT crash confirmed by stuck-agent-dog plugin.
hook_bead: gt-abc12
action: restart requested
BODY
gt mail send mayor/ -s "Quality BREACH: $PCAT" -m "Worker: $PCAT
Rig: $RIG
Avg Score: 0.41" > "$OUT/mayor"
gt mail send --to deacon/ -s "via --to" --body "body via --body" > "$OUT/deacon"
""", gate=MANUAL, where="gastown/plugins")
    assert run(town, "mailer")["result"] == "success"  # set -e: every send exited 0
    assert written(town, "witness").splitlines()[0] == "✓ Message sent to gastown/witness"
    assert written(town, "mayor").splitlines()[0] == "✓ Message sent to mayor/"
    assert written(town, "deacon").splitlines()[0] == "✓ Message sent to deacon/"

    by_subject = {item["subject"]: item for item in mail(town)}
    witness = by_subject["RESTART_POLECAT: gastown/nux"]
    assert witness["to"] == "gastown/witness"
    assert witness["body"].rstrip("\n") == (
        "Polecat nux crash confirmed by stuck-agent-dog plugin.\nhook_bead: gt-abc12\naction: restart requested")
    mayor = by_subject["Quality BREACH: nux"]
    assert mayor["to"] in ("mayor/", "mayor") and mayor["body"] == "Worker: nux\nRig: gastown\nAvg Score: 0.41"
    assert by_subject["via --to"]["body"] == "body via --body"


def test_gt_town_root_and_version_keep_a_set_e_script_going(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    plugin(town, "watchdog", """TOWN_ROOT="${GT_TOWN_ROOT:-$(gt town root 2>/dev/null)}"
echo "$TOWN_ROOT" > "$OUT/town-root"
env -u GT_TOWN_ROOT -u GT_ROOT -u GT_TOWN gt town root > "$OUT/town-root-from-cwd"
OLD_VER=$(gt version 2>/dev/null | head -1 || echo "unknown")
bd create "watchdog: 2 polecats checked, $OLD_VER" -t chore --ephemeral \\
  -l type:plugin-run,plugin:watchdog,result:success -d "all hooks empty" --silent 2>/dev/null || true
""", gate=MANUAL)
    ran = run(town, "watchdog")
    root = str(town.resolve())
    assert written(town, "town-root").strip() == root
    assert written(town, "town-root-from-cwd") == root + "\n"  # `gt town root` prints the root, found from the cwd here
    assert ran["result"] == "success", ran
    assert re.fullmatch(r"watchdog: 2 polecats checked, gt version 1\.2\.1 \(gtui \S+\)", ran["summary"]), ran


def test_gt_plugin_and_dog_dispatch_answer_in_gas_towns_json_shapes(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    sheriff = gastown_plugin(town, "sheriff", "echo patrolled\n", gate=MANUAL, where="gastown/plugins")
    peek = plugin(town, "plugin-peek", """probe list gt plugin list --json
probe show gt plugin show sheriff --json
probe history gt plugin history sheriff --json
probe dispatch gt dog dispatch --plugin sheriff --rig gastown --json
""", gate=MANUAL)
    earlier = run(town, "sheriff")
    assert run(town, "plugin-peek")["result"] == "success"

    listed = {item["name"]: item for item in probed(town, "list").json()}
    assert {key: listed["sheriff"][key] for key in ("location", "rig_name", "gate_type", "path")} == {
        "location": "rig", "rig_name": "gastown", "gate_type": "manual", "path": str(sheriff.resolve())}
    assert (listed["plugin-peek"]["location"], listed["plugin-peek"]["path"]) == ("town", str(peek.resolve()))
    assert "rig_name" not in listed["plugin-peek"]

    shown = probed(town, "show").json()
    assert (shown["name"], shown["location"], shown["rig_name"], shown["version"]) == ("sheriff", "rig", "gastown", 1)
    assert shown["gate"]["type"] == "manual" and shown["execution"]["severity"] == "low" and shown["has_run_script"] is True

    (past,) = probed(town, "history").json()
    assert set(past) >= {"id", "title", "created_at", "labels"} and past["id"] == earlier["id"]
    assert {"type:plugin-run", "plugin:sheriff", "result:success"} <= set(past["labels"])

    dispatch = probed(town, "dispatch")
    assert dispatch.rc == 0 and len(dispatch.out.strip().splitlines()) == 1, dispatch
    sent = dispatch.json()
    assert set(sent) >= {"plugin", "plugin_path", "dog", "work", "session_started", "work_confirmed"}, sent
    assert (sent["plugin"], sent["plugin_rig"], sent["work"]) == ("sheriff", "gastown", "plugin:sheriff") and sent["dog"]
    wait_for(lambda: len(history(town, "sheriff")) == 2 and history(town, "sheriff")[0]["result"] == "success", 20, "the dispatched run")


# -- escalation -----------------------------------------------------------------------------------------------


def test_gtui_escalate_takes_gas_towns_words_and_flags(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    raised = ok(town, "escalate", "Refinery", "queue", "stuck", "-s", "HIGH", "-r", "no merge for 2h")
    plain = ok(town, "escalate", "nobody said how bad")
    sourced = ok(town, "escalate", "from the deacon", "--severity", "Low", "--source", "deacon", "--related", "run-7",
                 "--reason", "see run-7")
    piped = ok(town, "escalate", "from stdin", "-s", "critical", "--stdin", stdin="piped body\n")
    dry = cli(town, "escalate", "only a dry run", "-s", "high", "--dry-run")
    dry_short = cli(town, "escalate", "only a dry run too", "-s", "high", "-n")
    assert dry.code == 0 and dry_short.code == 0, (dry.err, dry_short.err)

    found = {item["subject"]: item for item in escalations(town)}
    assert set(found) == {"Refinery queue stuck", "nobody said how bad", "from the deacon", "from stdin"}
    assert (found["Refinery queue stuck"]["id"], found["Refinery queue stuck"]["severity"]) == (raised["id"], "high")
    assert found["Refinery queue stuck"]["body"] == "no merge for 2h"
    assert (found["nobody said how bad"]["id"], found["nobody said how bad"]["severity"]) == (plain["id"], "medium")
    assert (found["from the deacon"]["severity"], found["from the deacon"]["source"]) == ("low", "deacon")
    assert "run-7" in json.dumps(ok(town, "escalate", "show", sourced["id"]))
    assert found["from stdin"]["body"].rstrip("\n") == "piped body" and found["from stdin"]["id"] == piped["id"]
    acked = cli(town, "escalate", "ack", plain["id"])
    assert acked.code == 0, acked.err
    assert escalation(town, "nobody said how bad")["status"] == "acked"
    closed = cli(town, "escalate", "close", raised["id"], "--reason", "merged by hand")
    assert closed.code == 0, closed.err
    assert escalation(town, "Refinery queue stuck")["status"] == "closed"


def delivery(item: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    """Every recorded delivery attempt of one channel: a skipped one must be recorded once, never retried."""
    return [record for record in item["deliveries"] if record["channel"] == channel]


def test_gt_installs_escalation_json_is_accepted_and_a_missing_contact_is_a_skipped_delivery(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    assert escalations(town) == [] and cli(town, "escalate", "stale", "--json").code == 0

    high = ok(town, "escalate", "dolt backup failed", "-s", "high")
    critical = ok(town, "escalate", "mass agent death", "-s", "critical")
    for _ in range(2):  # later patrols never retry a skipped delivery
        report = once(town)
    shown = ok(town, "escalate", "show", high["id"])
    assert [record["ok"] for record in delivery(shown, "bead")] == [True]
    assert [record["ok"] for record in delivery(shown, "mail:mayor")] == [True]
    (skipped,) = delivery(shown, "email:human")
    text = json.dumps(skipped).lower()
    assert skipped["ok"] is not True and "skip" in text and ("human_email" in text or "contact" in text), skipped
    assert "email:human" not in shown["pending"]
    assert any("dolt backup failed" in item["subject"] for item in mail(town))  # mail:mayor delivered

    crit = ok(town, "escalate", "show", critical["id"])
    assert len(delivery(crit, "email:human")) == 1 and len(delivery(crit, "sms:human")) == 1
    assert "sms:human" not in crit["pending"]
    missing_contact = [item for item in problems(report)
                       if item["level"] == "warning" and ("email:human" in json.dumps(item) or "human_email" in json.dumps(item))]
    assert missing_contact, problems(report)


def test_an_unknown_action_is_skipped_and_is_an_error_problem(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    settings = json.loads(INSTALL_ESCALATION_JSON)
    settings["routes"]["high"] = ["bead", "mail:mayor", "pager:oncall"]
    write_json(town / "settings" / "escalation.json", settings)
    assert cli(town, "escalate", "list", "--json").code == 0

    raised = ok(town, "escalate", "refinery wedged", "-s", "high")
    report = once(town)
    shown = ok(town, "escalate", "show", raised["id"])
    (skipped,) = delivery(shown, "pager:oncall")
    assert skipped["ok"] is not True and "skip" in json.dumps(skipped).lower(), skipped
    assert "pager:oncall" not in shown["pending"]
    assert [item["ok"] for item in delivery(shown, "mail:mayor")] == [True]
    assert any(item["level"] == "error" and "pager:oncall" in json.dumps(item) for item in problems(report)), problems(report)


def test_without_escalation_json_the_routes_are_gas_towns_defaults(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    (town / "settings" / "escalation.json").unlink()
    channels = {}
    for severity in ("low", "medium", "high", "critical"):
        raised = ok(town, "escalate", f"a {severity} matter", "-s", severity)
        shown = ok(town, "escalate", "show", raised["id"])
        channels[severity] = {record["channel"] for record in shown["deliveries"]} | set(shown["pending"])
    assert channels == {
        "low": {"bead"},
        "medium": {"bead", "mail:mayor"},
        "high": {"bead", "mail:mayor", "email:human"},
        "critical": {"bead", "mail:mayor", "email:human", "sms:human"},
    }
    assert not (town / "logs" / "escalations.log").exists()  # no default route logs


def test_smtp_port_as_a_string_delivers_to_a_real_smtp_server(tmp_path: Path, smtp: SmtpServer) -> None:
    town = the_town(tmp_path)
    settings = json.loads(INSTALL_ESCALATION_JSON)
    settings["contacts"] = {"human_email": "overseer@example.com", "smtp_host": "127.0.0.1", "smtp_port": str(smtp.port),
                            "smtp_from": "gastown@localhost"}
    write_json(town / "settings" / "escalation.json", settings)

    raised = ok(town, "escalate", "dolt backup failed", "-s", "high", "-r", "disk full")
    wait_for(lambda: smtp.messages, 10, "the email")
    (message,) = smtp.messages
    assert message.rcpt_tos == ["overseer@example.com"] and "dolt backup failed" in message.email["Subject"]
    assert [record["ok"] for record in delivery(ok(town, "escalate", "show", raised["id"]), "email:human")] == [True]


def test_the_log_action_appends_to_town_logs_escalations_log(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    settings = json.loads(INSTALL_ESCALATION_JSON)
    settings["routes"]["high"] = ["bead", "log"]
    write_json(town / "settings" / "escalation.json", settings)

    raised = ok(town, "escalate", "compactor-dog: integrity failure in hq", "-s", "HIGH", "-r", "never in the log")
    log = town / "logs" / "escalations.log"
    wait_for(log.exists, 10, "the escalation log")
    (line,) = log.read_text(encoding="utf-8").splitlines()
    match = re.fullmatch(r"(\S+) \[HIGH\] (esc-\d+): compactor-dog: integrity failure in hq", line)
    assert match and match.group(2) == raised["id"], line
    stamp = parse_time(match.group(1))  # RFC3339 local time, with its offset
    assert abs(stamp.timestamp() - time.time()) < 60


# -- events -----------------------------------------------------------------------------------------------------


def gas_event(town: Path, kind: str, at: float | None = None) -> None:
    """Append one line to ``<town>/.events.jsonl`` exactly as gt's events.go writes it (compact JSON, UTC RFC3339)."""
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = {"ts": stamp, "source": "gt", "type": kind, "actor": "mayor", "payload": {"convoy_id": "hq-cv-1"}, "visibility": "feed"}
    with open(town / ".events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")


def test_a_line_of_events_jsonl_opens_the_event_gate_once(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "dolt-snapshots", "echo snapshot\n", gate='type = "event"\non = "convoy.created"')
    assert entry(once(town), "dolt-snapshots")["dispatched"] is False

    gas_event(town, "convoy.created")
    ran = entry(once(town), "dolt-snapshots")
    assert ran["dispatched"] is True and ran["run"]["result"] == "success"
    assert entry(once(town), "dolt-snapshots")["dispatched"] is False  # the same event does not run it again

    gas_event(town, "convoy.closed")
    assert entry(once(town), "dolt-snapshots")["dispatched"] is False  # another event
    # Written after the last run by a process whose clock is an hour behind: the file's order decides, not its clock.
    gas_event(town, "convoy.created", at=time.time() - 3600)
    assert entry(once(town), "dolt-snapshots")["dispatched"] is True
    assert len(history(town, "dolt-snapshots")) == 2


# -- Gas Town's daemon --------------------------------------------------------------------------------------------


def daemon_warnings(town: Path) -> list[dict[str, Any]]:
    """The problems of one ``--once`` about Gas Town's daemon: where the Deacon looks."""
    return [item for item in problems(once(town)) if item["file"].endswith("mayor/daemon.json")]


def test_gtui_warns_while_gas_towns_daemon_also_dispatches_cooldown_plugins(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    (warning,) = daemon_warnings(town)
    assert (warning["level"], warning["field"]) == ("warning", "patrols.handler.enabled"), warning

    daemon = town / "mayor" / "daemon.json"
    config = json.loads(json.dumps(INSTALL_DAEMON_CONFIG))
    config["patrols"]["handler"] = {"enabled": True}
    write_json(daemon, config)
    assert len(daemon_warnings(town)) == 1
    config["patrols"]["handler"] = {"enabled": False}
    write_json(daemon, config)
    assert daemon_warnings(town) == []

    write_json(daemon, INSTALL_DAEMON_CONFIG)
    write_json(town / "settings" / "config.json", {"disabled_patrols": ["handler"]})
    assert daemon_warnings(town) == []
    (town / "settings" / "config.json").unlink()
    daemon.unlink()
    assert daemon_warnings(town) == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_control_room_header_has_a_line_about_gas_towns_daemon(tmp_path: Path) -> None:
    from tuikit import SIZE, app_for, screen_text, started, wait_until

    town = the_town(tmp_path)
    app = app_for(town)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        top = await wait_until(pilot, lambda: [line for line in screen_text(app).splitlines()[:4] if "daemon" in line.lower()], 10,
                               "a daemon line in the header")
        assert top
    config = json.loads(json.dumps(INSTALL_DAEMON_CONFIG))
    config["patrols"]["handler"] = {"enabled": False}
    write_json(town / "mayor" / "daemon.json", config)
    calm = app_for(town)
    async with calm.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.pause(0.2)
        assert not [line for line in screen_text(calm).splitlines()[:4] if "daemon" in line.lower()]
