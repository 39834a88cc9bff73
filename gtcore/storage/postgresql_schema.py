"""The PostgreSQL ledger's schema: every migration in order (``gtui_schema`` records the version reached).

The schema is the SQLite one (:mod:`gtcore.storage.sqlite_schema`) in PostgreSQL's words; a migration, once released,
is never edited: a ledger at version N gets the ones after it.
"""

from __future__ import annotations

from gtcore.storage.shared import streak_backfill

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gtui_schema (version INTEGER NOT NULL);
CREATE SEQUENCE ledger_changes;
CREATE TABLE beads (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    body        TEXT NOT NULL DEFAULT '',
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    closed_at   DOUBLE PRECISION,
    plugin      TEXT,
    rig         TEXT,
    result      TEXT,
    data        JSONB NOT NULL DEFAULT '{}'
);
CREATE TABLE labels (
    bead_id BIGINT NOT NULL REFERENCES beads(id) ON DELETE CASCADE,
    label   TEXT NOT NULL,
    PRIMARY KEY (bead_id, label)
);
CREATE INDEX labels_by_label ON labels(label, bead_id);
CREATE INDEX beads_by_kind ON beads(kind, status, created_at);
CREATE INDEX runs_by_plugin ON beads(plugin, created_at) WHERE kind = 'wisp';
CREATE INDEX beads_by_update ON beads(kind, updated_at);
CREATE UNIQUE INDEX one_running_run ON beads(plugin) WHERE kind = 'wisp' AND status = 'running';
CREATE TABLE plugin_stats (
    plugin          TEXT PRIMARY KEY,
    run_count       INTEGER NOT NULL,
    failure_count   INTEGER NOT NULL,
    last_run_id     BIGINT NOT NULL,
    last_started_at DOUBLE PRECISION NOT NULL,
    last_result     TEXT NOT NULL,
    last_summary    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE deliveries (
    id             BIGSERIAL PRIMARY KEY,
    escalation_id  BIGINT NOT NULL,
    channel        TEXT NOT NULL,
    severity       TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at        DOUBLE PRECISION NOT NULL,
    UNIQUE (escalation_id, channel, severity)
);
CREATE INDEX deliveries_due ON deliveries (next_at);
CREATE TABLE run_logs (
    run_id  BIGINT PRIMARY KEY REFERENCES beads(id) ON DELETE CASCADE,
    text    TEXT NOT NULL
);

CREATE FUNCTION wisp_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plugin_stats AS s VALUES (NEW.plugin, 1, (NEW.result IN ('failure', 'timeout'))::int, NEW.id, NEW.created_at,
                                          NEW.result, NEW.body)
    ON CONFLICT (plugin) DO UPDATE SET
        run_count = s.run_count + 1,
        failure_count = s.failure_count + excluded.failure_count,
        last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_result ELSE s.last_result END,
        last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                            THEN excluded.last_summary ELSE s.last_summary END,
        last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_run_id ELSE s.last_run_id END,
        last_started_at = greatest(s.last_started_at, excluded.last_started_at);
    INSERT INTO labels VALUES (NEW.id, 'type:plugin-run'), (NEW.id, 'plugin:' || NEW.plugin), (NEW.id, 'rig:' || NEW.rig),
                              (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER wisp_recorded AFTER INSERT ON beads FOR EACH ROW WHEN (NEW.kind = 'wisp') EXECUTE FUNCTION wisp_recorded();

CREATE FUNCTION wisp_result_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plugin_stats SET
        failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))::int - (OLD.result IN ('failure', 'timeout'))::int,
        last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
        last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
    WHERE plugin = NEW.plugin;
    DELETE FROM labels WHERE bead_id = NEW.id AND label = 'result:' || OLD.result;
    INSERT INTO labels VALUES (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER wisp_result_changed AFTER UPDATE OF result ON beads FOR EACH ROW
    WHEN (NEW.kind = 'wisp' AND NEW.result IS DISTINCT FROM OLD.result) EXECUTE FUNCTION wisp_result_changed();

CREATE FUNCTION ledger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('ledger_changes');
    PERFORM pg_notify('gtui_changes', '');  -- delivered at commit, one per transaction
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_changed AFTER INSERT OR UPDATE OR DELETE ON beads FOR EACH STATEMENT EXECUTE FUNCTION ledger_changed();
"""

_KENNEL = """
CREATE OR REPLACE FUNCTION ledger_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gtui_changes', '');  -- delivered at commit, one per transaction
    RETURN NULL;
END $$;
DROP SEQUENCE ledger_changes;
DROP INDEX one_running_run;
CREATE UNIQUE INDEX one_run_in_flight ON beads(plugin) WHERE kind = 'wisp' AND status IN ('queued', 'running');
CREATE INDEX runs_in_flight ON beads(status, id) WHERE kind = 'wisp' AND status IN ('queued', 'running');
CREATE TABLE run_ends (
    seq     BIGSERIAL PRIMARY KEY,
    run_id  BIGINT NOT NULL
);
CREATE INDEX run_ends_by_run ON run_ends(run_id);
-- A number is taken under a lock held to the commit, so the numbers commit in their order: a reader that sees
-- end 11 has seen end 10 (a sequence alone hands out numbers in one order and commits them in another).
CREATE FUNCTION wisp_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('gtui run ends'));
    INSERT INTO run_ends (run_id) VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER wisp_ended AFTER UPDATE OF status ON beads FOR EACH ROW
    WHEN (NEW.kind = 'wisp' AND NEW.status = 'closed' AND OLD.status <> 'closed') EXECUTE FUNCTION wisp_ended();
CREATE TRIGGER wisp_recorded_ended AFTER INSERT ON beads FOR EACH ROW
    WHEN (NEW.kind = 'wisp' AND NEW.status = 'closed') EXECUTE FUNCTION wisp_ended();
CREATE TABLE readers (
    name  TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
CREATE TABLE kennels (
    host        TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    beat_at     DOUBLE PRECISION NOT NULL,
    data        JSONB NOT NULL DEFAULT '{}'
);
"""

_STREAK = """
ALTER TABLE plugin_stats ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION wisp_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plugin_stats AS s VALUES (NEW.plugin, 1, (NEW.result IN ('failure', 'timeout'))::int, NEW.id, NEW.created_at,
                                          NEW.result, NEW.body, (NEW.result IN ('failure', 'timeout', 'abandoned'))::int)
    ON CONFLICT (plugin) DO UPDATE SET
        run_count = s.run_count + 1,
        failure_count = s.failure_count + excluded.failure_count,
        failure_streak = CASE WHEN excluded.last_result IN ('success', 'warning', 'check-only') THEN 0
                              ELSE s.failure_streak + excluded.failure_streak END,
        last_result = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_result ELSE s.last_result END,
        last_summary = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                            THEN excluded.last_summary ELSE s.last_summary END,
        last_run_id = CASE WHEN (excluded.last_started_at, excluded.last_run_id) > (s.last_started_at, s.last_run_id)
                           THEN excluded.last_run_id ELSE s.last_run_id END,
        last_started_at = greatest(s.last_started_at, excluded.last_started_at);
    INSERT INTO labels VALUES (NEW.id, 'type:plugin-run'), (NEW.id, 'plugin:' || NEW.plugin), (NEW.id, 'rig:' || NEW.rig),
                              (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION wisp_result_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plugin_stats SET
        failure_count = failure_count + (NEW.result IN ('failure', 'timeout'))::int - (OLD.result IN ('failure', 'timeout'))::int,
        failure_streak = CASE WHEN NEW.result IN ('success', 'warning', 'check-only') THEN 0
                              WHEN NEW.result IN ('failure', 'timeout', 'abandoned') AND OLD.result IN ('queued', 'running')
                                   AND coalesce(NEW.data->>'reason', '') NOT LIKE 'stopped:%'
                              THEN failure_streak + 1 ELSE failure_streak END,
        last_result = CASE WHEN last_run_id = NEW.id THEN NEW.result ELSE last_result END,
        last_summary = CASE WHEN last_run_id = NEW.id THEN NEW.body ELSE last_summary END
    WHERE plugin = NEW.plugin;
    DELETE FROM labels WHERE bead_id = NEW.id AND label = 'result:' || OLD.result;
    INSERT INTO labels VALUES (NEW.id, 'result:' || NEW.result) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
""" + streak_backfill("b.data->>'reason'") + ";"
"""3: each plugin's failure streak (runs in a row that ended failure, timeout or abandoned, as they ended; a run a person
stopped is not counted), kept with the rest of its summary by the same triggers."""

MIGRATIONS = [_SCHEMA, _KENNEL, _STREAK]
"""Each schema change, in order: a ledger at version N gets the ones after it (version 1 is the first schema)."""
SCHEMA_VERSION = len(MIGRATIONS)
