-- Log reads page by id within a job (followers ask for "after id N"): an
-- index on job_id (which carries the rowid) lets SQLite seek to N instead of
-- walking the job's (job_id, seq) entries.
CREATE INDEX provisioner_job_logs_job_id ON provisioner_job_logs (job_id, id);
