//! `provisionerd demo`: a guided tour against a running server, using only
//! the public REST API through the typed client of [`crate::sdk`]. It
//! creates (or logs in as) a first user, pushes a template directory,
//! creates a workspace, follows each build's logs over WebSocket, then
//! stops and deletes the workspace.
//!
//! This is client code: it knows the SDK, nothing of the server's internals.

use anyhow::{bail, Context};

use crate::config::DemoArgs;
use crate::sdk::{
    self, CreateTemplateRequest, CreateTemplateVersionRequest, CreateWorkspaceBuildRequest,
    CreateWorkspaceRequest, Log,
};

pub use crate::sdk::{tar_dir, Client};

fn print_log(l: Log) {
    println!("  [{}] {:>5} {}", l.stage, l.log_level, l.output);
}

async fn build_and_follow(
    c: &Client,
    build: &sdk::WorkspaceBuild,
) -> anyhow::Result<sdk::WorkspaceBuild> {
    println!("build #{} ({}):", build.build_number, build.transition);
    c.follow_build_logs(build.id, None, print_log).await?;
    let done = c.build(build.id).await?;
    println!("  => status {}", done.status);
    if done.job.status != "succeeded" {
        bail!(
            "build {} ended {}: {}",
            done.id,
            done.job.status,
            done.job.error.as_deref().unwrap_or("")
        );
    }
    Ok(done)
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let c = Client::login(&args.url, &args.email, &args.password).await.with_context(|| {
        format!("cannot log in at {}: is `provisionerd server` running?", args.url)
    })?;
    let file = c.upload_tar(tar_dir(&args.template)?).await.context("upload failed")?;
    println!("pushed template {} as file {file}", args.template.display());
    let version = c
        .create_template_version("coder", &CreateTemplateVersionRequest::new(file, "terraform"))
        .await?;
    println!("importing template version {}:", version.id);
    c.follow_template_version_logs(version.id, print_log).await?;
    let version = c.template_version(version.id).await?;
    if version.job.status != "succeeded" {
        bail!(
            "template import ended {}: {}",
            version.job.status,
            version.job.error.as_deref().unwrap_or("")
        );
    }
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let template = c
        .create_template(
            "coder",
            &CreateTemplateRequest {
                name: format!("demo-{suffix}"),
                template_version_id: version.id,
                ..Default::default()
            },
        )
        .await?;
    let ws = c
        .create_workspace(
            "me",
            &CreateWorkspaceRequest {
                name: format!("demo-{suffix}"),
                template_id: Some(template.id),
                ..Default::default()
            },
        )
        .await?;
    println!("created workspace {} ({})", ws.name, ws.id);
    let started = build_and_follow(&c, &ws.latest_build).await?;
    for r in &started.resources {
        println!("  resource {}.{}", r.resource_type, r.name);
    }
    for transition in ["stop", "delete"] {
        let b = c.create_build(ws.id, &CreateWorkspaceBuildRequest::new(transition)).await?;
        build_and_follow(&c, &b).await?;
    }
    println!("demo finished: the workspace was started, stopped and deleted");
    Ok(())
}
