"""The one safe path to the terminal: whatever the command line prints goes through here.

Text from plugins, run logs, escalations and paths may hold escape sequences
(OSC 52 writes the clipboard, ``ESC [2J`` clears the screen) or markup
(``[red]`` in a directory name).  :func:`safe` strips control sequences from
every piece of text before it is drawn, cells are literal ``Text`` (never
markup), and the stream under the console lets through only the colour codes
Rich itself writes, so nothing a plugin wrote can reach the terminal as a command.
"""

from __future__ import annotations

import re
import sys

from gtcore.model import TYPE_CHECKING, clean

if TYPE_CHECKING:
    from typing import IO, Any

    from rich.console import Console
    from rich.text import Text

PIPE_WIDTH = 160  # output to a file or pipe: wide lines beat tables squeezed to 80 columns
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def safe(text: object) -> str:
    """Text fit to print: no escape sequence, no control character but tab and newline."""
    return clean("" if text is None else str(text))


def read_stdin() -> str:
    """Standard input as text (``--stdin``): bytes that are not UTF-8 become U+FFFD, never an error that loses the rest."""
    return sys.stdin.buffer.read().decode("utf-8", "replace")


class SafeStream:
    """A text stream that drops every escape sequence except colours (SGR), the last line of defence."""

    def __init__(self, target: IO[str]) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(_ESCAPES.sub(lambda match: match.group(0) if _SGR.fullmatch(match.group(0)) else "", text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def console(stream: IO[str] | None = None) -> Console:
    """A Rich console over :class:`SafeStream`; imported only when a person reads the output."""
    from typing import cast  # free: Rich, imported next, imports typing itself

    from rich.console import Console

    target = stream or sys.stdout
    return Console(file=cast("IO[str]", SafeStream(target)), highlight=False, soft_wrap=True, width=None if target.isatty() else PIPE_WIDTH)


def plain(*parts: object | tuple[object, str]) -> str:
    """The same line as :func:`text`, without its styles: for a pipe or a file."""
    return "".join(safe(part[0] if type(part) is tuple else part) for part in parts)


def text(*parts: object | tuple[object, str]) -> Text:
    """A line of literal, safe text from parts (``(value, style)`` pairs take a style)."""
    from rich.text import Text

    line = Text()
    for part in parts:
        value, style = part if type(part) is tuple else (part, "")  # a record (a NamedTuple) is a value, not (value, style)
        line.append(safe(value), style=style)
    return line
