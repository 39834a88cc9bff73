"""gtcore: the Gas Town plugin engine (no user interface here).

The engine discovers plugins, evaluates their gates, runs them on dogs and
records every run on the ledger.  The terminal control room (``gtui``) and the
command line talk to it through plain Python calls and events.
"""

__version__ = "0.1.0"
