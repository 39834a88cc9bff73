"""What the panes' keys do to their selected rows: run, pause, details, logs, stop, acknowledge, close.

A mixin of :class:`~gtui.tui.app.GtuiApp` (kept apart so the app module stays about
threads, messages and the screen): the app's ``pane_actions`` table maps each
pane's action to one of these.  Whatever reads or writes the ledger runs in a
thread worker and speaks back through ``call_from_thread``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import work

from gtcore.core.errors import GtError
from gtcore.model import TYPE_CHECKING, parse_ref
from gtui.tui.components.bindings import key_display
from gtui.tui.screens.modals import AskScreen, ConfirmScreen

if TYPE_CHECKING:
    from textual.app import App

    from gtcore.engine import Engine
    from gtcore.model import Bead
    from gtui.tui.state import Snapshot

    class _Host(App[None]):
        """What the mixin may use of its app, for the type checker only: an ``App`` (notify, push_screen,
        call_from_thread) with the two methods :class:`~gtui.tui.app.GtuiApp` adds for it."""

        def effective_keys(self) -> dict[str, str]:
            raise NotImplementedError

        def request_refresh(self, rescan: bool = False) -> None:
            raise NotImplementedError
else:
    _Host = object  # at run time a plain mixin: GtuiApp's bases, and so Textual's view of its class, stay as they were


class PaneActions(_Host):
    """The panes' row actions, for :class:`~gtui.tui.app.GtuiApp` (an ``App``: notify, push_screen, call_from_thread)."""

    engine: Engine | None
    snapshot: Snapshot | None
    clock: Callable[[], float]

    def _plugin(self, key: str) -> Any:
        plugin_set = self.snapshot.plugin_set if self.snapshot else None
        if key.startswith("invalid:"):
            bad = next((item for item in plugin_set.invalid if f"invalid:{item.path}" == key), None) if plugin_set else None
            self.notify(f"{bad.location()}: {bad.error}" if bad else key, title="Invalid plugin", severity="error")
            return None
        plugin = plugin_set.get(key) if plugin_set else None
        if plugin is None:
            self.notify(f"no plugin {key}", severity="warning")
        return plugin

    def _plugins_run(self, key: str) -> None:
        plugin = self._plugin(key)
        if plugin is None:
            return
        keys = self.effective_keys()
        force, pause = key_display(keys["plugins.force_run"]), key_display(keys["plugins.pause"])
        if not plugin.runs_by_itself:  # the engine's words are the command line's ("use --force"): here it is a key
            self.notify(f"plugin {key} is {plugin.disabled_reason}; press {force} to run it anyway", title="Not run", severity="warning")
            return
        if self.snapshot is not None and key in self.snapshot.paused:
            reason = self.snapshot.paused[key]
            self.notify(f"plugin {key} is paused{': ' + reason if reason else ''}; press {pause} to resume it, or {force} to run it anyway",
                        title="Not run", severity="warning")
            return
        self.run_plugin(key, force=False)

    def _plugins_force_run(self, key: str) -> None:
        if self._plugin(key):
            self.run_plugin(key, force=True)

    @work(thread=True, group="actions")
    def run_plugin(self, name: str, force: bool) -> None:
        assert self.engine is not None
        try:
            run = self.engine.run_plugin(name, force=force)
        except GtError as exc:
            self.call_from_thread(self.notify, self._in_tui_words(str(exc)), title="Not run", severity="warning")
            return
        waits = f"; it waits: {self.engine.kennel_problem}" if self.engine.kennel_problem else ""
        self.call_from_thread(self.notify, f"{name} queued for a dog as {run.ref}{waits}", title="Run" + (" (forced)" if force else ""),
                              severity="warning" if waits else "information")
        self.request_refresh()

    def _in_tui_words(self, message: str) -> str:
        """The engine speaks to the command line ("use --force"); in the control room that is a key."""
        keys = self.effective_keys()
        force, pause = key_display(keys["plugins.force_run"]), key_display(keys["plugins.pause"])
        return (message.replace("resume it or use --force", f"press {pause} to resume it, or {force} to run it anyway")
                .replace("use --force to run it anyway", f"press {force} to run it anyway"))

    def _plugins_toggle_pause(self, key: str) -> None:
        """``space``: resume a paused plugin at once; pause one after asking why (escape cancels, no reason is fine)."""
        if self.snapshot is not None and key in self.snapshot.paused:
            self.set_pause(key, False, "")
            return

        def answered(reason: str | None) -> None:
            if reason is not None:
                self.set_pause(key, True, reason)

        self.push_screen(AskScreen(f"Pause {key}: why? (optional)", placeholder="a reason, kept with the pause (or none)",
                                   allow_empty=True), answered)

    @work(thread=True, group="actions")
    def set_pause(self, key: str, paused: bool, reason: str) -> None:
        assert self.engine is not None
        try:
            changed = self.engine.set_paused(key, paused, reason)
        except GtError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        if changed:
            self.call_from_thread(self.notify, f"{key} {'paused' if paused else 'resumed'}" + (f": {reason}" if reason else ""))
        else:  # the screen was behind the ledger (another process, or a second press): say what is so, not what was meant
            words = f"{key} is paused already" if paused else f"{key} is not paused: nothing to resume"
            self.call_from_thread(self.notify, words, severity="warning")
        self.request_refresh()

    def _plugins_details(self, key: str) -> None:
        from gtui.tui.screens.details import PluginDetailsScreen  # on first use: Markdown (markdown-it, Pygments) is 3 MB a
        # control room that never opens a details screen does not need to hold

        plugin = self._plugin(key)
        if plugin is not None and self.engine is not None and self.snapshot is not None:
            self.push_screen(PluginDetailsScreen(self.engine, plugin, self.snapshot.decisions.get(key), self.clock))

    def _plugins_log(self, key: str) -> None:
        if self._plugin(key):
            self.open_latest_log(key)

    @work(thread=True, group="actions")
    def open_latest_log(self, plugin: str) -> None:
        assert self.engine is not None
        runs = self.engine.runs(plugin, limit=1)
        if not runs:
            self.call_from_thread(self.notify, f"{plugin} has not run yet", severity="warning")
            return
        self.call_from_thread(self._push_log, runs[0])

    @work(thread=True, group="actions")
    def open_run_log(self, run_id: int) -> None:
        assert self.engine is not None
        try:
            run = self.engine.run(run_id)
        except GtError as exc:
            self.call_from_thread(self.notify, str(exc), severity="warning")
            return
        self.call_from_thread(self._push_log, run)

    def _push_log(self, run: Bead) -> None:
        from gtui.tui.screens.log_viewer import LogScreen  # on first use, as the details screens (see _plugins_details)

        assert self.engine is not None
        self.push_screen(LogScreen(self.engine, run))

    @staticmethod
    def _run_of(key: str) -> int | None:
        """The run id behind a dogs- or feed-pane row key (``run:run-12``, ``12:running``); None for a kennel or an idle dog."""
        if key.startswith("run:"):
            return parse_ref(key.split(":", 1)[1], "wisp")
        if key[:1].isdigit():
            return int(key.split(":", 1)[0])
        return None

    def _plugin_of_run(self, key: str) -> str | None:
        run_id = self._run_of(key)
        if run_id is None or self.snapshot is None:
            return None
        known = [*self.snapshot.feed, *self.snapshot.running]
        return next((run.plugin for run in known if run.id == run_id), None)

    def _feed_details(self, key: str) -> None:
        plugin = self._plugin_of_run(key)
        if plugin:
            self._plugins_details(plugin)

    def _feed_log(self, key: str) -> None:
        run_id = self._run_of(key)
        if run_id is not None:
            self.open_run_log(run_id)

    def _stop_run(self, key: str) -> None:
        """``ctrl+k``: stop the selected run, whichever kennel runs it, after asking."""
        run_id = self._run_of(key)
        known = [*(self.snapshot.running if self.snapshot else ())]
        run = next((run for run in known if run.id == run_id), None)
        if run is None:
            self.notify("no run in flight is selected", title="Not stopped", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.stop_run(run.id)

        where = "it has not started: it leaves the queue" if run.status == "queued" else "its processes get SIGTERM, then SIGKILL"
        self.push_screen(ConfirmScreen(f"Stop {run.ref} ({run.plugin})?", f"{where.capitalize()}; it is recorded as abandoned.",
                                       yes="Stop"), confirmed)

    @work(thread=True, group="actions")
    def stop_run(self, run_id: int) -> None:
        assert self.engine is not None
        try:
            run = self.engine.stop_run(run_id, "stopped from the control room (ctrl+k)")
        except GtError as exc:
            self.call_from_thread(self.notify, str(exc), title="Not stopped", severity="warning")
            return
        words = f"{run.ref} left the queue" if run.status == "closed" else f"{run.ref} is being stopped by its kennel"
        self.call_from_thread(self.notify, words, title="Stop")
        self.request_refresh()

    def _escalations_ack(self, key: str) -> None:
        self.escalation_change(key, "ack", "")

    def _escalations_close(self, key: str) -> None:
        def closed(reason: str | None) -> None:
            if reason:
                self.escalation_change(key, "close", reason)

        self.push_screen(AskScreen(f"Close {key}: why?", placeholder="reason (kept on the escalation)"), closed)

    @work(thread=True, group="actions")
    def escalation_change(self, ref: str, change: str, reason: str) -> None:
        assert self.engine is not None
        now = self.clock()
        try:
            if change == "ack":
                self.engine.ack_escalation(ref, now=now)
            else:
                self.engine.close_escalation(ref, reason=reason, now=now)
        except GtError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.call_from_thread(self.notify, f"{ref} {'acknowledged' if change == 'ack' else 'closed'}")
        self.request_refresh()

    def _escalations_details(self, key: str) -> None:
        from gtui.tui.screens.details import EscalationDetailsScreen  # on first use, as the plugin's (see _plugins_details)

        snapshot = self.snapshot
        item = next((item for item in snapshot.escalations if item.ref == key), None) if snapshot else None
        if item is not None and snapshot is not None and snapshot.escalation_settings is not None:
            self.push_screen(EscalationDetailsScreen(item, snapshot.escalation_settings, self.clock()))
