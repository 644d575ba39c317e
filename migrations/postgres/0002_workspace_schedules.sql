-- Workspace settings beyond the first API (SQLite's 0010): dormancy (a
-- dormant workspace cannot be started, and the scheduler leaves it alone)
-- and whether scheduled starts move to the template's active version.
ALTER TABLE workspaces ADD COLUMN dormant_at timestamptz;
ALTER TABLE workspaces ADD COLUMN automatic_updates text NOT NULL DEFAULT 'never';
-- The scheduler's scan: live workspaces with a schedule.
CREATE INDEX workspaces_scheduled ON workspaces (id)
    WHERE NOT deleted AND autostart_schedule IS NOT NULL;
-- Builds with a deadline, for the scheduler's autostop scan.
CREATE INDEX workspace_builds_deadline ON workspace_builds (workspace_id)
    WHERE deadline IS NOT NULL;
-- The owner's favorites come first in their lists; last_used_at is what
-- POST /workspaces/{id}/usage records.
ALTER TABLE workspaces ADD COLUMN favorite boolean NOT NULL DEFAULT false;
ALTER TABLE workspaces ADD COLUMN last_used_at timestamptz;
