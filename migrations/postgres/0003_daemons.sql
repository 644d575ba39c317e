-- Connected daemons, written by the session (on whichever replica) that
-- serves each one, so every replica lists the same daemons (see
-- store/daemons.rs). A row whose last_seen_at is old belongs to a replica
-- that is gone.
CREATE TABLE provisioner_daemons (
    id           uuid PRIMARY KEY,
    session_id   uuid NOT NULL,
    replica_id   uuid NOT NULL,
    name         text NOT NULL,
    version      text NOT NULL,
    tags         text NOT NULL,
    provisioners text NOT NULL,
    connected_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    jobs         text NOT NULL
);
CREATE INDEX provisioner_daemons_last_seen ON provisioner_daemons (last_seen_at);
