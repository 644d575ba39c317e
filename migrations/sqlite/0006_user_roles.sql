-- no-transaction: the files table is rebuilt, which SQLite allows only with
-- foreign keys off (provisioner_jobs refers to it), and that pragma has no
-- effect inside a transaction. The changes still commit as one transaction.
--
-- Users carry Coder's site roles ("owner", "template-admin", "user-admin")
-- as a JSON array of names; "member" is implicit and never stored. The
-- is_owner flag it replaces becomes ["owner"].
--
-- Files are deduplicated per uploader, as Coder does (hash, created_by):
-- only its uploader and template managers may read a file, so another
-- user's upload of the same bytes must get a file of their own, and must not
-- learn from the id it gets back that someone uploaded those bytes before.
PRAGMA foreign_keys = OFF;
BEGIN;

ALTER TABLE users ADD COLUMN rbac_roles TEXT NOT NULL DEFAULT '[]';
UPDATE users SET rbac_roles = '["owner"]' WHERE is_owner <> 0;
ALTER TABLE users DROP COLUMN is_owner;

CREATE TABLE files_by_uploader (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL,
    mimetype   TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (hash, created_by)
);
INSERT INTO files_by_uploader (id, hash, mimetype, data, created_by, created_at)
    SELECT id, hash, mimetype, data, created_by, created_at FROM files;
DROP TABLE files;
ALTER TABLE files_by_uploader RENAME TO files;

COMMIT;
PRAGMA foreign_keys = ON;
