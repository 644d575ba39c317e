-- When a daemon's result for a job arrived after the server had given up on
-- that job (the reaper failed it as PROVISIONER_DAEMON_LOST). The result's
-- state is kept once; a resent result finds this set and is only acknowledged.
ALTER TABLE provisioner_jobs ADD COLUMN late_result_at TEXT;
