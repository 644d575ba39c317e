//! Terraform process control (placeholder until the executor lands).

use std::path::Path;

/// Runs `terraform version -json` and returns the version string.
pub async fn version(path: &Path) -> Result<String, String> {
    let out = tokio::process::Command::new(path)
        .args(["version", "-json"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("terraform not found at {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["terraform_version"].as_str().unwrap_or_default().to_owned())
}
