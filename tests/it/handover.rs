//! The two-phase handover, driven by hand at the protocol level: a job
//! offered to a daemon that declines it (shutting down) or vanishes before
//! acknowledging goes back to pending, never lost and never stuck.

use std::time::Duration;

use provisionerd::proto::provisioner_daemon_client::ProvisionerDaemonClient;
use provisionerd::proto::{self, daemon_message::Msg as Out, server_message::Msg as In};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::*;

/// A bare protocol session: what a daemon sends, and what it receives.
struct RawSession {
    tx: mpsc::Sender<proto::DaemonMessage>,
    inbound: tonic::Streaming<proto::ServerMessage>,
}

async fn open(url: &str, psk: &str) -> RawSession {
    let mut client = ProvisionerDaemonClient::connect(url.to_owned()).await.expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let hello = proto::Hello {
        daemon_id: uuid::Uuid::new_v4().to_string(),
        name: "raw".into(),
        version: "test".into(),
        tags: Default::default(),
        provisioners: vec!["echo".into()],
        running_job_ids: vec![],
        protocol: Some(provisionerd::protocol::PROTOCOL_VERSION.into()),
    };
    tx.send(proto::DaemonMessage { msg: Some(Out::Hello(hello)) }).await.expect("hello");
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.metadata_mut().insert("x-provisionerd-psk", psk.parse().expect("ascii"));
    let inbound = client.session(request).await.expect("session").into_inner();
    RawSession { tx, inbound }
}

impl RawSession {
    async fn send(&self, msg: Out) {
        self.tx.send(proto::DaemonMessage { msg: Some(msg) }).await.expect("send");
    }

    /// The next job offer (skipping the welcome).
    async fn next_offer(&mut self) -> proto::JobOffer {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
                .await
                .expect("an offer in time")
                .expect("stream")
                .expect("message");
            if let Some(In::Offer(offer)) = msg.msg {
                return offer;
            }
        }
    }
}

async fn wait_pending(c: &provisionerd::sdk::Client, version: uuid::Uuid) {
    wait_for("the job to be pending again", Duration::from_secs(30), || async {
        let v = c.template_version(version).await.ok()?;
        (v.job.status == "pending" && v.job.queue_position == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_or_unacknowledged_offers_return_to_the_queue() {
    let psk = format!("handover-{}", uuid::Uuid::new_v4().simple());
    let server =
        TestServer::start(Opts { builtin_daemons: 0, psk: Some(psk.clone()), ..Opts::default() })
            .await;
    let c = server.client().await;
    let echo = echo_template(&json!({}));
    let file =
        c.upload_tar(provisionerd::sdk::tar_dir(echo.path()).expect("tar")).await.expect("upload");
    let req = provisionerd::sdk::CreateTemplateVersionRequest::new(file, "echo");
    let version = c.create_template_version("coder", &req).await.expect("version").id;

    // A daemon that is shutting down declines the offer.
    let mut first = open(&server.url, &psk).await;
    first.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let offer = first.next_offer().await;
    let offered = c.template_version(version).await.expect("version");
    assert_eq!(offered.job.status, "running", "handed over: {offered:?}");
    first.send(Out::Reject(proto::Reject { job_id: offer.job_id.clone() })).await;
    wait_pending(&c, version).await;

    // A daemon that vanishes between offer and acknowledgement.
    let mut second = open(&server.url, &psk).await;
    second.send(Out::Acquire(proto::Acquire { slots: 1 })).await;
    let again = second.next_offer().await;
    assert_eq!(again.job_id, offer.job_id, "the same job is offered again");
    drop(second);
    wait_pending(&c, version).await;
    drop(first);
    server.stop().await;
}
