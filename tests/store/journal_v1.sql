-- The schema-1 SQLite journal (romakit before the team journal), for the migration test.

CREATE TABLE IF NOT EXISTS operations (
    op_id         TEXT PRIMARY KEY,
    operation     TEXT NOT NULL,
    target        TEXT NOT NULL,
    client_kind   TEXT,
    client        TEXT,            -- JSON: non-secret address facts only
    requested     INTEGER NOT NULL,
    chunks        INTEGER NOT NULL,
    chunk_size    INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    parent_op_id  TEXT,
    relation      TEXT,            -- 'retry', 'resume' or NULL
    pid           INTEGER,
    hostname      TEXT,
    version       TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    op_id        TEXT NOT NULL,
    chunk        INTEGER NOT NULL,
    state        TEXT NOT NULL,    -- 'planned', 'sent', 'done'
    attempt      INTEGER,          -- sent: this try; done: tries made
    at           REAL NOT NULL,    -- when this record was written
    n            INTEGER,          -- planned, done: devices in the chunk
    ids          TEXT,             -- planned, done: JSON list of the chunk's ids, in order
    sent_at      REAL,             -- done: the last try's times
    answered_at  REAL,
    request_id   TEXT,
    event_id     TEXT,
    names        TEXT,             -- done: JSON lists, one item per id
    outcomes     TEXT,
    error_codes  TEXT,
    error_msgs   TEXT
);
CREATE INDEX IF NOT EXISTS chunks_op ON chunks (op_id, chunk);
CREATE VIEW IF NOT EXISTS rows AS
    SELECT c.op_id, c.chunk, CAST(j.key AS INTEGER) AS pos, CAST(j.value AS TEXT) AS device_id,
           json_extract(c.names, '$[' || j.key || ']') AS device_name,
           json_extract(c.outcomes, '$[' || j.key || ']') AS outcome,
           json_extract(c.error_codes, '$[' || j.key || ']') AS error_code,
           json_extract(c.error_msgs, '$[' || j.key || ']') AS error_msg,
           c.attempt AS attempts, c.request_id, c.event_id, c.sent_at, c.answered_at
    FROM chunks AS c, json_each(c.ids) AS j
    WHERE c.state = 'done';
CREATE TABLE IF NOT EXISTS operation_ends (
    op_id        TEXT NOT NULL,
    finished_at  REAL NOT NULL,
    state        TEXT NOT NULL,    -- 'finished' or 'stopped'
    stopped      TEXT,
    stop_code    TEXT,
    counts       TEXT              -- JSON {outcome: devices}
);
CREATE INDEX IF NOT EXISTS ends_op ON operation_ends (op_id);
