-- Which job reported which agent, so an agent is found by its id
-- (`GET /workspaceagents/{id}`) without reading every resource. Filled when
-- a job's resources are stored; rows already stored are indexed here.
CREATE TABLE workspace_agents (
    agent_id uuid NOT NULL,
    job_id   uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, job_id)
);
CREATE INDEX workspace_agents_job ON workspace_agents (job_id);

INSERT INTO workspace_agents (agent_id, job_id)
SELECT DISTINCT (a ->> 'id')::uuid, r.job_id
FROM workspace_resources r,
     jsonb_array_elements(COALESCE(r.resource::jsonb -> 'agents', '[]'::jsonb)) a
WHERE a ->> 'id' IS NOT NULL
ON CONFLICT DO NOTHING;
