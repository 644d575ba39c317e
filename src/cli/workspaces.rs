//! `workspaces` (`ws`): create, list, show, start, stop, restart, update,
//! delete, cancel, builds and logs. A workspace is `name` (yours) or
//! `owner/name`. Commands that change something confirm first (`--yes`
//! skips, and is required without a terminal); commands that start a
//! build follow it to its end (see [`super::follow`]).

use anyhow::{bail, Context};
use uuid::Uuid;

use super::args::{CreateArgs, TargetArgs, WorkspacesCommand};
use super::output::{ago, between, confirm, duration, list};
use super::{follow, params, session, show, templates};
use crate::sdk::{Client, CreateWorkspaceBuildRequest, CreateWorkspaceRequest, Workspace};

pub async fn run(cmd: WorkspacesCommand) -> anyhow::Result<()> {
    let c = session::client()?;
    match cmd {
        WorkspacesCommand::Create(a) => create(&c, a).await,
        WorkspacesCommand::List(o) => {
            let page = c.workspaces(None, None).await.context("cannot list workspaces")?;
            let rows = page.workspaces.iter().map(row).collect();
            let header = ["workspace", "owner", "template", "status", "last build", "age"];
            list(o.output, &page.workspaces, &header, rows)
        }
        WorkspacesCommand::Show { workspace, output } => {
            let w = find(&c, &workspace).await?;
            show::workspace(&w, output.output)
        }
        WorkspacesCommand::Start(t) => {
            transition(&c, &t, "start", None, false, "Start workspace").await
        }
        WorkspacesCommand::Stop(t) => {
            transition(&c, &t, "stop", None, false, "Stop workspace").await
        }
        WorkspacesCommand::Restart(t) => {
            let w = find(&c, &t.workspace).await?;
            confirm(t.yes.yes, &format!("Restart workspace {}?", full_name(&w)))?;
            for step in ["stop", "start"] {
                build(&c, &w, CreateWorkspaceBuildRequest::new(step)).await?;
            }
            Ok(())
        }
        WorkspacesCommand::Update(t) => {
            let w = find(&c, &t.workspace).await?;
            if !w.outdated {
                say!("{} is already on its template's active version", full_name(&w));
                return Ok(());
            }
            confirm(
                t.yes.yes,
                &format!("Update workspace {} to the active version?", full_name(&w)),
            )?;
            let mut req = CreateWorkspaceBuildRequest::new("start");
            req.template_version_id = Some(w.template_active_version_id);
            build(&c, &w, req).await
        }
        WorkspacesCommand::Delete { target, orphan } => {
            let what = if orphan {
                "Delete workspace (orphaning its resources)"
            } else {
                "Delete workspace (destroying its resources)"
            };
            transition(&c, &target, "delete", None, orphan, what).await
        }
        WorkspacesCommand::Cancel(t) => cancel(&c, &t).await,
        WorkspacesCommand::Builds { workspace, output } => {
            let w = find(&c, &workspace).await?;
            let builds = c.builds(w.id).await.context("cannot list builds")?;
            let rows = builds
                .iter()
                .map(|b| {
                    let took = match (b.job.started_at, b.job.completed_at) {
                        (Some(s), Some(e)) => duration(between(s, e)),
                        _ => String::new(),
                    };
                    vec![
                        format!("#{}", b.build_number),
                        b.transition.clone(),
                        b.status.clone(),
                        b.initiator_name.clone(),
                        ago(b.created_at),
                        took,
                    ]
                })
                .collect();
            let header = ["build", "transition", "status", "initiator", "created", "took"];
            list(output.output, &builds, &header, rows)
        }
        WorkspacesCommand::Logs { workspace, follow: keep, build } => {
            let w = find(&c, &workspace).await?;
            let b = match build {
                None => w.latest_build.clone(),
                Some(n) => c
                    .build_by_number(&w.owner_name, &w.name, n)
                    .await
                    .with_context(|| format!("no build #{n} of {}", full_name(&w)))?,
            };
            let running = matches!(b.job.status.as_str(), "pending" | "running" | "canceling");
            if keep && running {
                follow::build(&c, &b, &full_name(&w)).await
            } else {
                follow::print_build_logs(&c, &b).await
            }
        }
    }
}

fn full_name(w: &Workspace) -> String {
    format!("{}/{}", w.owner_name, w.name)
}

fn row(w: &Workspace) -> Vec<String> {
    let b = &w.latest_build;
    let status = if w.outdated { format!("{} (outdated)", b.status) } else { b.status.clone() };
    vec![
        w.name.clone(),
        w.owner_name.clone(),
        w.template_name.clone(),
        status,
        format!("#{} {} {}", b.build_number, b.transition, ago(b.created_at)),
        ago(w.created_at),
    ]
}

/// `owner/name` or `name` (the caller's); unknown workspaces say so.
pub async fn find(c: &Client, name: &str) -> anyhow::Result<Workspace> {
    let (owner, ws) = name.split_once('/').unwrap_or(("me", name));
    match c.workspace_by_owner_and_name(owner, ws).await {
        Ok(w) => Ok(w),
        Err(e) if e.status() == Some(404) => {
            bail!("workspace {name:?} not found: `provisionerd ws list` shows the workspaces")
        }
        Err(e) => Err(e).with_context(|| format!("cannot read workspace {name:?}")),
    }
}

async fn transition(
    c: &Client,
    t: &TargetArgs,
    transition: &str,
    version: Option<Uuid>,
    orphan: bool,
    question: &str,
) -> anyhow::Result<()> {
    let w = find(c, &t.workspace).await?;
    confirm(t.yes.yes, &format!("{question} {}?", full_name(&w)))?;
    let mut req = CreateWorkspaceBuildRequest::new(transition);
    req.template_version_id = version;
    req.orphan = orphan;
    build(c, &w, req).await
}

async fn build(c: &Client, w: &Workspace, req: CreateWorkspaceBuildRequest) -> anyhow::Result<()> {
    let name = full_name(w);
    let b = c
        .create_build(w.id, &req)
        .await
        .with_context(|| format!("cannot {} {name}", req.transition))?;
    follow::build(c, &b, &name).await
}

async fn cancel(c: &Client, t: &TargetArgs) -> anyhow::Result<()> {
    let w = find(c, &t.workspace).await?;
    let b = &w.latest_build;
    if !matches!(b.job.status.as_str(), "pending" | "running") {
        bail!(
            "nothing to cancel: build #{} of {} is {}",
            b.build_number,
            full_name(&w),
            b.job.status
        );
    }
    confirm(t.yes.yes, &format!("Cancel build #{} of {}?", b.build_number, full_name(&w)))?;
    c.cancel_build(b.id).await.context("cannot cancel the build")?;
    say!(
        "canceling build #{} of {}: it ends once terraform stops \
         (`provisionerd ws logs -f {}` follows it)",
        b.build_number,
        full_name(&w),
        full_name(&w)
    );
    Ok(())
}

async fn create(c: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let (owner, name) = a.name.split_once('/').unwrap_or(("me", &a.name));
    let t = templates::template(c, &a.template).await?;
    let wanted = c
        .template_version_rich_parameters(t.active_version_id)
        .await
        .with_context(|| format!("cannot read the parameters of template {:?}", t.name))?;
    let values = params::resolve(&wanted, &a.parameters)?;
    confirm(a.yes.yes, &format!("Create workspace {name} from template {}?", t.name))?;
    let req = CreateWorkspaceRequest {
        name: name.to_owned(),
        template_id: Some(t.id),
        rich_parameter_values: values,
        ..Default::default()
    };
    let w = c
        .create_workspace(owner, &req)
        .await
        .with_context(|| format!("cannot create workspace {:?}", a.name))?;
    follow::build(c, &w.latest_build, &full_name(&w)).await
}
