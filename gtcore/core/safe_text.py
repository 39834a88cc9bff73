"""Make untrusted text safe to show: no terminal control sequences get through (the face shows it, the engine keeps it).

Text from plugins, run logs and escalations may hold ANSI escapes or other
control characters; they are stripped, while tabs and newlines are kept.
Markup safety is separate: callers wrap text in ``rich.text.Text`` so that
``[bold]`` is shown as written.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Strip escape sequences and control characters (but keep ``\\t`` and ``\\n``)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def one_line(text: str) -> str:
    """Collapse any line breaks: a subject can never inject a header or a second line."""
    return " ".join(text.split())
