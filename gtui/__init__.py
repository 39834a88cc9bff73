"""gtui: the Gas Town control room (Textual TUI) and command line."""

from gtcore.model import __version__

__all__ = ["__version__"]
