//! Terraform output of real size with real terraform: a template whose plan
//! JSON is far past a 64 KiB line, and a workspace whose state is 20 MiB,
//! through import, build, the gRPC messages both ways, storage,
//! `GET .../state`, the next build's previous state and a delete.

use std::time::{Duration, Instant};

use provisionerd::sdk::CreateTemplateVersionRequest;
use serde_json::Value;

use crate::harness::*;

/// Template variables for `testdata/templates/big`.
fn size(count: u32, kib: u32) -> impl FnOnce(&mut CreateTemplateVersionRequest) {
    with_vars(&[("count_of", &count.to_string()), ("kib", &kib.to_string())])
}

fn big_inputs(state: &Value) -> Vec<usize> {
    let resources = state["resources"].as_array().cloned().unwrap_or_default();
    resources
        .iter()
        .filter(|r| r["type"] == "terraform_data")
        .flat_map(|r| r["instances"].as_array().cloned().unwrap_or_default())
        // terraform_data keeps its dynamic input as {"value", "type"}.
        .filter_map(|i| i["attributes"]["input"]["value"].as_str().map(str::len))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_past_64_kib_imports() {
    // The case: 12 resources of 5 KiB each made the import fail with
    // "printed invalid JSON" once the plan line was cut at 64 KiB.
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let v = push_version(&c, &template_dir("big"), "terraform", size(12, 5)).await;
    assert_eq!(v.job.status, "succeeded", "{v:?}");
    let resources = c.template_version_resources(v.id).await.expect("get");
    let count =
        resources.iter().filter(|r| r.resource_type == "terraform_data" && r.name == "big").count();
    assert!(count >= 1, "the import saw the resources: {resources:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_state_goes_through_end_to_end() {
    let server = TestServer::start(Opts::default()).await;
    let c = server.client().await;
    let started = Instant::now();
    // 20 resources of 512 KiB: a 20 MiB state, a start plan of 10 MiB and,
    // once the state exists, plan JSON of about 80 MiB.
    let (template, _) = create_template(&c, &template_dir("big"), "terraform", size(20, 512)).await;
    eprintln!("import: {:?}", started.elapsed());
    let ws = create_workspace(&c, template).await;
    let ws_id = ws.id;
    let first_id = ws.latest_build.id;
    let first = wait_build(&c, first_id, Duration::from_secs(180)).await;
    assert_eq!(first.status, "running", "{first:?}");
    eprintln!("first start: {:?}", started.elapsed());

    let first_state = build_state(&c, first_id).await;
    assert!(first_state.len() > 20 << 20, "state of {} bytes", first_state.len());
    let parsed: Value = serde_json::from_str(&first_state).expect("the state is whole JSON");
    let inputs = big_inputs(&parsed);
    assert_eq!(inputs.len(), 20, "every instance is in the stored state");
    assert!(inputs.iter().all(|n| *n > 512 * 1024), "inputs whole: {inputs:?}");

    // The next build starts from that state (the offer carries it), finds
    // nothing to change, and terraform leaves the state file as it was: it
    // comes back byte for byte.
    let second = build(&c, ws_id, "start").await;
    let second_id = second.id;
    let second = wait_build(&c, second_id, Duration::from_secs(180)).await;
    assert_eq!(second.status, "running", "{second:?}");
    let logs = log_outputs(&c, second_id).await;
    let said = |needle: &str| logs.iter().any(|o| o.contains(needle));
    assert!(said("0 added, 0 changed, 0 destroyed"), "nothing was recreated: {logs:?}");
    let second_state = build_state(&c, second_id).await;
    assert!(second_state == first_state, "the previous state went in and came back unchanged");
    eprintln!("second start: {:?}", started.elapsed());

    let delete = build(&c, ws_id, "delete").await;
    let delete_id = delete.id;
    let delete = wait_build(&c, delete_id, Duration::from_secs(180)).await;
    assert_eq!(delete.status, "deleted", "{delete:?}");
    let left: Value =
        serde_json::from_str(&build_state(&c, delete_id).await).expect("state after delete");
    assert!(big_inputs(&left).is_empty(), "everything was destroyed");
    eprintln!("delete: {:?}", started.elapsed());
    server.stop().await;
}
