-- Log lines are the store's busiest writes: a chatty build stores thousands
-- a second. Each row and index entry carried the job's 36-character id, and
-- a UNIQUE (job_id, seq) index was a third B-tree to update per line. Rows now
-- name their job by a small integer key, and the unique index is gone: the
-- store inserts a batch in one statement that keeps only lines above the
-- job's last stored seq, so a job's seqs stay unique and rise with the id.
CREATE TABLE provisioner_job_log_keys (
    key    INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE REFERENCES provisioner_jobs (id) ON DELETE CASCADE
);

INSERT INTO provisioner_job_log_keys (job_id)
    SELECT id FROM provisioner_jobs ORDER BY created_at, id;

CREATE TABLE provisioner_job_log_lines (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job        INTEGER NOT NULL REFERENCES provisioner_job_log_keys (key) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    source     TEXT NOT NULL,
    level      TEXT NOT NULL,
    stage      TEXT NOT NULL,
    output     TEXT NOT NULL
);

INSERT INTO provisioner_job_log_lines (id, job, seq, created_at, source, level, stage, output)
    SELECT l.id, k.key, l.seq, l.created_at, l.source, l.level, l.stage, l.output
    FROM provisioner_job_logs AS l JOIN provisioner_job_log_keys AS k ON k.job_id = l.job_id
    ORDER BY l.id;

DROP TABLE provisioner_job_logs;

-- Reads page by id within a job; the last id gives the job's highest seq.
CREATE INDEX provisioner_job_log_lines_job ON provisioner_job_log_lines (job, id);
