//! The servers a daemon may connect to: one gRPC client per URL (replicas of
//! one control plane on one database), which of them the daemon uses now,
//! and the order it tries them in when a connection fails or is lost.
//!
//! It opens no connection itself (clients connect lazily) and knows nothing
//! of sessions or jobs: the connection manager in [`super::session`] asks
//! for the current server, says when an attempt failed, and this module
//! answers which server is next and whether a pause is due first. A server
//! that is lost is left for the next one in turn, so a daemon whose replica
//! died resumes its jobs on another one within one connect attempt.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::{WorkerError, WorkerSettings};
use crate::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use crate::protocol;

/// One server the daemon may connect to.
pub struct Server {
    pub url: String,
    pub client: ProvisionerDaemonClient<Channel>,
}

/// The daemon's servers, in the order given, and which one it uses.
pub struct Servers {
    list: Vec<Server>,
    current: usize,
    /// Attempts that failed in a row, one server each: a pause is due after
    /// every server has failed once, not after each.
    failed: usize,
    /// Servers in a row that refused this daemon's protocol version.
    refused: usize,
}

/// What to do after a failed connect attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try the next server now: it has not failed in this round.
    TryNext,
    /// Every server failed once: pause, then start a new round.
    Pause,
}

impl Servers {
    /// A client for `settings.url` and each of `settings.fallback_urls`
    /// (each URL once, in order).
    pub fn new(settings: &WorkerSettings) -> Result<Self, WorkerError> {
        let mut urls: Vec<&String> = Vec::new();
        for url in std::iter::once(&settings.url).chain(&settings.fallback_urls) {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        let list = urls
            .into_iter()
            .map(|url| {
                let client = client(url, settings.ca_pem.as_deref())?;
                Ok(Server { url: url.clone(), client })
            })
            .collect::<Result<_, WorkerError>>()?;
        Ok(Self { list, current: 0, failed: 0, refused: 0 })
    }

    /// The server to connect to now.
    pub fn current(&self) -> &Server {
        &self.list[self.current]
    }

    /// A client for each server, the current one first, then the others
    /// in the order they are tried.
    pub fn clients_from_current(&self) -> Vec<ProvisionerDaemonClient<Channel>> {
        let n = self.list.len();
        (0..n).map(|i| self.list[(self.current + i) % n].client.clone()).collect()
    }

    /// Every server's URL, in the order they are tried.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|s| s.url.as_str())
    }

    /// A session opened: the next failure starts a new round.
    pub fn connected(&mut self) {
        self.failed = 0;
        self.refused = 0;
    }

    /// The session with the current server ended: the next attempt goes to
    /// the next server, which may well be alive when this one is not.
    pub fn lost(&mut self) {
        self.advance();
    }

    /// An attempt on the current server failed; moves on to the next.
    pub fn failed(&mut self) -> AfterFailure {
        self.refused = 0;
        self.count_failure()
    }

    /// The current server refused this daemon's protocol version. `None`
    /// when every server did, in a row (retrying cannot help then); a
    /// replica still on another version during an upgrade is skipped.
    pub fn refused(&mut self) -> Option<AfterFailure> {
        self.refused += 1;
        if self.refused >= self.list.len() {
            return None;
        }
        Some(self.count_failure())
    }

    fn count_failure(&mut self) -> AfterFailure {
        self.advance();
        self.failed += 1;
        if self.failed >= self.list.len() {
            self.failed = 0;
            AfterFailure::Pause
        } else {
            AfterFailure::TryNext
        }
    }

    fn advance(&mut self) {
        self.current = (self.current + 1) % self.list.len();
    }
}

/// A lazily connecting client for one server URL.
fn client(
    url: &str,
    ca_pem: Option<&[u8]>,
) -> Result<ProvisionerDaemonClient<Channel>, WorkerError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|source| WorkerError::Url { url: url.to_owned(), source })?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let endpoint = if url.starts_with("https://") {
        let tls = match ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint
            .tls_config(tls)
            .map_err(|source| WorkerError::Tls { url: url.to_owned(), source })?
    } else {
        endpoint
    };
    Ok(ProvisionerDaemonClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(protocol::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(protocol::MAX_MESSAGE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(urls: &[&str]) -> Servers {
        let mut settings = WorkerSettings::new(urls[0]);
        settings.fallback_urls = urls[1..].iter().map(|u| u.to_string()).collect();
        Servers::new(&settings).expect("servers")
    }

    fn url(s: &Servers) -> &str {
        &s.current().url
    }

    /// Each server is tried once before a pause; a lost server is left for
    /// the next one; the same URL given twice is one server.
    #[tokio::test]
    async fn failures_go_round_the_servers_then_pause() {
        let mut s = servers(&["http://a:1", "http://b:1", "http://a:1", "http://c:1"]);
        assert_eq!(s.urls().count(), 3, "a repeated URL is one server");
        assert_eq!(url(&s), "http://a:1", "the first URL is tried first");
        assert_eq!(s.failed(), AfterFailure::TryNext);
        assert_eq!(url(&s), "http://b:1");
        assert_eq!(s.failed(), AfterFailure::TryNext);
        assert_eq!(s.failed(), AfterFailure::Pause, "all three failed once");
        assert_eq!(url(&s), "http://a:1");
        assert_eq!(s.failed(), AfterFailure::TryNext, "a new round");
        s.connected();
        s.lost();
        assert_eq!(url(&s), "http://c:1", "b was lost: c is next");
        assert_eq!(s.failed(), AfterFailure::TryNext, "the round starts at the connection");
    }

    /// One server: every failure pauses, and a refusal of the protocol
    /// version stops the daemon, as before there were several.
    #[tokio::test]
    async fn one_server_pauses_after_each_failure() {
        let mut s = servers(&["http://a:1"]);
        assert_eq!(s.failed(), AfterFailure::Pause);
        s.lost();
        assert_eq!(url(&s), "http://a:1");
        assert_eq!(s.refused(), None);
    }

    /// A replica on another protocol version is skipped; only when every
    /// server refused in a row does the daemon give up.
    #[tokio::test]
    async fn refusals_stop_only_when_every_server_refused() {
        let mut s = servers(&["http://a:1", "http://b:1"]);
        assert_eq!(s.refused(), Some(AfterFailure::TryNext));
        assert_eq!(s.failed(), AfterFailure::Pause, "b is down, not refusing");
        assert_eq!(s.refused(), Some(AfterFailure::TryNext), "the refusals were not in a row");
        assert_eq!(s.refused(), None, "both refused in a row");
    }

    #[tokio::test]
    async fn a_malformed_url_is_refused_naming_it() {
        let mut settings = WorkerSettings::new("http://a:1");
        settings.fallback_urls = vec!["http://bad host:1".into()];
        let e = Servers::new(&settings).err().expect("malformed url").to_string();
        assert!(e.contains("bad host"), "{e}");
    }
}
