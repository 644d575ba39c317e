//! Workspace agents as the stored resources of their build report them:
//! found by id through the store's agent index, shown to whoever may read
//! the workspace (Coder's rule: an agent is as visible as its workspace).
//! No agent connects to this server, so there is no agent state to keep.

use uuid::Uuid;

use super::{App, Result, Subject};
use crate::domain::{Agent, StoredResource, WorkspaceBuild};
use crate::store::Workspace;

/// An agent with what it is shown with: the resource it runs on, the build
/// that reported it and that build's workspace.
#[derive(Debug, Clone)]
pub struct FoundAgent {
    pub agent: Agent,
    pub resource: StoredResource,
    pub build: WorkspaceBuild,
    pub workspace: Workspace,
}

impl App<'_> {
    /// The agent of that id in the newest build that reported it, if the
    /// subject may read its workspace (deleted or not, as a build).
    pub async fn agent(&self, who: Subject<'_>, id: Uuid) -> Result<FoundAgent> {
        let build = self.store.build_of_agent(id).await?;
        let workspace = self.workspace(who, build.workspace_id, true).await?;
        let resources = self.store.resources_of_job(build.job_id).await?;
        let found = resources.into_iter().find_map(|r| {
            let agent = r.resource.agents.iter().find(|a| a.id == id).cloned()?;
            Some((agent, r))
        });
        // The index names a job whose rows no longer hold the agent only if
        // the store was changed by hand: then there is no such agent.
        let (agent, resource) = found.ok_or(super::Error::NotFound)?;
        Ok(FoundAgent { agent, resource, build, workspace })
    }
}
