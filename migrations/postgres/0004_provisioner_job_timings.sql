-- How long each stage and resource of a job's run took (SQLite's 0045), as
-- its daemon reported with the completion (protocol 1.1), in the order
-- reported. Written in the completion's transaction; read by the build
-- timings API.
CREATE TABLE provisioner_job_timings (
    job_id     uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz NOT NULL,
    stage      text NOT NULL,
    source     text NOT NULL,
    action     text NOT NULL,
    resource   text NOT NULL,
    PRIMARY KEY (job_id, position)
);
