"""The plugin-facing ``gt`` and ``bd``: the commands Gas Town's plugins call, answered by gtui.

Every run finds them first on its PATH (``<town>/.gtui/bin``).  They speak
Gas Town's flags and JSON shapes (:mod:`gtui.shims.flags` is the one table of
those flags, for the commands and for docs/gastown.md); what gtui does not
provide is handed to a real ``gt`` or ``bd`` found later on PATH.
"""
