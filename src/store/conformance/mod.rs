//! The store conformance suite: what every [`Store`] backend must do, as
//! named cases written against `&dyn Store` only (no SQL, no backend types),
//! so a second backend runs the same checks by providing a constructor.
//!
//! Each case is a public `async fn case(store: &dyn Store)` that starts from
//! an empty store, sets up what it needs through the trait and asserts what
//! the trait returns. The cases live in one file per area (accounts, files and
//! templates, workspaces and builds, the queue, logs, completion, the
//! reaper's contract) and are listed once, in [`for_each_case!`], from which
//! both [`CASES`] (name → fn) and one `#[tokio::test]` per case are made:
//! a failure names its case. A backend's tests are one line,
//! `for_each_case!(tests_per_case, fresh_store)`, where `fresh_store` is an
//! `async fn() -> (Arc<dyn Store>, Guard)` and the guard keeps what the store
//! lives on (a temp dir, a scratch database) until the case ends; see
//! `sqlite.rs`. A unit test checks that every method of the trait is
//! called by some case, so a method added later without a case fails it.

use futures::future::BoxFuture;

use super::Store;

pub mod accounts;
pub mod completion;
pub mod daemons;
pub mod fixture;
pub mod logs;
mod postgres;
pub mod queue;
pub mod reaper;
mod sqlite;
pub mod templates;
pub mod workspaces;

/// Calls `$then! { ($args) module::case, ... }` with every case of the
/// suite: the one list the table and each backend's tests are made from.
macro_rules! for_each_case {
    ($then:ident $(, $arg:tt)*) => {
        $then! {
            ($($arg)*)
            accounts::fresh_store_takes_writes,
            accounts::first_user_is_unique_under_a_race,
            accounts::user_lookups_ignore_case,
            accounts::user_roles_are_replaced,
            accounts::api_keys_insert_get_delete,
            accounts::default_organization_is_created_once,
            accounts::provisioner_keys_by_name_per_organization,
            templates::files_are_deduplicated_per_uploader,
            templates::template_version_comes_with_its_import_job,
            templates::template_names_are_unique,
            templates::a_version_backs_one_template,
            templates::active_version_moves_within_a_template,
            workspaces::workspace_with_its_first_build,
            workspaces::workspace_names_are_unique_while_live,
            workspaces::one_active_build_per_workspace,
            workspaces::workspaces_are_paged_and_filtered,
            workspaces::builds_are_paged_newest_first,
            workspaces::settings_deadlines_and_scheduler_candidates,
            workspaces::workspaces_are_filtered_by_query,
            workspaces::views_agree_with_the_one_row_lookups,
            queue::acquire_takes_the_oldest_job_first,
            queue::acquire_follows_tags_and_provisioner,
            queue::acquire_looks_past_jobs_no_daemon_takes,
            queue::racing_acquirers_get_each_job_once,
            queue::release_only_by_the_owner_of_a_running_job,
            queue::queue_position_counts_pending_jobs,
            logs::logs_store_only_sequences_above_the_highest,
            logs::logs_are_read_by_id_range,
            logs::logs_of_an_unknown_job_are_refused,
            completion::import_result_and_resources_by_transition,
            completion::only_the_owner_completes_once,
            completion::successful_build_stores_state_and_resources,
            completion::successful_delete_marks_the_workspace_deleted,
            completion::cancel_outcomes,
            completion::fail_job_ignores_the_owner,
            completion::late_results_keep_the_state,
            completion::agents_are_found_in_their_newest_build,
            completion::dry_runs_that_ended_change_nothing,
            completion::a_start_build_gets_its_deadline_with_the_completion,
            completion::timings_are_stored_with_the_completion,
            reaper::heartbeat_marks_only_the_daemons_own_jobs,
            reaper::stale_jobs_by_last_heard_of_time,
            reaper::pending_jobs_before_a_time,
            daemons::daemons_belong_to_their_latest_session,
            daemons::stale_daemons_expire,
        }
    };
}
pub(crate) use for_each_case;

/// One case of the suite.
pub struct Case {
    /// `area::case`, as the case's function is named.
    pub name: &'static str,
    pub run: for<'a> fn(&'a dyn Store) -> BoxFuture<'a, ()>,
}

/// Builds [`CASES`] from the list.
macro_rules! case_table {
    (() $($area:ident :: $case:ident),* $(,)?) => {
        /// Every case of the suite, in the order of [`for_each_case!`].
        pub const CASES: &[Case] = &[$(
            Case {
                name: concat!(stringify!($area), "::", stringify!($case)),
                run: {
                    fn run(store: &dyn Store) -> BoxFuture<'_, ()> {
                        Box::pin($area::$case(store))
                    }
                    run
                },
            }
        ),*];
    };
}
for_each_case!(case_table);

/// Makes one `#[tokio::test]` per case, each on a store of its own from
/// `$fresh().await`, which returns the store and a guard to drop after.
macro_rules! tests_per_case {
    (($fresh:path) $($area:ident :: $case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let (store, guard) = $fresh().await;
            $crate::store::conformance::$area::$case(store.as_ref()).await;
            drop(store);
            drop(guard);
        }
    )*};
}
pub(crate) use tests_per_case;

/// The trait's methods, as declared in `store/mod.rs`, and those of its
/// supertrait `Replicas` in `store/daemons.rs`.
fn trait_methods() -> Vec<&'static str> {
    let mut methods = methods_of(include_str!("../mod.rs"), "pub trait Store");
    methods.extend(methods_of(include_str!("../daemons.rs"), "pub trait Replicas"));
    methods
}

fn methods_of(source: &'static str, header: &str) -> Vec<&'static str> {
    let start = source.find(header).expect("the trait");
    let body = &source[start..];
    let end = body.find("\n}\n").expect("the trait's end");
    body[..end]
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("async fn "))
        .filter_map(|rest| rest.split('(').next())
        .collect()
}

/// The suite's files by area, as the cases' names start.
const AREAS: [(&str, &str); 8] = [
    ("accounts", include_str!("accounts.rs")),
    ("completion", include_str!("completion.rs")),
    ("daemons", include_str!("daemons.rs")),
    ("logs", include_str!("logs.rs")),
    ("queue", include_str!("queue.rs")),
    ("reaper", include_str!("reaper.rs")),
    ("templates", include_str!("templates.rs")),
    ("workspaces", include_str!("workspaces.rs")),
];

/// Every method of [`Store`] is called by at least one case: a method added
/// to the trait without a case fails here.
#[test]
fn every_store_method_has_a_case() {
    let suite: String = AREAS.iter().map(|(_, source)| *source).collect();
    let methods = trait_methods();
    assert!(methods.len() > 40, "found the trait's methods: {methods:?}");
    let missing: Vec<_> = methods.iter().filter(|m| !suite.contains(&format!(".{m}("))).collect();
    assert!(missing.is_empty(), "store methods no conformance case calls: {missing:?}");
}

/// Every public `async fn` of an area is a case in the table, once: a case
/// written but not listed would never run.
#[test]
fn every_case_is_listed_once() {
    let listed: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    let mut written = Vec::new();
    for (area, source) in AREAS {
        for line in source.lines() {
            if let Some(rest) = line.strip_prefix("pub async fn ") {
                let name = rest.split('(').next().unwrap_or_default();
                written.push(format!("{area}::{name}"));
            }
        }
    }
    written.sort();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, written, "the cases of for_each_case! and those written");
    assert!(listed.len() > 30, "{listed:?}");
}
