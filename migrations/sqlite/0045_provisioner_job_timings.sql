-- How long each stage and resource of a job's run took, as its daemon
-- reported with the completion (protocol 1.1), in the order reported.
-- Written in the completion's transaction; read by the build timings API.
CREATE TABLE provisioner_job_timings (
    job_id     TEXT NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT NOT NULL,
    stage      TEXT NOT NULL,
    source     TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    PRIMARY KEY (job_id, position)
);
