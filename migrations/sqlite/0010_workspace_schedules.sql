-- Workspace settings beyond the first API: dormancy (a dormant workspace
-- cannot be started, and the scheduler leaves it alone) and whether
-- scheduled starts move to the template's active version.
ALTER TABLE workspaces ADD COLUMN dormant_at TEXT;
ALTER TABLE workspaces ADD COLUMN automatic_updates TEXT NOT NULL DEFAULT 'never';
-- The scheduler's scan: live workspaces with a schedule.
CREATE INDEX workspaces_scheduled ON workspaces (id)
    WHERE deleted = 0 AND autostart_schedule IS NOT NULL;
-- Builds with a deadline, for the scheduler's autostop scan.
CREATE INDEX workspace_builds_deadline ON workspace_builds (workspace_id)
    WHERE deadline IS NOT NULL;
-- The owner's favorites come first in their lists; last_used_at is what
-- POST /workspaces/{id}/usage records.
ALTER TABLE workspaces ADD COLUMN favorite INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN last_used_at TEXT;
