"""Textual ``Binding`` objects built from the one table of keys (:data:`gtui.tui.keys.KEYS`).

Nothing in the TUI writes a ``Binding`` of its own: each widget or screen asks
for the bindings of its context here, so the footer, the help screen, the
command palette and a ``[keymap]`` of ``gtui.toml`` all speak of the same ids
and keys.
"""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.keys import format_key

from gtui.tui.keys import KEYS, Key, keys_of

# The keys a person must always find in the footer: they come first there, whatever else is shown.
FOOTER_FIRST = ("help", "quit")


def binding(key: Key) -> Binding:
    return Binding(key.keys, key.action, key.description, show=key.show, id=key.id, priority=key.everywhere)


def bindings(*contexts: str) -> list[BindingType]:
    """The bindings of ``contexts``, in the table's order."""
    return [binding(key) for key in KEYS if key.context in contexts]


def keys_in_context(context: str) -> list[Key]:
    return [key for key in KEYS if key.context == context]


def key_display(spec: str) -> str:
    """Keys as the footer writes them (``?``, ``/``, ``⏎``; not ``question_mark``), comma-separated."""
    return ", ".join(format_key(part) for part in keys_of(spec))
