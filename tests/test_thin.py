"""Thin commands: the town's living kennel answers ``--once``, ``plugin list`` and ``escalate list`` exactly as the command's
own process would; a kennel that does not accept within 200 ms, another environment, a kennel that answers no commands
or none at all: the command runs in its own process, as before."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from enginekit import Result, add_plugin, gtui, gtui_env, make_town, shuffled_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kennelkit import kennel_engine, kennel_pids, start_kennel

from gtcore import __version__
from gtcore.dogs import kennel_door as door
from gtcore.dogs.kennel import Kennel
from gtcore.dogs.kennel_door import environment_key
from gtui.thin import _said, thin_command

MANUAL = 'type = "manual"'
THIN_LINES = [("--once", "--json"), ("--once",), ("plugin", "list", "--json"), ("plugin", "list"), ("escalate", "list", "--json"),
              ("escalate", "list", "--all"), ("escalate", "list", "--severity", "high", "--json")]


def env_of(mode: str, **more: str) -> dict[str, str]:
    return {**gtui_env(), "GTUI_THIN": mode, **more}


TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|\b[\d.]+(ms|s|m|h|d)( ago)?\b|\bnow\b")


def timeless(result: Result) -> tuple[int, str, str]:
    """A result without the times that move between two answers (when a patrol started, how long ago a run ended), nor
    the widths of the columns that hold them."""
    def plain(text: str) -> str:
        return re.sub(r"[ ─]+", " ", TIMES.sub("T", text))

    return result.code, plain(result.out), plain(result.err)


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """A town whose kennel is a real ``gtui kennel`` process (started by a run, as any command starts it), with a failed
    run, an open escalation, a paused plugin and an invalid file: answers with something in every part."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "loud", MANUAL, "echo 'disk full'\nexit 1\n")
    add_plugin(town, "quiet", MANUAL)
    add_plugin(town, "resting", 'type = "cooldown"\nduration = "1h"')
    (town / "plugins" / "broken").mkdir()
    (town / "plugins" / "broken" / "plugin.md").write_text("+++\nname = 'broken'\n+++\n")
    gtui(town, "plugin", "run", "loud", env=env_of("off"))
    gtui(town, "plugin", "disable", "resting", "--reason", "not now", env=env_of("off"))
    gtui(town, "escalate", "disk is full", "--severity", "high", env=env_of("off"))
    gtui(town, "--once", env=env_of("off"))  # the finished runs taken: the next --once answers alike wherever it runs
    assert kennel_pids(town), "plugin run started the town's kennel"
    return town


@pytest.mark.parametrize("line", THIN_LINES, ids=" ".join)
def test_the_kennel_answers_as_the_command_would_here(town: Path, line: tuple[str, ...]) -> None:
    thin = gtui(town, *line, env=env_of("require"))
    here = gtui(town, *line, env=env_of("off"))
    assert timeless(thin) == timeless(here)
    assert thin.out and thin.code == here.code


def test_commands_answered_at_once_each_get_their_own_output(town: Path) -> None:
    lines = [("plugin", "list", "--json"), ("escalate", "list", "--json"), ("plugin", "list")] * 4
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda line: gtui(town, *line, env=env_of("require")), lines))
    alone = {line: timeless(gtui(town, *line, env=env_of("off"))) for line in set(lines)}
    assert [timeless(answer) for answer in answers] == [alone[line] for line in lines]
    assert all(answer.err == "" for answer in answers)


def test_a_kennel_of_another_environment_is_bypassed(town: Path) -> None:
    other = env_of("require", GT_LEDGER_TIMEOUT="9")  # a variable that could change the answer: not the kennel's to give
    refused = gtui(town, "plugin", "list", "--json", env=other)
    assert (refused.code, refused.err) == (2, "gtui: error: GTUI_THIN=require: the kennel did not answer (another environment)\n")
    here = gtui(town, "plugin", "list", "--json", env={**other, "GTUI_THIN": ""})
    assert here.code == 0 and here.err == "" and here.json()["plugins"]
    assert environment_key({"PATH": "/bin", "LC_CTYPE": "C.UTF-8", "COLUMNS": "80"}) == environment_key({"PATH": "/bin"})
    assert environment_key({"PATH": "/bin", "LD_PRELOAD": "libfaketime.so.1"}) != environment_key({"PATH": "/bin"})


def test_a_kennel_that_does_not_accept_in_time_is_bypassed_and_said(town: Path) -> None:
    (pid,) = kennel_pids(town)
    os.kill(pid, signal.SIGSTOP)  # alive, its socket open, answering nothing
    try:
        once = gtui(town, "--once", "--json", env=env_of(""))
        listing = gtui(town, "plugin", "list", "--json", env=env_of(""))
        required = gtui(town, "escalate", "list", env=env_of("require"))
    finally:
        os.kill(pid, signal.SIGCONT)
    said = [problem["reason"] for problem in once.json()["problems"] if problem["field"] == "kennel"]
    assert said == ["the town's kennel did not answer within 200 ms; answered by this process instead (gtui kennel status)"]
    assert listing.code == 0 and listing.json()["plugins"]
    assert listing.err == ("gtui: warning: the town's kennel did not answer within 200 ms; answered by this process instead"
                           " (gtui kennel status)\n")
    assert (required.code, required.err) == (2, "gtui: error: GTUI_THIN=require: the kennel did not answer (slow)\n")


def test_a_kennel_that_answers_no_commands_or_none_alive_leaves_the_command_here(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "quiet", MANUAL)
    nobody = gtui(town, "plugin", "list", "--json", env=env_of("require"))
    assert (nobody.code, nobody.err) == (2, "gtui: error: GTUI_THIN=require: the kennel did not answer (none alive)\n")
    start_kennel(town)  # a kennel inside this test's process: it runs plugins, it answers no commands
    silent = gtui(town, "plugin", "list", "--json", env=env_of("require"))
    assert silent.err == "gtui: error: GTUI_THIN=require: the kennel did not answer (this kennel answers no commands)\n"
    assert gtui(town, "plugin", "list", "--json", env=env_of("")).json()["plugins"][0]["name"] == "quiet"


def test_the_kennel_keeps_its_own_output_to_itself(town: Path) -> None:
    gtui(town, "plugin", "list", env=env_of("require"))
    log = next((town / ".gtui" / "kennel").glob("*.log")).read_text()
    assert "quiet" not in log and "Plugins" not in log  # the listing went to the command, not to the kennel's log


@pytest.mark.parametrize(("argv", "env", "tty", "expected"), [
    (["--once", "--json", "--town", "t"], {}, False, (["--once", "--json"], True)),
    (["plugin", "list"], {"GT_TOWN_ROOT": "t"}, False, (["plugin", "list"], True)),
    (["plugin", "list"], {"GT_TOWN_ROOT": "t"}, True, None),  # for a terminal: its width and colours are this process's
    (["plugin", "list", "--json"], {"GT_ROOT": "t"}, True, (["plugin", "list", "--json"], True)),
    (["escalate", "list", "--severity=high", "--town=t"], {}, False, (["escalate", "list", "--severity", "high"], True)),
    (["plugin", "list", "--json"], {}, False, None),  # no town named: found by the engine, above the working directory
    (["--once", "--wait", "--town", "t"], {}, False, None),
    (["--once", "--event", "deploy", "--town", "t"], {}, False, None),
    (["plugin", "show", "x", "--town", "t"], {}, False, None),
    (["plugin", "list", "--once", "--town", "t"], {}, False, None),
    (["plugin", "list", "--town"], {}, False, None),
    (["--help", "--town", "t"], {}, False, None),
])
def test_which_command_lines_are_thin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str],
                                      tty: bool, expected: tuple[list[str], bool] | None) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir()
    found = thin_command(argv, env, tty)
    if expected is None:
        assert found is None
        return
    root = str(tmp_path / "t")
    assert found == (root, [*expected[0], "--town", root])


def test_the_door_names_the_town_with_the_variables_the_engine_reads() -> None:
    from gtcore.town.layout import TOWN_ENV

    assert door.TOWN_ENV == TOWN_ENV


def test_the_console_script_imports_nothing_the_interpreter_has_not_but_the_door() -> None:
    """Every module a thin command imports is time it spends before it asks: only the door, gtui's own two packages
    and ``_socket`` (not ``socket``, ``json``, ``re`` or ``hashlib``), from a script that imports nothing else."""
    code = "import sys; before = set(sys.modules); import gtui.thin; print(sorted(set(sys.modules) - before))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**gtui_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    imported = set(ast.literal_eval(shown.stdout))
    assert imported - {"__future__", "_socket"} == {"gtcore", "gtcore.dogs", "gtcore.dogs.kennel_door", "gtui", "gtui.thin"}  # a site
    # may have those two; gtcore.dogs is the door's package, its __init__ a docstring
    script = ast.parse((Path(__file__).resolve().parents[1] / "scripts" / "gtui").read_text())
    imports = [node for node in ast.walk(script) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert [(node.module, [alias.name for alias in node.names]) for node in imports] == [("gtui.thin", ["main"])]  # type: ignore[union-attr]


def test_a_kennel_answering_many_commands_keeps_no_file_open_for_them(town: Path) -> None:
    (pid,) = kennel_pids(town)
    gtui(town, "plugin", "list", "--json", env=env_of("require"))  # the first answer imports and opens what stays
    before = len(os.listdir(f"/proc/{pid}/fd"))
    for line in [("plugin", "list", "--json"), ("escalate", "list", "--json"), ("--once", "--json")] * 10:
        assert gtui(town, *line, env=env_of("require")).code in (0, 1)
    assert len(os.listdir(f"/proc/{pid}/fd")) <= before + 2  # a ledger left open per command would hold three more each


PIECES = st.sampled_from([["--once"], ["plugin", "list"], ["escalate", "list"], ["--json"], ["--read-only"], ["--all"], ["--stale"],
                          ["--severity", "high"], ["--severity=low"], ["--town", "t"], ["--town=t"], ["--wait"], ["--event", "deploy"],
                          ["show"], ["x"], ["-h"], ["--town"], ["="], [""]])


COMMAND_LINES = shuffled_lines(PIECES, 6, 6)
"""Mostly lines made of a command's own words and flags in any order (the thin ones among them), sometimes noise."""


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=COMMAND_LINES, tty=st.booleans())
def test_a_thin_line_is_the_same_command_to_gtui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], tty: bool) -> None:
    """Whatever the words, the door never fails; a line it sends is one the command line reads as the same command,
    with the same town and flags as the words it was given."""
    from gtui.cli import build_parser

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir(exist_ok=True)
    found = thin_command(argv, {}, tty)
    if found is None:
        return
    root, line = found
    sent, given_ = _parsed(build_parser, line), _parsed(build_parser, argv)
    if given_ is None:  # a line the command line refuses: the kennel's gtui refuses it in the same words
        assert sent is None
        return
    assert sent == {**given_, "town": root}
    assert (sent["command"], sent.get("verb")) in {(None, None), ("plugin", "list"), ("escalate", "list")}
    assert sent["once"] == (sent["command"] is None) and (not tty or sent.get("json"))
    assert not sent.get("wait") and not sent.get("event")  # what takes long, or writes, runs in its own process


def _parsed(build_parser: Any, argv: list[str]) -> dict[str, Any] | None:
    """``argv`` as the command line reads it (None: it refuses it)."""
    from gtui.cli import UsageError

    try:
        return vars(build_parser(argv).parse_args(argv))
    except (UsageError, SystemExit):
        return None


def ask(town: Path, argv: list[str], env: dict[str, str] | None = None) -> dict[str, object] | str | None:
    """What the town's kennel answers to ``argv`` sent as a thin command would be sent (with the test's environment)."""
    root = str(town.resolve())
    return door.ask_command(door.socket_path(root, door.hostname()), argv, door.environment_key(env or env_of("")), __version__)


def test_the_kennel_answers_only_the_thin_commands_of_its_own_town(town: Path, tmp_path: Path) -> None:
    (pid,) = kennel_pids(town)
    root = str(town.resolve())
    for argv in (["kennel", "--autostarted", "--town", root], ["plugin", "disable", "quiet", "--town", root],
                 ["plugin", "run", "quiet", "--town", root], ["plugin", "list", "--json", "--town", str(tmp_path)],
                 ["plugin", "list", "--json"], ["--once", "--wait", "--town", root]):
        assert ask(town, argv) == "not a thin command of this town", argv
    assert kennel_pids(town) == [pid]
    listed = gtui(town, "plugin", "list", "--json", env=env_of("off")).json()["plugins"]
    assert next(item for item in listed if item["name"] == "quiet")["paused"] is None
    assert isinstance(ask(town, ["plugin", "list", "--json", "--town", root]), dict)


def test_a_socket_another_user_made_where_the_kennel_s_would_be_is_never_believed() -> None:
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(dir="/tmp", prefix="gtui-test-shared-"))  # as /tmp/gtui-<uid>/ could be, made by another
    shared.chmod(0o777)
    path = str(shared / "k.sock")
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # another user, serving a forged answer: exit 0, the town is fine
        try:
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
                server.bind(path)
                server.listen(1)
                os.write(ready_write, b"1")
                conn, _ = server.accept()
                conn.sendall(b'{"accepted": true}\n0 3 0\n{}\n')
                conn.recv(1)
        finally:
            os._exit(0)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 1) == b"1", "the other user's server did not start"
        assert door.ask_command(path, ["--once", "--json"], "key", __version__) is None
        assert door.tell(path, {"op": "wake"}) is None
    finally:
        os.close(ready_read)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_kennel_stays_while_it_answers_and_waits_for_its_answers_when_it_goes(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'dogs = 1\nkennel_idle = "1s"\n')
    asked, release = threading.Event(), threading.Event()

    class Slow:
        def refusal(self, argv: list[str]) -> str | None:
            return None

        def __call__(self, argv: list[str], gone: Any) -> tuple[int, str, str]:
            asked.set()
            release.wait(10)
            return 0, "answered\n", ""

    house = Kennel(kennel_engine(town), autostarted=True, answerer=Slow())
    house.open()
    house.start()
    answers: list[object] = []
    asker = threading.Thread(target=lambda: answers.append(door.ask_command(house.where.socket, ["x"], house.answers.key, __version__)))
    asker.start()
    assert asked.wait(5)
    serving = threading.Thread(target=house.serve, daemon=True)
    serving.start()
    serving.join(2.5)
    assert serving.is_alive(), "an idle kennel answering a command let go"
    house.ask_stop("the test is done")
    serving.join(5)
    closing = threading.Thread(target=house.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive(), "a kennel that goes waits for the command it is answering"
    release.set()
    closing.join(10)
    asker.join(10)
    assert answers == [{"code": 0, "out": b"answered\n", "err": b""}]


def test_a_once_whose_asker_went_away_takes_nothing(town: Path) -> None:
    gtui(town, "plugin", "run", "quiet", env=env_of("off"))
    request = {"op": "command", "argv": ["--once", "--json", "--town", str(town.resolve())],
               "key": door.environment_key(env_of("")), "version": __version__}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:  # asks, sees it accepted, and goes
        conn.connect(door.socket_path(str(town.resolve()), door.hostname()))
        conn.sendall(json.dumps(request).encode() + b"\n")
        assert conn.recv(100).startswith(b'{"accepted": true}')
    time.sleep(1.5)
    later = gtui(town, "--once", "--json", env=env_of("off")).json()
    assert [run["plugin"] for run in later["finished"]] == ["quiet"]


def test_an_asker_that_says_nothing_holds_up_no_other(town: Path) -> None:
    path = door.socket_path(str(town.resolve()), door.hostname())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        silent.connect(path)
        slow.connect(path)
        slow.sendall(b"{")  # and then a byte now and then, forever
        assert isinstance(ask(town, ["plugin", "list", "--json", "--town", str(town.resolve())]), dict)


def test_a_kennel_that_accepted_and_then_froze_is_left_after_a_while(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(door, "QUIET_SECONDS", 0.5)
    path = str(tmp_path / "k.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def accept_then_freeze() -> None:
            conn, _ = server.accept()
            conn.sendall(b'{"accepted": true}\n\n')  # one keep-alive line, then nothing
            time.sleep(2)
            conn.close()

        threading.Thread(target=accept_then_freeze, daemon=True).start()
        assert door.ask_command(path, ["x"], "key", __version__) == "the kennel went quiet (nothing for 0.5s)"


def test_output_for_a_stream_that_is_not_utf8_is_drawn_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir()
    assert thin_command(["plugin", "list", "--town", "t"], {}, tty=False, utf8=False) is None  # its table's borders
    assert thin_command(["plugin", "list", "--json", "--town", "t"], {}, tty=False, utf8=False) is not None


def test_a_reader_that_went_away_ends_the_door_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self) -> int:
            raise OSError("not a file")

    monkeypatch.setattr(sys, "stdout", Gone())
    assert _said({"code": 1, "out": b"{}\n", "err": b""}) == 0


@settings(max_examples=300, deadline=None)
@given(argv=st.lists(st.text()), key=st.text(), version=st.text(max_size=10))
def test_a_command_request_written_without_json_is_what_json_reads(argv: list[str], key: str, version: str) -> None:
    """The door writes its request line by hand (a thin command does not import json): every text, or a refusal to
    send one no JSON reader would take (a lone surrogate: the command then runs in its own process)."""
    try:
        line = door.request_line("command", argv, key, version, token=key)
    except ValueError:
        assert any(0xD800 <= ord(char) <= 0xDFFF for char in "".join([*argv, key, version]))
        return
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"op": "command", "argv": argv, "key": key, "version": version, "token": key}


def _answered(sent: bytes) -> dict[str, object] | str:
    """What the door reads from a kennel that accepted and then sent ``sent`` and closed."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(sent)
        theirs.close()
        ours.settimeout(2)
        return door._answer(door._Reader(ours))


@settings(max_examples=200, deadline=None)
@given(code=st.integers(-255, 255), out=st.text(), err=st.text(), keepalives=st.integers(0, 3))
def test_an_answer_comes_through_as_the_bytes_the_command_wrote(code: int, out: str, err: str, keepalives: int) -> None:
    answer = _answered(b"\n" * keepalives + door.answer_bytes(code, out, err))
    assert answer == {"code": code, "out": out.encode(errors="surrogateescape"), "err": err.encode(errors="surrogateescape")}


@settings(max_examples=200, deadline=None)
@given(sent=st.binary(max_size=64) | st.builds(lambda head, body: head + b"\n" + body, st.sampled_from(
    [b"0 5 0", b"0 -1 0", b"1 2", b"a b c", b"0 0 99999999999", b"\n0 1 1"]), st.binary(max_size=8)))
def test_a_broken_answer_is_a_kennel_that_went_away_never_an_error(sent: bytes) -> None:
    answer = _answered(sent)
    if isinstance(answer, dict):  # only a well-formed end with all its bytes
        assert door.answer_bytes(answer["code"], answer["out"].decode(errors="surrogateescape"),  # type: ignore[arg-type, union-attr]
                                 answer["err"].decode(errors="surrogateescape")).strip(b"\n") in sent.lstrip(b"\n")  # type: ignore[union-attr]
    else:
        assert answer == "the kennel went away while answering"
