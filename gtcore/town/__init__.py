"""The town: where it is and what it holds (rigs, crews), its settings, its event log, its tmux sessions, stale binaries."""
