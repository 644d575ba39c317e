//! Pure rules about which build may follow which, and when a template
//! version may back a build or a template: seed 000's transition table and
//! the "import succeeded" gate. No I/O: the use cases (`app/builds.rs`,
//! `app/templates.rs`) read what these need and say the outcome in their
//! own words.

use super::{Job, JobStatus, Transition};

/// Seed 000's "invalid state transition" rule, given whether the workspace
/// is deleted, the latest build's transition and its job's final status.
/// The error says why, in words fit for the caller.
pub fn check_transition(
    deleted: bool,
    last: Transition,
    last_status: JobStatus,
    next: Transition,
) -> Result<(), &'static str> {
    let succeeded = last_status == JobStatus::Succeeded;
    if deleted || (last == Transition::Delete && succeeded) {
        return Err("the workspace has been deleted");
    }
    if next == Transition::Stop && last == Transition::Stop && succeeded {
        return Err("the workspace is already stopped");
    }
    Ok(())
}

/// Why a template version cannot back a build or a template yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotImported {
    /// The import ended without success (failed, canceled or canceling),
    /// with the job's error if it has one.
    Failed { status: JobStatus, error: Option<String> },
    /// The import is still pending or running.
    Unfinished { status: JobStatus },
}

/// The one "import succeeded" gate: a version backs a template or a build
/// only once its import job succeeded.
pub fn check_imported(import: &Job) -> Result<(), NotImported> {
    match import.status() {
        JobStatus::Succeeded => Ok(()),
        status @ (JobStatus::Failed | JobStatus::Canceled | JobStatus::Canceling) => {
            Err(NotImported::Failed { status, error: import.error.clone() })
        }
        status => Err(NotImported::Unfinished { status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row: deleted, last transition, last status, next transition,
    /// and whether the build may be queued.
    #[test]
    fn the_transition_table() {
        use JobStatus::*;
        use Transition::*;
        let table = [
            (false, Stop, Succeeded, Stop, false), // stop a stopped workspace
            (false, Stop, Succeeded, Start, true), // start it again
            (false, Stop, Succeeded, Delete, true), // delete a stopped workspace
            (false, Start, Succeeded, Stop, true), // stop a running workspace
            (false, Start, Succeeded, Start, true), // restart with new parameters
            (false, Start, Failed, Stop, true),    // stop after a failed start
            (false, Stop, Failed, Stop, true),     // retry a failed stop
            (false, Stop, Canceled, Stop, true),   // retry a canceled stop
            (false, Delete, Succeeded, Start, false), // start a deleted workspace
            (false, Delete, Succeeded, Delete, false), // delete it twice
            (false, Delete, Failed, Delete, true), // retry a failed delete
            (false, Delete, Failed, Start, true),  // give up deleting
            (false, Start, Canceled, Start, true), // retry a canceled start
            (true, Start, Succeeded, Delete, false), // the workspace row is deleted
            (true, Stop, Failed, Start, false),
        ];
        for (deleted, last, status, next, ok) in table {
            let got = check_transition(deleted, last, status, next);
            assert_eq!(got.is_ok(), ok, "deleted={deleted} {last} {status} -> {next}: {got:?}");
        }
        assert_eq!(
            check_transition(false, Stop, Succeeded, Stop),
            Err("the workspace is already stopped")
        );
        assert_eq!(
            check_transition(true, Start, Succeeded, Start),
            Err("the workspace has been deleted")
        );
    }

    #[test]
    fn only_a_succeeded_import_backs_a_build() {
        let origin = crate::domain::JobOrigin {
            organization_id: uuid::Uuid::nil(),
            initiator_id: uuid::Uuid::nil(),
            file_id: uuid::Uuid::nil(),
        };
        let input = crate::domain::JobInput::TemplateVersionImport {
            template_version_id: uuid::Uuid::nil(),
            user_variable_values: Vec::new(),
        };
        let mut job = Job::queued(
            crate::domain::JobType::TemplateVersionImport,
            crate::domain::Provisioner::Echo,
            origin,
            &input,
            Default::default(),
        )
        .expect("job");
        assert_eq!(
            check_imported(&job),
            Err(NotImported::Unfinished { status: JobStatus::Pending })
        );
        job.started_at = Some(chrono::Utc::now());
        assert_eq!(
            check_imported(&job),
            Err(NotImported::Unfinished { status: JobStatus::Running })
        );
        job.canceled_at = job.started_at;
        assert!(matches!(check_imported(&job), Err(NotImported::Failed { .. })), "canceling");
        job.canceled_at = None;
        job.completed_at = job.started_at;
        assert_eq!(check_imported(&job), Ok(()));
        job.error = Some("terraform init failed".into());
        assert_eq!(
            check_imported(&job),
            Err(NotImported::Failed {
                status: JobStatus::Failed,
                error: Some("terraform init failed".into())
            })
        );
    }
}
