-- Acquire matches a daemon's tags and provisioners in SQL. Pending jobs that
-- share a tag set and provisioner form one run of this index, in queue
-- order: acquire skips from run to run (one seek per distinct tag set),
-- keeps the runs the daemon can take, and reads the oldest job of each, so
-- however many jobs no daemon can take sit ahead, a daemon finds its own
-- without reading them. Job tags are stored as canonical JSON (sorted
-- keys), so equal tag sets have equal text.
CREATE INDEX provisioner_jobs_queue ON provisioner_jobs (tags, provisioner, created_at, id)
    WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL;

-- A row /readyz writes and deletes again when a queue write failed for lack
-- of space, to learn whether the store can write again.
CREATE TABLE store_write_probe (
    id  INTEGER PRIMARY KEY,
    pad BLOB NOT NULL
);
