"""Every key of the control room, in one table without Textual: what builds the bindings, the help, and checks a keymap.

Each :class:`Key` has the id a ``[keymap]`` entry of ``gtui.toml`` names, its
default keys, the action it runs, what it says in the footer and help, and
the context it lives in (``app`` keys work on the main screen, the screenshot
on every screen; a pane's keys when that pane is focused; ``scroll`` keys on
the log, help and details screens; a screen's on that screen).  The TUI builds its
``Binding`` objects from here; ``gtui --once`` checks a keymap against the
same table without importing Textual.

A keymap is checked before anything of it is applied: an unknown id, two
keys of one context on the same key, a key that would shadow an ``app`` key
from a pane, and anything mapped onto the keys of quit or help (which must
always work) are problems, and such an entry is not applied.  Everything
else of the keymap is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gtcore.model import TYPE_CHECKING, Problem

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Key:
    id: str
    keys: str  # Textual key names, comma-separated: "escape,q"
    action: str
    description: str
    context: str  # "app", a pane ("plugins", "dogs", "feed", "escalations"), or a screen ("details", "log", ...)
    show: bool = True  # in the footer
    everywhere: bool = False  # works on every screen, dialogs and help included (a Textual priority binding)


PANES = ("plugins", "dogs", "feed", "escalations")
SCROLLING = ("log", "help", "details", "escalation")  # the screens that scroll with the keys of context "scroll"

KEYS: tuple[Key, ...] = (
    Key("patrol", "p", "patrol", "Patrol now", "app"),
    Key("digest", "d", "digest", "Digest", "app"),
    Key("filter", "slash", "filter", "Filter", "app"),
    Key("maximize", "z", "maximize", "Maximize", "app"),
    Key("help", "question_mark", "help", "Help", "app"),
    Key("quit", "q,ctrl+c", "quit_app", "Quit", "app"),
    Key("screenshot", "ctrl+s", "screenshot", "Save a screenshot (in the town's .gtui/)", "app", show=False, everywhere=True),
    Key("focus.plugins", "1", "focus_pane('plugins')", "Plugins", "app", show=False),
    Key("focus.dogs", "2", "focus_pane('dogs')", "Dogs", "app", show=False),
    Key("focus.feed", "3", "focus_pane('feed')", "Feed", "app", show=False),
    Key("focus.escalations", "4", "focus_pane('escalations')", "Escalations", "app", show=False),
    Key("plugins.run", "r", "act('run')", "Run", "plugins"),
    Key("plugins.force_run", "f", "act('force_run')", "Force run", "plugins"),
    Key("plugins.pause", "space", "act('toggle_pause')", "Pause/resume", "plugins"),
    Key("plugins.details", "enter", "act('details')", "Details", "plugins"),
    Key("plugins.log", "l", "act('log')", "Log", "plugins"),
    Key("dogs.details", "enter", "act('details')", "Details", "dogs"),
    Key("dogs.log", "l", "act('log')", "Log", "dogs"),
    Key("dogs.stop", "ctrl+k", "act('stop')", "Stop run", "dogs"),
    Key("feed.details", "enter", "act('details')", "Details", "feed"),
    Key("feed.log", "l", "act('log')", "Log", "feed"),
    Key("feed.stop", "ctrl+k", "act('stop')", "Stop run", "feed"),
    Key("escalations.ack", "a", "act('ack')", "Acknowledge", "escalations"),
    Key("escalations.close", "x", "act('close')", "Close", "escalations"),
    Key("escalations.details", "enter", "act('details')", "Details", "escalations"),
    # moving in any pane, k9s and lazygit style (context "table": every pane has them)
    Key("table.down", "j,down", "cursor_down", "Down", "table", show=False),
    Key("table.up", "k,up", "cursor_up", "Up", "table", show=False),
    Key("table.top", "g,home", "top", "Top", "table", show=False),
    Key("table.bottom", "G,end", "bottom", "Bottom", "table", show=False),
    Key("table.page_down", "ctrl+d,pagedown", "page_down", "Page down", "table", show=False),
    Key("table.page_up", "ctrl+u,pageup", "page_up", "Page up", "table", show=False),
    Key("table.sort", "s", "sort_next", "Sort by next column", "table", show=False),
    Key("table.reverse", "S", "sort_reverse", "Reverse the sort", "table", show=False),
    Key("table.clear_filter", "escape", "clear_filter", "Clear the filter", "table", show=False),
    # screens
    Key("details.back", "escape,q", "app.pop_screen", "Back", "details"),
    Key("details.log", "l", "log", "Log", "details"),
    Key("escalation.ack", "a", "ack", "Acknowledge", "escalation"),
    Key("escalation.close", "x", "close", "Close", "escalation"),
    Key("escalation.log", "l", "log", "Run log", "escalation"),
    Key("escalation.back", "escape,q", "app.pop_screen", "Back", "escalation"),
    Key("log.search", "slash", "search", "Search", "log"),
    Key("log.next", "n", "next_match", "Next match", "log"),
    Key("log.previous", "N", "previous_match", "Previous match", "log"),
    Key("log.wrap", "w", "toggle_wrap", "Wrap", "log"),
    Key("log.back", "escape,q", "back", "Back (a search is cleared first)", "log"),
    Key("help.close", "escape,q,question_mark", "app.pop_screen", "Close", "help"),
    # scrolling the log, help and details screens with the panes' keys (context "scroll": each of those screens has them)
    Key("scroll.down", "j,down", "line_down", "Down", "scroll", show=False),
    Key("scroll.up", "k,up", "line_up", "Up", "scroll", show=False),
    Key("scroll.left", "left", "column_left", "Left (a log that is not wrapped)", "scroll", show=False),
    Key("scroll.right", "right", "column_right", "Right", "scroll", show=False),
    Key("scroll.top", "g,home", "to_top", "Top", "scroll", show=False),
    Key("scroll.bottom", "G,end", "to_bottom", "Bottom", "scroll", show=False),
    Key("scroll.page_down", "ctrl+d,pagedown", "half_page_down", "Half a page down", "scroll", show=False),
    Key("scroll.page_up", "ctrl+u,pageup", "half_page_up", "Half a page up", "scroll", show=False),
    Key("confirm.yes", "y", "answer(True)", "Yes", "confirm"),
    Key("confirm.no", "n,escape", "answer(False)", "No", "confirm"),
    Key("ask.cancel", "escape", "cancel", "Cancel", "ask"),
)
BY_ID = {key.id: key for key in KEYS}
ALWAYS = ("quit", "help")  # their keys are never taken by anything else: a person can always leave and ask
_NAMES = {"?": "question_mark", "/": "slash", " ": "space", "return": "enter", "esc": "escape"}


def keys_of(spec: str) -> list[str]:
    """A comma-separated key list, each key as Textual names it (``?`` is ``question_mark``)."""
    return [_NAMES.get(part.strip(), part.strip()) for part in spec.split(",") if part.strip()]


def contexts_meeting(context: str) -> set[str]:
    """The contexts whose keys are live together with ``context``'s (a pane's keys meet the app's and the table's)."""
    if context == "app":
        return {"app", "table", *PANES}
    if context in PANES:
        return {"app", "table", context}
    if context == "table":
        return {"app", "table", *PANES}
    if context == "scroll":
        return {"scroll", *SCROLLING}
    if context in SCROLLING:
        return {context, "scroll"}
    return {context}


def check_keymap(keymap: Mapping[str, str], path: Path | None = None) -> tuple[dict[str, str], list[Problem]]:
    """The part of ``keymap`` that may be applied (id -> keys, Textual names), and a problem for each entry that may not."""
    where = str(path or "settings/gtui.toml")
    problems: list[Problem] = []
    wanted: dict[str, str] = {}
    for key_id, spec in keymap.items():
        if key_id not in BY_ID:
            import difflib  # only for an id that is not one

            guess = difflib.get_close_matches(key_id, list(BY_ID), n=1)
            hint = f"did you mean '{guess[0]}'? " if guess else ""
            problems.append(Problem(where, f"keymap.{key_id}", f"is not a binding id ({hint}the ids are on the help screen, key ?)"))
        elif not keys_of(spec):
            problems.append(Problem(where, f"keymap.{key_id}", "names no key"))
        else:
            wanted[key_id] = ",".join(keys_of(spec))
    applied = dict(wanted)
    for key_id, spec in wanted.items():
        problem = _clash(key_id, keys_of(spec), {**{k.id: k.keys for k in KEYS}, **applied})
        if problem:
            problems.append(Problem(where, f"keymap.{key_id}", f"{problem}: not applied, it keeps {BY_ID[key_id].keys!r}"))
            del applied[key_id]
    return applied, problems


def _clash(key_id: str, keys: list[str], current: dict[str, str]) -> str | None:
    """Why ``keys`` cannot go to ``key_id`` given every other binding's keys (None when they can)."""
    mine = BY_ID[key_id]
    for other in KEYS:
        if other.id == key_id or other.context not in contexts_meeting(mine.context):
            continue
        taken = set(keys) & set(keys_of(current[other.id]))
        if not taken:
            continue
        shown = ", ".join(sorted(taken))
        if other.id in ALWAYS and key_id not in ALWAYS:
            return f"{shown} is the key of {other.id}, which must always work"
        return f"{shown} is already the key of {other.id}"
    return None


def effective(keymap: Mapping[str, str]) -> dict[str, str]:
    """Every binding id with the keys it has under ``keymap`` (after the check: only applied entries count)."""
    applied, _ = check_keymap(keymap)
    return {key.id: applied.get(key.id, key.keys) for key in KEYS}
