"""Widgets of the control room: the four panes and the header."""
