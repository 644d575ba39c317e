-- Connected daemons, written by the session that serves each one, so every
-- reader sees the same list (see store/daemons.rs). A row whose
-- last_seen_at is old belongs to a server that is gone.
CREATE TABLE provisioner_daemons (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL,
    replica_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    tags         TEXT NOT NULL,
    provisioners TEXT NOT NULL,
    connected_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    jobs         TEXT NOT NULL
);
CREATE INDEX provisioner_daemons_last_seen ON provisioner_daemons (last_seen_at);
