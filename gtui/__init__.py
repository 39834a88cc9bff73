"""gtui: the Gas Town control room (Textual TUI) and command line."""

from gtcore import __version__

__all__ = ["__version__"]
