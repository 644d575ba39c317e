//! Timings of one terraform command, as Coder shows them: `init` and
//! `graph` as one whole step each; `plan` and `apply` as one timing per
//! resource and action, paired from terraform's hook messages by address
//! (a start, then its `complete` or `errored`), timed by terraform's own
//! `@timestamp` (the time the line was read when it has none). A resource
//! still open when the command ends (it failed, or was canceled) ends with
//! the command; a plan or apply that touched no resource shows as one
//! whole step, so every stage that ran is listed. Every timing lies within
//! the command's own start and end, and never ends before it starts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::jsonlog::{Hook, HookEdge};
use crate::domain::{ProvisionerTiming, TimingStage};

/// The stage a terraform command runs, if it is one that is timed.
pub fn stage_of(command: &str) -> Option<TimingStage> {
    match command {
        "init" => Some(TimingStage::Init),
        "plan" => Some(TimingStage::Plan),
        "graph" => Some(TimingStage::Graph),
        "apply" => Some(TimingStage::Apply),
        _ => None,
    }
}

/// What a whole stage's timing says it did.
fn whole_action(stage: TimingStage) -> &'static str {
    match stage {
        TimingStage::Init => "initializing terraform",
        TimingStage::Plan => "planning",
        TimingStage::Graph => "building terraform dependency graph",
        TimingStage::Apply => "applying",
    }
}

/// A resource whose action started and has not ended yet.
struct Open {
    at: DateTime<Utc>,
    provider: String,
    action: String,
}

/// Collects the timings of one command while its output is read.
pub struct Recorder {
    stage: TimingStage,
    started: DateTime<Utc>,
    open: HashMap<String, Open>,
    done: Vec<ProvisionerTiming>,
}

impl Recorder {
    /// A command of `stage` that started at `started`.
    pub fn new(stage: TimingStage, started: DateTime<Utc>) -> Self {
        Self { stage, started, open: HashMap::new(), done: Vec::new() }
    }

    /// Takes one hook message, read at `read_at`.
    pub fn observe(&mut self, hook: &Hook, read_at: DateTime<Utc>) {
        let at = hook.at.unwrap_or(read_at);
        match hook.edge {
            HookEdge::Start => {
                let open =
                    Open { at, provider: hook.provider.clone(), action: hook.action.clone() };
                self.open.insert(hook.addr.clone(), open);
            }
            HookEdge::End => {
                // An end without its start (a line lost to the line limit)
                // still counts, as an instant.
                let open = self.open.remove(&hook.addr).unwrap_or(Open {
                    at,
                    provider: hook.provider.clone(),
                    action: hook.action.clone(),
                });
                self.push(open, at, hook.addr.clone());
            }
        }
    }

    fn push(&mut self, open: Open, ended_at: DateTime<Utc>, resource: String) {
        self.done.push(ProvisionerTiming {
            started_at: open.at,
            ended_at,
            stage: self.stage,
            source: open.provider,
            action: open.action,
            resource,
        });
    }

    /// The command's timings, once it ended at `ended`, oldest first.
    pub fn finish(mut self, ended: DateTime<Utc>) -> Vec<ProvisionerTiming> {
        let ended = ended.max(self.started);
        let mut open: Vec<(String, Open)> = self.open.drain().collect();
        open.sort_by(|a, b| a.1.at.cmp(&b.1.at).then_with(|| a.0.cmp(&b.0)));
        for (addr, o) in open {
            self.push(o, ended, addr);
        }
        if self.done.is_empty() {
            self.done.push(ProvisionerTiming {
                started_at: self.started,
                ended_at: ended,
                stage: self.stage,
                source: "terraform".into(),
                action: whole_action(self.stage).into(),
                resource: "state file".into(),
            });
        }
        // Terraform's clock and ours are the same clock, but a timestamp is
        // only as good as its printer: keep every timing inside the command.
        for t in &mut self.done {
            t.started_at = t.started_at.clamp(self.started, ended);
            t.ended_at = t.ended_at.clamp(t.started_at, ended);
        }
        self.done.sort_by_key(|a| a.started_at);
        self.done
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 7, 0, 0).single().expect("time")
            + Duration::milliseconds(ms)
    }

    fn hook(edge: HookEdge, addr: &str, at: Option<i64>) -> Hook {
        Hook {
            edge,
            addr: addr.into(),
            provider: "coder".into(),
            action: "create".into(),
            at: at.map(t),
        }
    }

    fn spans(timings: &[ProvisionerTiming]) -> Vec<(&str, i64, i64)> {
        let ms = |d: DateTime<Utc>| (d - t(0)).num_milliseconds();
        timings.iter().map(|x| (x.resource.as_str(), ms(x.started_at), ms(x.ended_at))).collect()
    }

    #[test]
    fn resources_are_paired_by_address_and_kept_within_the_command() {
        let mut r = Recorder::new(TimingStage::Apply, t(100));
        r.observe(&hook(HookEdge::Start, "coder_agent.main", Some(200)), t(900));
        r.observe(&hook(HookEdge::Start, "terraform_data.vm[0]", Some(150)), t(900));
        r.observe(&hook(HookEdge::End, "terraform_data.vm[0]", Some(400)), t(900));
        // No timestamp: the time it was read.
        r.observe(&hook(HookEdge::End, "coder_agent.main", None), t(500));
        // An end without a start is an instant; a start before the command
        // (a clock step) is moved to the command's start.
        r.observe(&hook(HookEdge::End, "coder_app.code", Some(600)), t(900));
        r.observe(&hook(HookEdge::Start, "coder_metadata.vm", Some(50)), t(900));
        r.observe(&hook(HookEdge::End, "coder_metadata.vm", Some(5000)), t(900));
        let got = r.finish(t(1000));
        assert_eq!(
            spans(&got),
            [
                ("coder_metadata.vm", 100, 1000),
                ("terraform_data.vm[0]", 150, 400),
                ("coder_agent.main", 200, 500),
                ("coder_app.code", 600, 600),
            ]
        );
        assert!(got.iter().all(|x| x.stage == TimingStage::Apply && x.source == "coder"));
    }

    #[test]
    fn an_unfinished_resource_ends_with_the_command_and_an_idle_stage_is_one_step() {
        let mut r = Recorder::new(TimingStage::Apply, t(0));
        r.observe(&hook(HookEdge::Start, "terraform_data.slow", Some(10)), t(10));
        assert_eq!(spans(&r.finish(t(300))), [("terraform_data.slow", 10, 300)]);

        let idle = Recorder::new(TimingStage::Plan, t(0)).finish(t(50));
        assert_eq!(spans(&idle), [("state file", 0, 50)]);
        assert_eq!((idle[0].source.as_str(), idle[0].action.as_str()), ("terraform", "planning"));
        let init = Recorder::new(TimingStage::Init, t(0)).finish(t(20));
        assert_eq!(init[0].action, "initializing terraform");
        assert_eq!(stage_of("graph"), Some(TimingStage::Graph));
        assert_eq!(stage_of("show"), None);
    }
}
