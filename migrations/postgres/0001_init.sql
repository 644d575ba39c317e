-- The PostgreSQL schema: the SQLite schema's tables, in native types (uuid,
-- timestamptz, bytea, boolean, bigint). Tags are jsonb, so acquire matches
-- them with `@>`; the other JSON columns are text in `store::stored`'s formats.

CREATE TABLE organizations (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    display_name text NOT NULL,
    is_default   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL
);
-- One default organization, however many replicas create it at once.
CREATE UNIQUE INDEX organizations_default ON organizations (is_default) WHERE is_default;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    rbac_roles    text NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hashed_secret bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

CREATE TABLE files (
    id         uuid PRIMARY KEY,
    hash       text NOT NULL,
    mimetype   text NOT NULL,
    data       bytea NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (hash, created_by)
);

CREATE TABLE provisioner_jobs (
    id              uuid PRIMARY KEY,
    job_type        text NOT NULL,
    provisioner     text NOT NULL,
    organization_id uuid NOT NULL,
    initiator_id    uuid NOT NULL,
    file_id         uuid NOT NULL REFERENCES files (id),
    input           text NOT NULL,
    tags            jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    started_at      timestamptz,
    canceled_at     timestamptz,
    completed_at    timestamptz,
    worker_id       uuid,
    worker_name     text,
    error           text,
    error_code      text,
    late_result_at  timestamptz
);
-- The queue: pending jobs in age order. Acquire walks it with
-- FOR UPDATE SKIP LOCKED, so concurrent daemons pass over each other's rows.
CREATE INDEX provisioner_jobs_queue ON provisioner_jobs (created_at, id)
    WHERE started_at IS NULL AND completed_at IS NULL AND canceled_at IS NULL;
CREATE INDEX provisioner_jobs_running ON provisioner_jobs (updated_at)
    WHERE started_at IS NOT NULL AND completed_at IS NULL;

-- Log rows name their job by a small key; `last_seq` is the job's highest
-- stored sequence number. A batch updates it and inserts in one statement,
-- and the row lock that update takes orders concurrent batches of a job, so
-- a job's ids rise with its seqs and commit in that order.
CREATE TABLE provisioner_job_log_keys (
    key      bigserial PRIMARY KEY,
    job_id   uuid NOT NULL UNIQUE REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    last_seq bigint NOT NULL DEFAULT 0,
    prev_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE provisioner_job_log_lines (
    id         bigserial PRIMARY KEY,
    job        bigint NOT NULL REFERENCES provisioner_job_log_keys (key) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    created_at timestamptz NOT NULL,
    source     text NOT NULL,
    level      text NOT NULL,
    stage      text NOT NULL,
    -- UTF-8 bytes: terraform may print NUL, which text cannot hold.
    output     bytea NOT NULL
);
CREATE INDEX provisioner_job_log_lines_job ON provisioner_job_log_lines (job, id);

CREATE TABLE templates (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    name              text NOT NULL,
    display_name      text NOT NULL DEFAULT '',
    description       text NOT NULL DEFAULT '',
    active_version_id uuid NOT NULL,
    created_by        uuid NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE template_versions (
    id              uuid PRIMARY KEY,
    template_id     uuid REFERENCES templates (id),
    organization_id uuid NOT NULL,
    name            text NOT NULL,
    message         text NOT NULL DEFAULT '',
    job_id          uuid NOT NULL REFERENCES provisioner_jobs (id),
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX template_versions_template ON template_versions (template_id);
CREATE INDEX template_versions_job ON template_versions (job_id);

CREATE TABLE template_version_imports (
    job_id uuid PRIMARY KEY REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    result text NOT NULL
);

CREATE TABLE workspaces (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL,
    owner_id           uuid NOT NULL REFERENCES users (id),
    template_id        uuid NOT NULL REFERENCES templates (id),
    name               text NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    autostart_schedule text,
    ttl_ms             bigint,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE UNIQUE INDEX workspaces_live_name ON workspaces (owner_id, lower(name)) WHERE NOT deleted;
CREATE INDEX workspaces_order ON workspaces (created_at, id);

CREATE TABLE workspace_builds (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces (id),
    build_number        integer NOT NULL,
    transition          text NOT NULL,
    template_version_id uuid NOT NULL REFERENCES template_versions (id),
    initiator_id        uuid NOT NULL,
    reason              text NOT NULL,
    provisioner_state   bytea NOT NULL,
    job_id              uuid NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    deadline            timestamptz,
    max_deadline        timestamptz,
    daily_cost          integer NOT NULL DEFAULT 0,
    rich_parameters     text NOT NULL DEFAULT '[]',
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    UNIQUE (workspace_id, build_number)
);

CREATE TABLE workspace_resources (
    id         uuid PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    transition text NOT NULL,
    created_at timestamptz NOT NULL,
    position   integer NOT NULL,
    resource   text NOT NULL
);
CREATE INDEX workspace_resources_job ON workspace_resources (job_id, transition, position);

CREATE TABLE provisioner_keys (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    hashed_secret   bytea NOT NULL,
    tags            text NOT NULL,
    created_at      timestamptz NOT NULL,
    UNIQUE (organization_id, name)
);
