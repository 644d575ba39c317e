-- Initial schema. Timestamps are RFC 3339 text in UTC with microseconds,
-- which sorts correctly as text. UUIDs are text.

CREATE TABLE organizations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    is_default   INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    is_owner      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hashed_secret BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    mimetype   TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE provisioner_jobs (
    id              TEXT PRIMARY KEY,
    job_type        TEXT NOT NULL,
    provisioner     TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    initiator_id    TEXT NOT NULL,
    file_id         TEXT NOT NULL REFERENCES files (id),
    input           TEXT NOT NULL,
    tags            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    started_at      TEXT,
    canceled_at     TEXT,
    completed_at    TEXT,
    worker_id       TEXT,
    worker_name     TEXT,
    error           TEXT,
    error_code      TEXT
);
-- The queue: pending jobs in age order.
CREATE INDEX provisioner_jobs_pending ON provisioner_jobs (created_at)
    WHERE started_at IS NULL AND completed_at IS NULL;
CREATE INDEX provisioner_jobs_worker ON provisioner_jobs (worker_id)
    WHERE completed_at IS NULL;

CREATE TABLE provisioner_job_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    source     TEXT NOT NULL,
    level      TEXT NOT NULL,
    stage      TEXT NOT NULL,
    output     TEXT NOT NULL,
    UNIQUE (job_id, seq)
);

CREATE TABLE templates (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    name              TEXT NOT NULL,
    display_name      TEXT NOT NULL DEFAULT '',
    description       TEXT NOT NULL DEFAULT '',
    active_version_id TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE template_versions (
    id              TEXT PRIMARY KEY,
    template_id     TEXT REFERENCES templates (id),
    organization_id TEXT NOT NULL,
    name            TEXT NOT NULL,
    message         TEXT NOT NULL DEFAULT '',
    job_id          TEXT NOT NULL REFERENCES provisioner_jobs (id),
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX template_versions_template ON template_versions (template_id);
CREATE INDEX template_versions_job ON template_versions (job_id);

CREATE TABLE workspaces (
    id                 TEXT PRIMARY KEY,
    organization_id    TEXT NOT NULL,
    owner_id           TEXT NOT NULL REFERENCES users (id),
    template_id        TEXT NOT NULL REFERENCES templates (id),
    name               TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    autostart_schedule TEXT,
    ttl_ms             INTEGER,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE UNIQUE INDEX workspaces_live_name ON workspaces (owner_id, lower(name)) WHERE deleted = 0;

CREATE TABLE workspace_builds (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    build_number        INTEGER NOT NULL,
    transition          TEXT NOT NULL,
    template_version_id TEXT NOT NULL REFERENCES template_versions (id),
    initiator_id        TEXT NOT NULL,
    reason              TEXT NOT NULL,
    provisioner_state   BLOB NOT NULL,
    job_id              TEXT NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    deadline            TEXT,
    max_deadline        TEXT,
    daily_cost          INTEGER NOT NULL DEFAULT 0,
    rich_parameters     TEXT NOT NULL DEFAULT '[]',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (workspace_id, build_number)
);

CREATE TABLE workspace_resources (
    id         TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    transition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    position   INTEGER NOT NULL,
    resource   TEXT NOT NULL
);
CREATE INDEX workspace_resources_job ON workspace_resources (job_id, position);
