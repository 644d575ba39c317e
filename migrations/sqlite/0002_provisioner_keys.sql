-- Per-organization provisioner keys. The secret is stored only as sha256.
CREATE TABLE provisioner_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    hashed_secret   BLOB NOT NULL,
    tags            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    UNIQUE (organization_id, name)
);
