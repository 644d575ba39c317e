//! `templates push|list|versions`. A push packs the directory (honouring
//! `.gitignore` and `.provisionerdignore`, leaving out `.terraform` and
//! `.git`), uploads it, follows the import's logs, then creates the
//! template or adds the version and (unless `--activate=false`) makes it
//! the active one.

use std::path::Path;

use anyhow::{bail, Context};

use super::args::{PushArgs, TemplatesCommand};
use super::output::{ago, confirm, list};
use super::{follow, session};
use crate::sdk::{
    Client, CreateTemplateRequest, CreateTemplateVersionRequest, Template, WorkspaceBuildParameter,
};

pub async fn run(cmd: TemplatesCommand) -> anyhow::Result<()> {
    let c = session::client()?;
    match cmd {
        TemplatesCommand::Push(a) => push(&c, a).await,
        TemplatesCommand::List(o) => {
            let org = organization(&c).await?;
            let templates = c.templates(&org).await.context("cannot list templates")?;
            let rows = templates
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.provisioner.clone(),
                        t.active_version_id.to_string(),
                        ago(t.updated_at),
                    ]
                })
                .collect();
            list(o.output, &templates, &["name", "provisioner", "active version", "updated"], rows)
        }
        TemplatesCommand::Versions { name, output } => {
            let t = template(&c, &name).await?;
            let versions = c.template_versions(t.id).await.context("cannot list versions")?;
            let rows = versions
                .iter()
                .map(|v| {
                    let active = if v.id == t.active_version_id { "active" } else { "" };
                    vec![
                        v.name.clone(),
                        ago(v.created_at),
                        v.created_by.username.clone(),
                        v.job.status.clone(),
                        active.to_owned(),
                    ]
                })
                .collect();
            list(output.output, &versions, &["name", "created", "created by", "status", ""], rows)
        }
    }
}

/// The caller's organization (its id, which every route accepts).
pub async fn organization(c: &Client) -> anyhow::Result<String> {
    let orgs = c.user_organizations("me").await.context("cannot read your organizations")?;
    let org = orgs.iter().find(|o| o.is_default).or(orgs.first());
    match org {
        Some(o) => Ok(o.id.to_string()),
        None => bail!("you belong to no organization: ask an owner to add you to one"),
    }
}

/// A template by name; unknown names say so.
pub async fn template(c: &Client, name: &str) -> anyhow::Result<Template> {
    let org = organization(c).await?;
    match c.template_by_name(&org, name).await {
        Ok(t) => Ok(t),
        Err(e) if e.status() == Some(404) => {
            bail!("template {name:?} not found: `provisionerd templates list` shows the templates")
        }
        Err(e) => Err(e).with_context(|| format!("cannot read template {name:?}")),
    }
}

async fn push(c: &Client, a: PushArgs) -> anyhow::Result<()> {
    let org = organization(c).await?;
    let existing = match c.template_by_name(&org, &a.name).await {
        Ok(t) => Some(t),
        Err(e) if e.status() == Some(404) => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read template {:?}", a.name)),
    };
    if !a.directory.is_dir() {
        bail!(
            "{} is not a directory: give the template's directory with -d",
            a.directory.display()
        );
    }
    let question = match &existing {
        None => format!("Create template {:?} from {}?", a.name, a.directory.display()),
        Some(_) => {
            format!("Push {} as a new version of template {:?}?", a.directory.display(), a.name)
        }
    };
    confirm(a.yes.yes, &question)?;
    let data = tar(&a.directory)?;
    say!("uploading {} ({} KiB)", a.directory.display(), data.len().div_ceil(1024));
    let file = c.upload_tar(data).await.context("cannot upload the template")?;
    let mut req = CreateTemplateVersionRequest::new(file, &a.provisioner);
    req.template_id = existing.as_ref().map(|t| t.id);
    req.message = a.message.clone();
    req.user_variable_values = a
        .variables
        .iter()
        .map(|(name, value)| WorkspaceBuildParameter { name: name.clone(), value: value.clone() })
        .collect();
    let version = c
        .create_template_version(&org, &req)
        .await
        .context("the server refused the template version")?;
    let what = format!("import of {} version {}", a.name, version.name);
    follow::import(c, version.id, &what).await?;
    match existing {
        None => {
            let req = CreateTemplateRequest {
                name: a.name.clone(),
                template_version_id: version.id,
                ..Default::default()
            };
            c.create_template(&org, &req).await.context("cannot create the template")?;
            say!("created template {} (version {})", a.name, version.name);
        }
        Some(t) if a.activate => {
            c.promote(t.id, version.id).await.context("cannot activate the version")?;
            say!("version {} of {} is now active", version.name, a.name);
        }
        Some(_) => say!(
            "version {} of {} pushed; the active version is unchanged (--activate=false)",
            version.name,
            a.name
        ),
    }
    Ok(())
}

/// Packs `dir` as a tar archive, honouring ignore files.
fn tar(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let walk = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .require_git(false)
        .add_custom_ignore_filename(".provisionerdignore")
        .filter_entry(|e| !matches!(e.file_name().to_str(), Some(".terraform" | ".git")))
        .build();
    for entry in walk {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        let rel = path.strip_prefix(dir).unwrap_or(path);
        if rel.as_os_str().is_empty() {
            continue;
        }
        let added = match entry.file_type() {
            Some(t) if t.is_dir() => builder.append_dir(rel, path),
            _ => builder.append_path_with_name(path, rel),
        };
        added.with_context(|| format!("cannot pack {}", path.display()))?;
    }
    builder.into_inner().context("cannot pack the template")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ignored files, `.terraform` and `.git` stay out of the archive.
    #[test]
    fn the_archive_honours_ignore_files() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path();
        std::fs::write(p.join("main.tf"), "# tf").expect("write");
        std::fs::write(p.join(".gitignore"), "secret.tfvars\n").expect("write");
        std::fs::write(p.join(".provisionerdignore"), "big/\n").expect("write");
        std::fs::write(p.join("secret.tfvars"), "x").expect("write");
        for d in ["big", ".terraform", "mod"] {
            std::fs::create_dir(p.join(d)).expect("mkdir");
            std::fs::write(p.join(d).join("f.tf"), "x").expect("write");
        }
        let data = tar(p).expect("tar");
        let mut archive = tar::Archive::new(data.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").display().to_string())
            .collect();
        assert!(names.contains(&"main.tf".to_owned()), "{names:?}");
        assert!(names.contains(&"mod/f.tf".to_owned()), "{names:?}");
        for gone in ["secret.tfvars", "big/f.tf", ".terraform/f.tf"] {
            assert!(!names.contains(&gone.to_owned()), "{gone} packed: {names:?}");
        }
    }
}
