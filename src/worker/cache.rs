//! The daemon's template archive cache: files are fetched from the server in
//! chunks once and kept by sha256, so a template used by many builds is
//! transferred once. A downloaded file whose digest does not match is
//! rejected, never cached. When the connection to the server breaks during
//! a download, the daemon's other servers (replicas serving the same files
//! from the same database) are asked in turn.

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
    /// `clients` are the daemon's servers, the one that offered the job
    /// first.
    pub async fn fetch(
        &self,
        clients: &[ProvisionerDaemonClient<Channel>],
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
        let data = download_any(clients, credentials, file).await?;
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

/// Downloads from the first server that answers. Only a broken connection
/// moves on to the next server; a refusal is every replica's answer (they
/// decide from the same database), so it is returned as it is.
async fn download_any(
    clients: &[ProvisionerDaemonClient<Channel>],
    credentials: &Credentials,
    file: &Download,
) -> Result<Vec<u8>, CacheError> {
    let mut last = tonic::Status::unavailable("the daemon has no server to download from");
    for client in clients {
        match download(client, credentials, file).await {
            Err(CacheError::Download(status)) if connection_broke(&status) => {
                tracing::warn!(error = %status, "template archive download failed; trying the next server");
                last = status;
            }
            other => return other,
        }
    }
    Err(CacheError::Download(last))
}

/// Whether a download failed for want of a working connection (tonic
/// reports a reset or closed HTTP/2 stream as `Unknown`).
fn connection_broke(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled)
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use tokio_stream::Stream;
    use tonic::{Request, Response, Status, Streaming};
    use uuid::Uuid;

    use super::*;
    use crate::proto::provisioner_daemon_server::{ProvisionerDaemon, ProvisionerDaemonServer};
    use crate::proto::{DaemonMessage, DownloadFileRequest, FileChunk, ServerMessage};

    type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

    /// A server that serves one file to anyone, or refuses every download.
    struct Files(Result<Vec<u8>, Status>);

    #[tonic::async_trait]
    impl ProvisionerDaemon for Files {
        type SessionStream = BoxStream<ServerMessage>;
        type DownloadFileStream = BoxStream<FileChunk>;

        async fn session(
            &self,
            _: Request<Streaming<DaemonMessage>>,
        ) -> Result<Response<Self::SessionStream>, Status> {
            Err(Status::unimplemented("files only"))
        }

        async fn download_file(
            &self,
            _: Request<DownloadFileRequest>,
        ) -> Result<Response<Self::DownloadFileStream>, Status> {
            let data = self.0.clone()?;
            Ok(Response::new(Box::pin(tokio_stream::iter([Ok(FileChunk { data })]))))
        }
    }

    async fn serve(files: Files) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ProvisionerDaemonServer::new(files))
                .serve_with_incoming(incoming),
        );
        url
    }

    /// A port nothing listens on, as a dead replica's.
    fn dead_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    }

    fn client(url: &str) -> ProvisionerDaemonClient<Channel> {
        let channel =
            tonic::transport::Endpoint::from_shared(url.to_owned()).expect("url").connect_lazy();
        ProvisionerDaemonClient::new(channel)
    }

    fn file() -> Download {
        Download { file_id: Uuid::new_v4(), daemon_id: Uuid::new_v4(), job_id: Uuid::new_v4() }
    }

    /// The server that offered the job died: the archive comes from the
    /// next one, and is checked and cached as ever.
    #[tokio::test]
    async fn a_download_from_a_dead_server_goes_to_the_next() {
        let data = b"template archive".to_vec();
        let hash = hex::encode(Sha256::digest(&data));
        let live = serve(Files(Ok(data.clone()))).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = ArchiveCache::new(dir.path().join("archives"));
        let clients = [client(&dead_url()), client(&live)];
        let got = cache.fetch(&clients, &Credentials::default(), &file(), &hash).await;
        assert_eq!(got.expect("fetched from the live server").as_ref(), data.as_slice());
        assert!(dir.path().join("archives").join(&hash).is_file(), "cached");

        let (credentials, absent) = (Credentials::default(), "0".repeat(64));
        let e = cache.fetch(&clients[..1], &credentials, &file(), &absent).await;
        assert!(matches!(e, Err(CacheError::Download(_))), "no live server: an error");
    }

    /// A server's refusal is final: the next server is not asked.
    #[tokio::test]
    async fn a_refusal_is_not_retried_elsewhere() {
        let refusing = serve(Files(Err(Status::permission_denied("not your job")))).await;
        let serving = serve(Files(Ok(b"x".to_vec()))).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = ArchiveCache::new(dir.path().to_path_buf());
        let clients = [client(&refusing), client(&serving)];
        let hash = hex::encode(Sha256::digest(b"x"));
        match cache.fetch(&clients, &Credentials::default(), &file(), &hash).await {
            Err(CacheError::Download(s)) => assert_eq!(s.code(), tonic::Code::PermissionDenied),
            other => panic!("the refusal is returned: {other:?}"),
        }
    }
}
