"""The statements both backends run, written once (SQLite's words, see :mod:`gtcore.storage.dialect`) and built once
per backend when its module loads: no statement text is formatted on a hot path, only a list's marks in SQLite."""

from __future__ import annotations

from gtcore.storage.dialect import Dialect
from gtcore.storage.shared import STATS_COLUMNS

COLUMNS = "id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data"
"""A bead row's columns, in :meth:`gtcore.core.beads.Bead.from_row`'s order."""

_LIVE = " AND escalation_id IN (SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed')"


class Statements:
    """Every shared statement in one dialect's words."""

    def __init__(self, d: Dialect) -> None:
        s = d.sql
        # beads
        self.insert_bead = s("INSERT INTO beads (kind, title, status, body, created_at, updated_at, plugin, rig, result, data)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?){returning}", returning=d.returning_id)
        self.add_label = s(d.ignore("INSERT INTO labels VALUES (?, ?)"))
        self.set_label = s("INSERT INTO labels VALUES (?, ?)")
        self.drop_label = s("DELETE FROM labels WHERE bead_id = ? AND label = ?")
        self.drop_labels = s("DELETE FROM labels WHERE bead_id = ? AND label IN (?...)")
        self.drop_prefixed = s("DELETE FROM labels WHERE bead_id = ? AND {prefixed}", prefixed=d.starts_with("label"))
        self.update_bead = s("UPDATE beads SET status = ?, data = ?, updated_at = ?, closed_at = ? WHERE id = ?")
        self.set_body = s("UPDATE beads SET body = ? WHERE id = ?")
        self.set_data = s("UPDATE beads SET data = ?, updated_at = ? WHERE id = ?")
        self.set_closed_at = s("UPDATE beads SET closed_at = ? WHERE id = ?")
        self.labels_of = s("SELECT bead_id, label FROM labels WHERE bead_id IN (?...)")
        self.beads_in = s(f"SELECT {COLUMNS} FROM beads WHERE id IN (?...)")
        self.beads_after = s(f"SELECT {COLUMNS} FROM beads WHERE id > ? ORDER BY id LIMIT ?")
        self.delete = [s(f"DELETE FROM {table} WHERE {{ids}}", ids=d.ids(column))
                       for table, column in (("labels", "bead_id"), ("run_ends", "run_id"), ("beads", "id"))]
        # the filters of beads() and find()
        self.kind_is = s("kind = ?")
        self.kind_among = s("kind IN (?...)")
        self.status_among = s("status IN (?...)")
        self.labelled = s("id IN (SELECT bead_id FROM labels WHERE label = ?)")
        self.plugin_is = s("plugin = ?")
        self.created_after = s("created_at > ?")
        self.any_bead = s("SELECT 1 FROM labels JOIN beads ON beads.id = labels.bead_id WHERE labels.label = ? AND beads.kind = ?"
                          " AND beads.status IN (?...) LIMIT 1")
        # runs
        self.last_run = s("SELECT last_run_id, last_result FROM plugin_stats WHERE plugin = ?")
        self.take = s("UPDATE beads SET status = 'running', result = 'running', updated_at = ?, data = ? WHERE id = ?")
        self.close = s("UPDATE beads SET status = 'closed', result = ?, body = ?, closed_at = ?, updated_at = ?, data = ? WHERE id = ?")
        self.run_rows = s(f"SELECT {COLUMNS} FROM beads WHERE kind = 'wisp' AND id IN (?...)")
        self.queued = "SELECT id, plugin, rig FROM beads WHERE kind = 'wisp' AND status = 'queued' ORDER BY id"
        self.run_states = s("SELECT id, status, closed_at, EXISTS (SELECT 1 FROM labels WHERE bead_id = beads.id AND label = ?)"
                            " FROM beads WHERE kind = 'wisp' AND id IN (?...)")
        self.stop = s("UPDATE beads SET data = {stop}, updated_at = ? WHERE id = ?", stop=d.json_set("stop"))
        self.stop_requests = s("SELECT id, {reason} FROM beads WHERE id IN (?...) AND status = 'running' AND {asked}",
                               reason=d.json_text("stop.reason"), asked=d.json_has("stop"))
        self.follow_up = s("UPDATE beads SET data = {escalation} WHERE id = ?", escalation=d.json_set("escalation"))
        prefixed = ", ".join(f"beads.{column}" for column in COLUMNS.split(", "))
        self.owed = s(f"SELECT {prefixed} FROM labels {{join}} beads ON beads.id = labels.bead_id WHERE labels.label = ?"
                      " AND beads.kind = 'wisp' AND beads.status = 'closed' ORDER BY beads.id", join=d.label_join)
        self.changed_runs = s(f"SELECT {COLUMNS} FROM beads WHERE kind = 'wisp' AND updated_at >= ? ORDER BY updated_at, id LIMIT ?")
        # readers of run ends, kennels
        self.add_reader = s(d.ignore("INSERT INTO readers VALUES (?, 0)"))
        self.reader_seq = s("SELECT seq FROM readers WHERE name = ?{lock}", lock=d.for_update)
        self.ends_after = s("SELECT seq, run_id FROM run_ends WHERE seq > ? ORDER BY seq LIMIT ?")
        self.move_reader = s("UPDATE readers SET seq = ? WHERE name = ?")
        self.kennels = "SELECT host, pid, started_at, beat_at, data FROM kennels ORDER BY host"
        self.forget_kennel = s("DELETE FROM kennels WHERE host = ? AND pid = ?")
        self.stats = f"SELECT {STATS_COLUMNS} FROM plugin_stats"
        # escalations and deliveries
        unclosed = ("SELECT id FROM beads WHERE kind = 'escalation' AND status != 'closed'"
                    " AND id IN (SELECT bead_id FROM labels WHERE label = ?)")
        self.same_escalation = {titled: s(f"{unclosed}{' AND title = ?' if titled else ''} ORDER BY id DESC LIMIT 1{{lock}}",
                                          lock=d.for_update) for titled in (False, True)}
        self.pending = s("SELECT escalation_id, channel, severity, attempts, next_at FROM deliveries WHERE escalation_id IN (?...)"
                         " ORDER BY id")
        self.drop_deliveries = s("DELETE FROM deliveries WHERE escalation_id = ?")
        self.queue_delivery = s(d.ignore("INSERT INTO deliveries (escalation_id, channel, severity, attempts, next_at)"
                                         " VALUES (?, ?, ?, 0, ?)"))
        self.held_deliveries = {scoped: s(f"SELECT id, escalation_id, severity FROM deliveries WHERE channel = ?{_LIVE}"
                                          f"{' AND escalation_id = ?' if scoped else ''}{{skip}}", skip=d.skip_locked)
                                for scoped in (False, True)}
        self.drop_delivery = s("DELETE FROM deliveries WHERE id = ?")
        self.due_deliveries = {scoped: s("SELECT id, escalation_id, channel, severity, attempts, next_at FROM deliveries"
                                         f" WHERE next_at <= ? AND channel != ?{_LIVE}{' AND escalation_id = ?' if scoped else ''}"
                                         " ORDER BY id{skip}", skip=d.skip_locked)
                               for scoped in (False, True)}
        self.lease_deliveries = s("UPDATE deliveries SET next_at = ? WHERE id IN (?...)")
        delivery = " WHERE escalation_id = ? AND channel = ? AND severity = ?"
        self.delivered = s(f"DELETE FROM deliveries{delivery}")
        self.retry_delivery = s(f"UPDATE deliveries SET attempts = ?, next_at = ?{delivery}")
        # digests and retention
        self.finished_runs = s("SELECT id, created_at, plugin, result, {duration}, {reason}, {log} FROM beads WHERE kind = 'wisp'"
                               " AND status = 'closed' AND created_at >= ? AND created_at < ? AND plugin IN (?...)",
                               duration=d.json_value("duration_s"), reason=d.json_value("reason"), log=d.json_value("log"))
        self.digest_of_day = s("SELECT id FROM beads WHERE kind = 'digest' AND title = ? ORDER BY id LIMIT 1")
        self.run_days = s("SELECT DISTINCT {day} FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < ?"
                          " AND plugin IN (?...)", day=d.day("created_at"))
        digests = "SELECT id, title, data FROM beads WHERE kind = 'digest'"
        self.digests = {False: digests, True: s(f"{digests} AND {{has}}", has=d.digest_has_plugin)}
        self.old_runs = s("SELECT id, {log} FROM beads WHERE kind = 'wisp' AND status = 'closed' AND created_at < ?",
                          log=d.json_text("log"))
        self.plugin_not_among = s(" AND plugin NOT IN (?...)")
        self.plugin_among = s(" AND plugin IN (?...)")
