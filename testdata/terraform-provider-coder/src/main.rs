//! `terraform-provider-coder`: a test double of the `coder/coder` Terraform
//! provider, speaking plugin protocol v6 over gRPC.
//!
//! Terraform starts it as a hashicorp/go-plugin plugin: with the magic
//! cookie in the environment, it listens on a loopback TCP port, prints the
//! handshake line `1|6|tcp|127.0.0.1:PORT|grpc` on stdout and serves the
//! `tfplugin6.Provider` service plus go-plugin's `GRPCController` (whose
//! `Shutdown` ends the process). When the host asks for automatic mutual TLS
//! (`PLUGIN_CLIENT_CERT`, as Terraform does) it serves TLS and appends its
//! certificate to the handshake line (see `tls`); otherwise plaintext.
//!
//! Its resources touch nothing outside Terraform's state; its data sources
//! read the `CODER_WORKSPACE_*` / `CODER_PARAMETER_*` environment.

mod data_sources;
mod provider;
mod resources;
mod schema;
mod tls;
mod value;

/// The generated protocol code (the service uses only part of it).
#[allow(dead_code, clippy::all)]
mod proto {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use proto::plugin::Empty;
use proto::tfplugin6::provider_server::ProviderServer;

/// go-plugin's handshake cookie for Terraform providers.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's core protocol version, and the plugin protocol (tfplugin6).
const CORE_PROTOCOL_VERSION: u32 = 1;
const PLUGIN_PROTOCOL_VERSION: u32 = 6;

/// go-plugin's controller: `Shutdown` answers, then ends the process.
struct Controller;

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        tokio::spawn(async {
            // Long enough for the response to be written.
            tokio::time::sleep(Duration::from_millis(20)).await;
            std::process::exit(0);
        });
        Ok(Response::new(Empty {}))
    }
}

/// Whether the host offers plugin protocol 6 (an absent list counts as yes).
fn offers_protocol_6() -> bool {
    match std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').any(|v| v.trim() == PLUGIN_PROTOCOL_VERSION.to_string())
        }
        _ => true,
    }
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("terraform-provider-coder {} (test provider)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "This binary is a plugin. These are not meant to be executed directly.\n\
             Please execute the program that consumes these plugins, which will\n\
             load any plugins automatically"
        );
        return ExitCode::FAILURE;
    }
    if !offers_protocol_6() {
        eprintln!("terraform-provider-coder: the host does not offer plugin protocol 6");
        return ExitCode::FAILURE;
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("terraform-provider-coder: starting the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-coder: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Listens, prints the handshake line and serves until shut down.
async fn serve() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let addr = listener.local_addr()?;
    let mtls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.trim().is_empty() => Some(tls::AutoMtls::new(&pem)?),
        _ => None,
    };
    let mut line = format!("{CORE_PROTOCOL_VERSION}|{PLUGIN_PROTOCOL_VERSION}|tcp|{addr}|grpc");
    if let Some(mtls) = &mtls {
        line.push('|');
        line.push_str(&base64_no_pad(&mtls.server_cert));
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    let router = tonic::transport::Server::builder()
        .add_service(ProviderServer::new(provider::CoderProvider::default()))
        .add_service(GrpcControllerServer::new(Controller));
    match mtls {
        Some(mtls) => {
            let incoming = tls_incoming(listener, TlsAcceptor::from(mtls.config));
            router.serve_with_incoming(incoming).await?;
        }
        None => router.serve_with_incoming(TcpIncoming::from(listener)).await?,
    }
    Ok(())
}

/// The TLS connections accepted on `listener`. Handshakes run on their own
/// tasks; a failed one is logged and dropped.
fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("terraform-provider-coder: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Err(e) => eprintln!("terraform-provider-coder: TLS handshake: {e}"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Standard base64 without padding, as go-plugin reads the certificate.
fn base64_no_pad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_no_pad;

    #[test]
    fn base64_without_padding() {
        assert_eq!(base64_no_pad(b""), "");
        assert_eq!(base64_no_pad(b"f"), "Zg");
        assert_eq!(base64_no_pad(b"fo"), "Zm8");
        assert_eq!(base64_no_pad(b"foo"), "Zm9v");
        assert_eq!(base64_no_pad(b"foobar"), "Zm9vYmFy");
    }
}
