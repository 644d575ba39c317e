-- Which job reported which agent, so an agent is found by its id
-- (`GET /workspaceagents/{id}`) without reading every resource. Filled when
-- a job's resources are stored; rows already stored are indexed here.
CREATE TABLE workspace_agents (
    agent_id TEXT NOT NULL,
    job_id   TEXT NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, job_id)
);
CREATE INDEX workspace_agents_job ON workspace_agents (job_id);

INSERT OR IGNORE INTO workspace_agents (agent_id, job_id)
SELECT json_extract(a.value, '$.id'), r.job_id
FROM workspace_resources r, json_each(r.resource, '$.agents') a
WHERE json_extract(a.value, '$.id') IS NOT NULL;
