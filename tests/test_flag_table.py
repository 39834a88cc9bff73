"""One table of plugin-facing flags: the commands accept exactly what docs/gastown.md says, and both come from gtui/shims/flags.py.

Gas Town's plugins call ``gt escalate``, ``bd create`` and ``gt stale`` in a
dozen shapes; a flag missing from a parser breaks a plugin, a flag missing
from the docs misleads its author.  The table is the single source of both.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtcore.core.errors import Refused
from gtcore.escalation.escalations import fingerprint_label
from gtcore.town.sessions import SessionHealth
from gtui import cli
from gtui.shims import flags

DOCS = Path(__file__).resolve().parent.parent / "docs" / "gastown.md"


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string a parser accepts, help aside."""
    return {option for action in parser._actions for option in action.option_strings if option not in ("-h", "--help")}


def subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def documented(command: flags.Command) -> set[str]:
    """The flags docs/gastown.md lists in the table under ``#### `<command name> ...```."""
    text = DOCS.read_text(encoding="utf-8")
    section = re.search(rf"^#### `{re.escape(command.name)}\b[^\n]*\n(.*?)(?=^#### |<!-- flags:end -->)", text, re.M | re.S)
    assert section, f"docs/gastown.md has no section for {command.name}"
    return {name for row in re.findall(r"^\| (.+?) \|", section.group(1), re.M) for name in re.findall(r"`(-[^`]+)`", row)}


def table(command: flags.Command) -> set[str]:
    return {name for flag in command.flags for name in flag.names}


def test_the_docs_hold_exactly_the_generated_reference() -> None:
    text = DOCS.read_text(encoding="utf-8")
    inside = text.split("<!-- flags:begin -->\n", 1)[1].split("<!-- flags:end -->", 1)[0]
    assert inside == flags.reference(), "docs/gastown.md is out of date: run python -m gtui.shims.flags and paste its output"


@pytest.mark.parametrize("command", [flags.ESCALATE, flags.BD_CREATE, flags.STALE, flags.PLUGIN_RECORD_RUN, flags.SESSION_HEALTH],
                         ids=lambda command: command.name)
def test_the_command_the_docs_and_the_table_agree(command: flags.Command) -> None:
    assert documented(command) == table(command)
    assert options_of(command.parser()) == table(command)  # what the plugin-facing gt/bd parse


def test_gtui_escalate_and_gtui_stale_take_the_same_flags_as_gt() -> None:
    parser = cli.build_parser()
    common = {"--town", "--read-only"}
    assert options_of(subparser(parser, "escalate", "raise")) - common == table(flags.ESCALATE)
    assert options_of(subparser(parser, "stale")) - common == table(flags.STALE)


@pytest.mark.parametrize("argv, expected", [
    (["-s", "MEDIUM", "--reason", "two\nlines", "compactor-dog:", "no", "databases"],
     {"severity": "MEDIUM", "reason": "two\nlines", "words": ["compactor-dog:", "no", "databases"]}),
    (["Plugin FAILED: git-hygiene", "--severity", "low", "--reason", "x"], {"severity": "low", "words": ["Plugin FAILED: git-hygiene"]}),
    (["Mass agent death", "-s", "CRITICAL"], {"severity": "CRITICAL", "reason": None}),
])
def test_gt_escalate_parses_the_shapes_gas_towns_plugins_use(argv: list[str], expected: dict[str, object]) -> None:
    parsed = vars(flags.ESCALATE.parser().parse_args(argv))
    assert {key: parsed[key] for key in expected} == expected


@pytest.mark.parametrize("argv, title, labels, description", [
    (["summary text", "-t", "chore", "--ephemeral", "-l", "type:plugin-run,plugin:x,result:success", "-d", "why", "--silent"],
     "summary text", ["type:plugin-run", "plugin:x", "result:success"], "why"),
    (["--title", "dolt-backup: ok", "-t", "chore", "--ephemeral", "-l", "type:plugin-run,plugin:dolt-backup,result:success"],
     None, ["type:plugin-run", "plugin:dolt-backup", "result:success"], None),
    (["--wisp-type", "patrol", "--labels", "type:plugin-run,plugin:rebuild-gt,rig:gastown,result:skipped",
      "--description", "Skipped: not safe", "Plugin: rebuild-gt [skipped]"],
     "Plugin: rebuild-gt [skipped]", ["type:plugin-run", "plugin:rebuild-gt", "rig:gastown", "result:skipped"], "Skipped: not safe"),
    (["t", "-l", "a:1", "--label", "b:2", "-l", "c:3,d:4"], "t", ["a:1", "b:2", "c:3", "d:4"], None),
])
def test_bd_create_parses_the_shapes_gas_towns_plugins_use(argv: list[str], title: str | None, labels: list[str],
                                                           description: str | None) -> None:
    parsed = flags.BD_CREATE.parser().parse_args(argv)
    assert (parsed.title, parsed.labels, parsed.description) == (title, labels, description)


@pytest.mark.parametrize("command, argv, said", [
    (flags.ESCALATE, ["--subject=Plugin FAILED", "--body=err"], "unknown flag: --subject"),  # the first, as pflag stops there
    (flags.ESCALATE, ["boom", "-s", "high", "--dedupe-key", "x"], "unknown flag: --dedupe-key"),
    (flags.PLUGIN_RECORD_RUN, ["--plug", "p", "--result", "ok"], "unknown flag: --plug"),  # pflag never abbreviates
    (flags.PLUGIN_RECORD_RUN, ["--plugin", "p", "--result", "ok", "--desc", "d"], "unknown flag: --desc"),
    (flags.PLUGIN_RECORD_RUN, ["--plugin", "p", "--result"], "flag needs an argument: --result"),
    (flags.ESCALATE, ["boom", "-x"], "unknown shorthand flag: 'x' in -x"),
    (flags.ESCALATE, ["boom", "-ns"], "flag needs an argument: 's' in -ns"),
    (flags.STALE, ["--json=maybe"], 'invalid argument "maybe" for "--json" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
    (flags.SESSION_HEALTH, ["gt-nux", "gt-furiosa"], "accepts at most 1 arg(s), received 2"),  # ExactArgs(1): refused
])
def test_a_mistake_is_refused_in_pflags_words(command: flags.Command, argv: list[str], said: str) -> None:
    with pytest.raises(Refused) as refused:
        command.parse(argv)
    assert str(refused.value) == said


@pytest.mark.parametrize("argv, expected", [
    (["--title", "-x", "--description", "--desc"], {"title": "-x", "description": "--desc"}),  # the next word, whatever it is
    (["--title=-y", "--rig", "-"], {"title": "-y", "rig": "-"}),
    (["-l", "a:1,b:2", "--label=c:3"], {"labels": ["a:1", "b:2", "c:3"]}),  # bd create splits what gt hands it
    (["--title", "two", "words", "--", "--rig", "x"], {"title": "two", "rig": None}),  # -- ends the flags: words, ignored
])
def test_record_run_reads_values_as_pflag_does(argv: list[str], expected: dict[str, object]) -> None:
    parsed = flags.PLUGIN_RECORD_RUN.parse(["--plugin", "p", "--result", "success", *argv])
    assert {key: getattr(parsed.args, key) for key in expected} == expected
    assert parsed.strays == (3 if "--" in argv else 0)  # "words", and "--rig" and "x" after --


def test_switches_take_gos_booleans_and_shorthands_go_together() -> None:
    assert vars(flags.STALE.parse(["-q=false", "--json=True"]).args) == {"json": True, "quiet": False}
    assert vars(flags.ESCALATE.parse(["boom", "-nsHIGH"]).args) == {
        "words": ["boom"], "severity": "HIGH", "reason": None, "source": None, "related": None, "fingerprint": None, "stdin": False,
        "dry_run": True, "json": False}


# -- the flags Gas Town's plugins took since April (649b832b), for any value -------------------------------------

VALUES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)  # any text, "-x" included


@given(plugin=VALUES, result=VALUES, title=VALUES, description=VALUES, rig=VALUES, labels=st.lists(VALUES, max_size=4),
       order=st.randoms(use_true_random=False), joined=st.booleans())
def test_record_run_takes_every_value_whole_in_any_order(plugin: str, result: str, title: str, description: str, rig: str,
                                                         labels: list[str], order: object, joined: bool) -> None:
    """gt's flags are a StringVar each, read as pflag reads them: the next word is the value whatever it looks like (or the
    rest of ``--flag=VALUE``); each -l is split on commas by the bd create Gas Town hands it to."""
    pairs = [["--plugin", plugin], ["--result", result], ["--title", title], ["--description", description], ["--rig", rig],
             *(["-l" if index % 2 else "--label", label] for index, label in enumerate(labels))]
    order.shuffle(pairs)  # type: ignore[attr-defined]
    words = [word for name, value in pairs for word in ([f"{name}={value}"] if joined and name.startswith("--") else [name, value])]
    parsed = flags.PLUGIN_RECORD_RUN.parse(words)
    args = parsed.args
    assert (args.plugin, args.result, args.title, args.description, args.rig, parsed.strays) == (
        plugin, result, title, description, rig, 0)
    assert args.labels == [part.strip() for name, value in pairs if name in ("-l", "--label") for part in value.split(",")
                           if part.strip()]  # in the order given


GO_WHITESPACE = "".join(map(chr, (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                                    0x202F, 0x205F, 0x3000)))
"""Go's ``unicode.IsSpace``, written out from its documentation (not from gtui's table): what ``strings.TrimSpace`` trims."""


@given(key=st.text(max_size=60), padding=st.tuples(st.text(GO_WHITESPACE, max_size=3), st.text(GO_WHITESPACE, max_size=3)))
def test_a_fingerprint_is_gas_towns_label_of_the_trimmed_key(key: str, padding: tuple[str, str]) -> None:
    label = fingerprint_label(padding[0] + key + padding[1])
    trimmed = key.strip(GO_WHITESPACE)
    if not trimmed:
        assert label is None  # a blank fingerprint is none, as in Gas Town
        return
    digest = hashlib.sha256(trimmed.encode("utf-8", "surrogateescape")).hexdigest()
    assert label == f"escalation-fp:{digest[:12]}" == fingerprint_label(trimmed)
    assert flags.ESCALATE.parse(["subject", f"--fingerprint={key}"]).args.fingerprint == key  # kept as given: hashed, not stored


def test_a_fingerprint_keeps_what_go_does_not_trim() -> None:
    assert fingerprint_label("\x1ckey") != fingerprint_label("key")  # Python's strip() would drop \x1c; Go's TrimSpace keeps it
    assert fingerprint_label("\u3000key\u00a0") == fingerprint_label("key")
    assert fingerprint_label("key\udcff") == "escalation-fp:" + hashlib.sha256(b"key\xff").hexdigest()[:12]  # the bytes given


@given(session=VALUES.filter(lambda text: text and not text.startswith("-")), seconds=st.floats(min_value=-1e9, max_value=1e9,
                                                                                                  allow_nan=False))
def test_session_health_answers_in_gas_towns_shape(session: str, seconds: float) -> None:
    parsed = flags.SESSION_HEALTH.parse([session, "--json", "--max-inactivity", f"{seconds}s"]).args  # "-1e9s" is a value too
    assert (parsed.session, parsed.json, parsed.max_inactivity) == (session, True, f"{seconds}s")
    for status in ("healthy", "session-dead", "agent-dead", "agent-hung"):
        shown = SessionHealth(session, status, seconds).to_json()
        assert list(shown) == ["session", "status", "healthy", "zombie", "max_inactivity_seconds"]
        assert shown["max_inactivity_seconds"] == int(seconds)  # Go's int64(d.Seconds()): toward zero
        assert (shown["healthy"], shown["zombie"]) == (status == "healthy", status in ("agent-dead", "agent-hung"))
