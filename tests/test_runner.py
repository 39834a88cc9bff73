"""One plugin run, end to end, with real processes: timeout and process-group kill, capped logs,
flat memory under a flood of output, the run's environment, agent plugins, and the run's events.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from enginekit import add_plugin, gone, gtui, gtui_argv, gtui_env, kill_group, make_town, read_pid, runs
from kennelkit import start_kennel

from gtcore.core.events import DogChanged, Event, OutputLine, RunClaimed, RunFinished, RunStarted
from gtcore.dogs.output import LOG_CAP
from gtcore.engine import Engine
from gtcore.town.layout import Town

MANUAL = 'type = "manual"'


def test_timeout_kills_a_script_that_ignores_sigterm_and_its_grandchild(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'dogs = 1\nkill_grace = "1s"\n')
    directory = add_plugin(
        town, "stubborn", MANUAL,
        "trap '' TERM\n"
        "sleep 300 &\n"
        "echo $! > grandchild.pid\n"
        "echo $$ > script.pid\n"
        "while :; do sleep 0.05; done\n",
        execution='timeout = "1s"',
    )
    started = time.monotonic()
    try:
        done = gtui(town, "plugin", "run", "stubborn", "--json")
        elapsed = time.monotonic() - started
        script, grandchild = read_pid(directory / "script.pid"), read_pid(directory / "grandchild.pid")
        run = done.json()
        assert done.code == 1, done.err
        assert run["result"] == "timeout"
        assert "timeout of 1s" in run["reason"]
        # timeout 1s + grace 1s (SIGTERM is ignored, so SIGKILL is needed) + slack for a loaded machine
        assert 1.9 <= run["duration_s"] < 3.5, run
        assert elapsed < 6.0
        assert run["exit_code"] == -9  # the group got SIGKILL after the grace
        assert gone(script), f"run.sh {script} survived its timeout"
        assert gone(grandchild), f"grandchild {grandchild} of run.sh survived its timeout"
    finally:
        for name in ("script.pid", "grandchild.pid"):
            if (directory / name).exists():
                kill_group(int((directory / name).read_text()))


FLOOD_LINE = b"x" * 99 + b"\n"
FLOOD_BYTES = 60_000_000
PEAK_RSS_HELPER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _peak_rss_kib(town: Path, plugin: str) -> tuple[int, int]:
    """Exit code and peak RSS (KiB) of ``gtui plugin run PLUGIN``, measured by a fresh parent that waits for it."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_HELPER, *gtui_argv(town, "plugin", "run", plugin)],
                         capture_output=True, text=True, env=gtui_env(), timeout=120, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_sixty_megabytes_of_output_keep_a_capped_tail_and_flat_memory(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "flood", MANUAL, f"yes {FLOOD_LINE[:-1].decode()} | head -c {FLOOD_BYTES}\n")
    add_plugin(town, "quiet", MANUAL, "echo one line\n")

    code, flood_peak = _peak_rss_kib(town, "flood")
    assert code == 0
    code, quiet_peak = _peak_rss_kib(town, "quiet")
    assert code == 0
    assert flood_peak - quiet_peak < 30 * 1024, f"peak RSS {flood_peak} KiB vs {quiet_peak} KiB for one line"

    (run,) = runs(town, "flood")
    assert run.result == "success"
    log = Path(run.data["log"])
    assert log == town.resolve() / ".gtui" / "runs" / f"{run.ref}.log"
    content = log.read_bytes()
    header, _, tail = content.partition(b"\n")
    assert header.startswith(b"[gtui: ") and str(FLOOD_BYTES - LOG_CAP).encode() in header, header
    assert len(header) < 200
    assert len(content) <= LOG_CAP + 200
    expected = (FLOOD_LINE * (FLOOD_BYTES // len(FLOOD_LINE)))[-LOG_CAP:]
    assert tail == expected  # exactly the last MiB: the tail is kept, nothing else


def test_run_environment_and_working_directory(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    script = 'for v in GT_TOWN GT_RIG GT_PLUGIN GT_RUN_ID GT_DOG; do echo "$v=${!v-UNSET}"; done > env.txt\npwd -P > cwd.txt\n'
    town_dir = add_plugin(town, "envy", MANUAL, script)
    (town / "alpha" / "plugins").mkdir(parents=True)
    rig_dir = add_plugin(town, "rig-envy", MANUAL, script, where="alpha/plugins")
    root = town.resolve()

    for name, directory, rig in (("envy", town_dir, ""), ("rig-envy", rig_dir, "alpha")):
        done = gtui(town, "plugin", "run", name, "--json")
        assert done.code == 0, done.err
        run = done.json()
        env = dict(line.split("=", 1) for line in (directory / "env.txt").read_text().splitlines())
        assert env == {"GT_TOWN": str(root), "GT_RIG": rig, "GT_PLUGIN": name, "GT_RUN_ID": run["id"], "GT_DOG": run["dog"]}
        assert run["dog"] in ("rex", "fido")  # dogs = 2
        assert (directory / "cwd.txt").read_text().strip() == str(directory.resolve())


def test_agent_plugin_without_an_agent_command_is_skipped_with_the_reason(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "triage", MANUAL, None, body="Sort the mail.\n")
    done = gtui(town, "plugin", "run", "triage", "--json")
    assert done.code == 0, done.err
    run = done.json()
    assert run["result"] == "skipped"
    assert "no agent_command configured" in run["reason"]
    assert [r.result for r in runs(town, "triage")] == ["skipped"]


def test_agent_plugin_gets_its_instructions_on_stdin(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'dogs = 1\nagent_command = ["bash", "-c", "cat > got.txt; echo agent read it"]\n')
    instructions = "# Triage\n\nSort the mail,\nthen report in five lines.\n"
    directory = add_plugin(town, "triage", MANUAL, None, body=instructions)
    done = gtui(town, "plugin", "run", "triage", "--json")
    assert done.code == 0, done.err
    run = done.json()
    assert run["result"] == "success"
    assert (directory / "got.txt").read_text() == instructions.strip()
    assert "agent read it" in Path(run["log"]).read_text()


def test_one_run_publishes_claimed_started_output_finished_in_order(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "chatty", MANUAL, "echo one\necho two\necho three\nexit 4\n")
    engine = Engine(Town.locate(town))
    kennel = start_kennel(town)
    assert kennel is not None
    seen: list[Event] = []
    kennel.engine.bus.subscribe(seen.append)  # the kennel runs it: its engine's bus says what happens
    try:
        queued = engine.run_plugin("chatty")
        ended = engine.wait_runs([queued.id], timeout=30)[queued.id]
    finally:
        engine.close()
    assert ended.result == "failure"
    ref = ended.ref
    mine = [event for event in seen if getattr(event, "run_ref", None) == ref and not isinstance(event, DogChanged)]
    assert [type(event) for event in mine] == [RunClaimed, RunStarted, OutputLine, OutputLine, OutputLine, RunFinished]
    claimed, started, *lines, finished = mine
    assert (claimed.plugin, claimed.rig) == ("chatty", "town")
    assert started.dog == claimed.dog == finished.dog
    assert started.pid and Path(started.log).name == f"{ref}.log"
    assert [line.line for line in lines] == ["one", "two", "three"]  # type: ignore[attr-defined]
    assert (finished.result, finished.exit_code, finished.reason) == ("failure", 4, "exited 4")
    assert claimed.at <= started.at <= finished.at
