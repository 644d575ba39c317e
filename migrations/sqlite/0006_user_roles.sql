-- Users carry Coder's site roles ("owner", "template-admin", "user-admin")
-- as a JSON array of names; "member" is implicit and never stored. The
-- is_owner flag it replaces becomes ["owner"].
ALTER TABLE users ADD COLUMN rbac_roles TEXT NOT NULL DEFAULT '[]';
UPDATE users SET rbac_roles = '["owner"]' WHERE is_owner <> 0;
ALTER TABLE users DROP COLUMN is_owner;
