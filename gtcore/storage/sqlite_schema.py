"""The SQLite ledger's schema: every migration in order (``PRAGMA user_version`` counts those applied).

A migration, once released, is never edited: a ledger at version N gets the ones after it.
"""

from __future__ import annotations

import sqlite3

from gtcore.storage.shared import streak_backfill

MIGRATIONS: list[str] = [
    """
    CREATE TABLE beads (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        title       TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL,
        body        TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        closed_at   REAL,
        plugin      TEXT,
        rig         TEXT,
        result      TEXT,
        data        TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE labels (
        bead_id INTEGER NOT NULL REFERENCES beads(id) ON DELETE CASCADE,
        label   TEXT NOT NULL,
        PRIMARY KEY (bead_id, label)
    ) WITHOUT ROWID;
    CREATE INDEX labels_by_label ON labels(label, bead_id);
    CREATE INDEX beads_by_kind ON beads(kind, status, created_at);
    CREATE INDEX runs_by_plugin ON beads(plugin, created_at) WHERE kind = 'wisp';
    CREATE UNIQUE INDEX one_running_run ON beads(plugin) WHERE kind = 'wisp' AND status = 'running';

    CREATE TABLE plugin_stats (
        plugin          TEXT PRIMARY KEY,
        run_count       INTEGER NOT NULL,
        failure_count   INTEGER NOT NULL,
        last_run_id     INTEGER NOT NULL,
        last_started_at REAL NOT NULL,
        last_result     TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TRIGGER wisp_recorded AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT INTO plugin_stats VALUES (
            NEW.plugin, 1, NEW.result IN ('failure', 'timeout'), NEW.id, NEW.created_at, NEW.result)
        ON CONFLICT(plugin) DO UPDATE SET
            run_count = run_count + 1,
            failure_count = failure_count + excluded.failure_count,
            last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_result ELSE last_result END,
            last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_run_id ELSE last_run_id END,
            last_started_at = max(last_started_at, excluded.last_started_at);
    END;

    CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        UPDATE plugin_stats SET
            failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))
                                          - (OLD.result IN ('failure', 'timeout')),
            last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END
        WHERE plugin = NEW.plugin;
    END;
    """,
    # 2: the control room's feed asks "what changed since" every second
    """
    CREATE INDEX beads_by_update ON beads(kind, updated_at);
    """,
    # 3: a run's summary (its own report, or gtui's) lives in the wisp's body; the plugin table shows the last one
    """
    ALTER TABLE plugin_stats ADD COLUMN last_summary TEXT NOT NULL DEFAULT '';
    DROP TRIGGER wisp_recorded;
    DROP TRIGGER wisp_result_changed;
    CREATE TRIGGER wisp_recorded AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT INTO plugin_stats (plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary)
        VALUES (NEW.plugin, 1, NEW.result IN ('failure', 'timeout'), NEW.id, NEW.created_at, NEW.result, NEW.body)
        ON CONFLICT(plugin) DO UPDATE SET
            run_count = run_count + 1,
            failure_count = failure_count + excluded.failure_count,
            last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_result ELSE last_result END,
            last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                                THEN excluded.last_summary ELSE last_summary END,
            last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_run_id ELSE last_run_id END,
            last_started_at = max(last_started_at, excluded.last_started_at);
    END;
    CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        UPDATE plugin_stats SET
            failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))
                                          - (OLD.result IN ('failure', 'timeout')),
            last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
            last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
        WHERE plugin = NEW.plugin;
    END;
    """,
    # 4: a run's own labels (type, plugin, rig, result) kept by the database itself, in the statement that
    #    records or closes the run: a run costs fewer statements, and no writer can forget one
    """
    CREATE TRIGGER wisp_labels AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT OR IGNORE INTO labels VALUES
            (NEW.id, 'type:plugin-run'), (NEW.id, 'plugin:' || NEW.plugin), (NEW.id, 'rig:' || NEW.rig),
            (NEW.id, 'result:' || NEW.result);
    END;
    CREATE TRIGGER wisp_result_label AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        DELETE FROM labels WHERE bead_id = NEW.id AND label = 'result:' || OLD.result;
        INSERT OR IGNORE INTO labels VALUES (NEW.id, 'result:' || NEW.result);
    END;
    """,
    # 5: pending deliveries in a table of their own, leased row by row, moved out of the escalations' JSON
    """
    CREATE TABLE deliveries (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        escalation_id  INTEGER NOT NULL,
        channel        TEXT NOT NULL,
        severity       TEXT NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0,
        next_at        REAL NOT NULL,
        UNIQUE (escalation_id, channel, severity)
    );
    CREATE INDEX deliveries_due ON deliveries (next_at);
    INSERT OR IGNORE INTO deliveries (escalation_id, channel, severity, attempts, next_at)
        SELECT beads.id, json_extract(item.value, '$.channel'), json_extract(item.value, '$.severity'),
               coalesce(json_extract(item.value, '$.attempts'), 0), coalesce(json_extract(item.value, '$.next_at'), beads.updated_at)
        FROM beads, json_each(beads.data, '$.pending') AS item
        WHERE beads.kind = 'escalation' AND beads.status != 'closed';
    UPDATE beads SET data = json_remove(data, '$.pending') WHERE kind = 'escalation' AND json_type(data, '$.pending') IS NOT NULL;
    """,
    # 6: the kennel. A run is claimed queued and taken by a kennel: one queued or running run per plugin. Every run's end
    #    gets a number in the order the ends commit (run_ends), which readers (gtui --once) follow with a cursor of their
    #    own (readers); kennels beat here, one per host.
    """
    DROP INDEX one_running_run;
    CREATE UNIQUE INDEX one_run_in_flight ON beads(plugin) WHERE kind = 'wisp' AND status IN ('queued', 'running');
    CREATE INDEX runs_in_flight ON beads(status, id) WHERE kind = 'wisp' AND status IN ('queued', 'running');
    CREATE TABLE run_ends (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id  INTEGER NOT NULL
    );
    CREATE INDEX run_ends_by_run ON run_ends(run_id);
    CREATE TRIGGER wisp_ended AFTER UPDATE OF status ON beads
    WHEN NEW.kind = 'wisp' AND NEW.status = 'closed' AND OLD.status != 'closed'
    BEGIN
        INSERT INTO run_ends (run_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER wisp_recorded_ended AFTER INSERT ON beads WHEN NEW.kind = 'wisp' AND NEW.status = 'closed'
    BEGIN
        INSERT INTO run_ends (run_id) VALUES (NEW.id);
    END;
    CREATE TABLE readers (
        name  TEXT PRIMARY KEY,
        seq   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE kennels (
        host        TEXT PRIMARY KEY,
        pid         INTEGER NOT NULL,
        started_at  REAL NOT NULL,
        beat_at     REAL NOT NULL,
        data        TEXT NOT NULL DEFAULT '{}'
    ) WITHOUT ROWID;
    """,
    # 7: each plugin's failure streak (runs in a row that ended failure, timeout or abandoned, as they ended), kept with the
    #    rest of its summary by the same triggers
    """
    ALTER TABLE plugin_stats ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
    DROP TRIGGER wisp_recorded;
    DROP TRIGGER wisp_result_changed;
    CREATE TRIGGER wisp_recorded AFTER INSERT ON beads WHEN NEW.kind = 'wisp'
    BEGIN
        INSERT INTO plugin_stats (plugin, run_count, failure_count, last_run_id, last_started_at, last_result, last_summary,
                                  failure_streak)
        VALUES (NEW.plugin, 1, NEW.result IN ('failure', 'timeout'), NEW.id, NEW.created_at, NEW.result, NEW.body,
                NEW.result IN ('failure', 'timeout', 'abandoned'))
        ON CONFLICT(plugin) DO UPDATE SET
            run_count = run_count + 1,
            failure_count = failure_count + excluded.failure_count,
            failure_streak = CASE WHEN excluded.last_result IN ('success', 'warning', 'check-only') THEN 0
                                  ELSE failure_streak + excluded.failure_streak END,
            last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_result ELSE last_result END,
            last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                                THEN excluded.last_summary ELSE last_summary END,
            last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (last_started_at, last_run_id)
                               THEN excluded.last_run_id ELSE last_run_id END,
            last_started_at = max(last_started_at, excluded.last_started_at);
    END;
    CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads
    WHEN NEW.kind = 'wisp' AND NEW.result IS NOT OLD.result
    BEGIN
        UPDATE plugin_stats SET
            failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))
                                          - (OLD.result IN ('failure', 'timeout')),
            failure_streak = CASE WHEN NEW.result IN ('success', 'warning', 'check-only') THEN 0
                                  WHEN NEW.result IN ('failure', 'timeout', 'abandoned') AND OLD.result IN ('queued', 'running')
                                       AND coalesce(json_extract(NEW.data, '$.reason'), '') NOT LIKE 'stopped:%'
                                  THEN failure_streak + 1 ELSE failure_streak END,
            last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
            last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
        WHERE plugin = NEW.plugin;
    END;
    """ + streak_backfill("json_extract(b.data, '$.reason')") + ";",
]
SCHEMA_VERSION = len(MIGRATIONS)


def split_script(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements
