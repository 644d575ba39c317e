-- What a template version import found: the template's coder_parameters and
-- variables, as JSON ({"parameters": [...], "variables": [...]}). The
-- planned resources of both transitions are rows of workspace_resources.
CREATE TABLE template_version_imports (
    job_id TEXT PRIMARY KEY REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    result TEXT NOT NULL
);
