//! The daemon's template archive cache: files are fetched from the server in
//! chunks once and kept by sha256, so a template used by many builds is
//! transferred once. A downloaded file whose digest does not match is
//! rejected, never cached.

use std::path::PathBuf;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::credentials::Credentials;
use crate::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use crate::protocol::{download_to_proto, Download};

#[derive(Debug, Clone)]
pub struct ArchiveCache {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("download failed: {0}")]
    Download(#[from] tonic::Status),
    #[error("file hash {0:?} is not a sha256 hex digest")]
    BadHash(String),
    #[error("downloaded file has sha256 {got}, expected {want}")]
    Mismatch { got: String, want: String },
    #[error("cache i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl ArchiveCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Returns the archive, from the cache or downloaded into it.
    pub async fn fetch(
        &self,
        client: &ProvisionerDaemonClient<Channel>,
        credentials: &Credentials,
        file: &Download,
        hash: &str,
    ) -> Result<Bytes, CacheError> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CacheError::BadHash(hash.to_owned()));
        }
        let path = self.dir.join(hash);
        if let Ok(data) = tokio::fs::read(&path).await {
            if hex::encode(Sha256::digest(&data)) == hash {
                return Ok(data.into());
            }
        }
        let data = download(client, credentials, file).await?;
        let got = hex::encode(Sha256::digest(&data));
        if got != hash {
            return Err(CacheError::Mismatch { got, want: hash.to_owned() });
        }
        tokio::fs::create_dir_all(&self.dir).await?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = self.dir.join(format!("{hash}.{}.tmp", uuid::Uuid::new_v4()));
        tokio::fs::write(&tmp, &data).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(data.into())
    }
}

async fn download(
    client: &ProvisionerDaemonClient<Channel>,
    credentials: &Credentials,
    file: &Download,
) -> Result<Vec<u8>, CacheError> {
    // The file, and for which job of which daemon: the server serves a file
    // only to the daemon running a job that uses it.
    let mut request = tonic::Request::new(download_to_proto(*file));
    credentials.apply(&mut request)?;
    let mut stream = client.clone().download_file(request).await?.into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        data.extend_from_slice(&chunk.data);
    }
    Ok(data)
}
