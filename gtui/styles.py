"""Colours shared by the command line and the control room, so a failure looks the same in both."""

RESULT_STYLE = {"success": "green", "failure": "bold red", "timeout": "bold red", "abandoned": "yellow",
                "skipped": "dim", "running": "cyan"}
SEVERITY_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}

# The control room's cells: said without colour too (NO_COLOR), by a mark or by bold and reverse.
RESULT_MARK = {"failure": "✗ ", "timeout": "✗ ", "abandoned": "! "}
SEVERITY_CELL_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red", "critical": "bold reverse red"}
