"""The command line is one table (gtui/cli/parser.py): every command's words, help, arguments and handler in one place,
and the argparse tree, the read-only rules and the lookup all come from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from enginekit import make_town, shuffled_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtui.cli import UsageError, build_parser
from gtui.cli.parser import BY_WORDS, ONCE, TABLE, Command, _with_default_verb, choices, quick_parse


@pytest.mark.parametrize("command", [*TABLE, ONCE], ids=lambda command: " ".join(command.words) or "--once")
def test_every_command_names_a_handler_that_exists(command: Command) -> None:
    if command.words == ("init",):
        assert command.run == ""  # it makes the town: main calls it without a Context
        return
    assert callable(command.handler())


def test_every_command_of_the_table_is_on_the_command_line_in_its_order() -> None:
    parsed = build_parser(["--help"])
    listed = [action for action in parsed._actions if action.dest == "command"]  # argparse has no public way to list them
    assert list(listed[0].choices) == list(dict.fromkeys(command.words[0] for command in TABLE))
    for command in TABLE:
        words = (command.words[0], command.words[1] if len(command.words) > 1 else None)
        built = build_parser(list(command.words))._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert list(built) == [command.words[0]]  # only its own parser is built
        assert BY_WORDS[words] is command


def test_a_group_of_verbs_is_built_from_the_commands_that_share_a_word() -> None:
    solo = Command(("solo",), "alone", print)
    tree = choices((Command(("plugin", "a"), "does a", print), Command(("plugin", "b"), "does b", print), solo))
    assert list(tree) == ["plugin", "solo"]
    assert tree["plugin"][0] == "list, inspect and run plugins"  # the group's own help
    assert list(tree["plugin"][1]) == ["a", "b"]  # type: ignore[arg-type]
    assert tree["solo"] == ("alone", solo.build)


def test_only_listings_read_only_and_only_the_dry_runs_run_under_read_only() -> None:
    reads = {" ".join(command.words) for command in TABLE if command.reads}
    assert reads == {"plugin list", "plugin show", "plugin history", "plugin log", "dog list", "kennel status", "escalate list",
                     "escalate show", "mail list", "stale"}
    assert {" ".join(command.words) for command in TABLE if command.dry_run} == {"plugin digest", "escalate raise", "escalate stale"}


# -- quick_parse: the common lines read without argparse ------------------------------------------------------------

QUICK_PIECES = st.sampled_from([
    ["--once"], ["plugin", "list"], ["escalate", "list"], ["dog", "list"], ["kennel", "status"], ["kennel", "stop"],
    ["mail", "list"], ["plugin", "show", "p"], ["escalate"], ["plugin"], ["init"], ["stale"], ["--json"], ["--read-only"],
    ["--all"], ["--stale"], ["--drain"], ["--severity", "HIGH"], ["--severity=low"], ["--severity", "bogus"], ["--severity"],
    ["--to", "mayor"], ["--to=a/witness"], ["--town", "t"], ["--town=t"], ["--town="], ["--town", ""], ["--town", "-t"],
    ["--wait"], ["--event", "deploy"], ["--event=x"], ["--json=1"], ["--js"], ["--read"], ["-h"], ["--help"], ["--"], ["-"],
    ["-1"], ["x"], [""], ["="], ["--town"],
])




def _argparse_reads(argv: list[str]) -> dict[str, Any] | None:
    try:
        return vars(build_parser(argv).parse_args(argv))
    except (UsageError, SystemExit):
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=shuffled_lines(QUICK_PIECES, 7, 5))
def test_a_line_read_without_argparse_reads_as_argparse_reads_it(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """quick_parse reads a line exactly as argparse does, or leaves it to argparse (a mistake among them)."""
    argv = _with_default_verb(argv)
    quick = quick_parse(argv)
    if quick is not None:
        assert vars(quick) == _argparse_reads(argv), argv
    capsys.readouterr()  # argparse's help and errors of the lines left to it


@pytest.mark.parametrize("line", [
    "--once --json", "--json --once --event a --event=b --wait", "plugin list --json", "--town=t --read-only plugin list",
    "escalate list --json --severity Critical --all --stale", "dog list", "kennel status --json", "kennel stop --drain",
    "mail list --to mayor", "--read-only", "",
])
def test_the_common_lines_are_read_without_argparse(line: str) -> None:
    """The lines a Deacon, a script or a person runs most take the quick way (and so read as argparse reads them)."""
    argv = line.split()
    quick = quick_parse(argv)
    assert quick is not None
    assert vars(quick) == _argparse_reads(argv)


def test_lines_with_anything_else_go_to_argparse() -> None:
    for line in ("plugin show p", "--jso", "--json=1", "plugin list x", "escalate list --severity bogus", "--town",
                 "plugin --json list", "--once -- plugin", "escalate high subject", "--help", "plugin list --once"):
        assert quick_parse(_with_default_verb(line.split())) is None, line


@pytest.mark.parametrize("line", ["escalate list --json", "plugin list --json", "--once --json --read-only"])
def test_the_common_commands_do_not_import_argparse(tmp_path: Path, line: str) -> None:
    """Without a kennel, the common commands run without importing argparse, nor the gettext and locale its words need."""
    town = make_town(tmp_path)
    code = ("import sys; from gtui.cli import main; main(sys.argv[1:]); "
            "sys.stderr.write(' '.join(name for name in ('argparse', 'gettext', 'locale') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *line.split(), "--town", str(town)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "GTUI_THIN": "off"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(("line", "read"), [
    ("escalate disk full -s high", "escalate raise disk full -s high"),
    ("--town escalate escalate list", "--town escalate escalate list"),  # the option's value is no command word
    ("--town escalate escalate subject", "--town escalate escalate raise subject"),
    ("--event kennel kennel status", "--event kennel kennel status"),
    ("--town t kennel", "--town t kennel run"),
    ("kennel --patrol", "kennel run --patrol"),
])
def test_a_verb_left_out_is_the_default_one_after_the_command_word(line: str, read: str) -> None:
    assert _with_default_verb(line.split()) == read.split()
