"""The command line is one table (gtui/cli/parser.py): every command's words, help, arguments and handler in one place,
and the argparse tree, the read-only rules and the lookup all come from it."""

from __future__ import annotations

import pytest

from gtui.cli import build_parser
from gtui.cli.parser import BY_WORDS, ONCE, TABLE, Command, choices


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
    tree = choices((Command(("plugin", "a"), "does a", print), Command(("plugin", "b"), "does b", print),
                    Command(("solo",), "alone", print)))
    assert list(tree) == ["plugin", "solo"]
    assert tree["plugin"][0] == "list, inspect and run plugins"  # the group's own help
    assert list(tree["plugin"][1]) == ["a", "b"]  # type: ignore[arg-type]
    assert tree["solo"] == ("alone", print)


def test_only_listings_read_only_and_only_the_dry_runs_run_under_read_only() -> None:
    reads = {" ".join(command.words) for command in TABLE if command.reads}
    assert reads == {"plugin list", "plugin show", "plugin history", "plugin log", "dog list", "kennel status", "escalate list",
                     "escalate show", "mail list", "stale"}
    assert {" ".join(command.words) for command in TABLE if command.dry_run} == {"plugin digest", "escalate raise", "escalate stale"}
