//! A job offer on the wire: the job, the template file to fetch, and what
//! the job needs to run (a build's transition, previous state, workspace
//! metadata and parameters, or an import's variable values). The server
//! fills in a [`JobOffer`] from its store (`server/offer.rs`); the daemon
//! reads one to run the job (`worker/job.rs`).

use uuid::Uuid;

use super::{parse_id, proto, BadMessage, Wire};
use crate::domain::{JobType, LogLevel, NameValue, Provisioner, Transition};

/// Everything a daemon needs to run a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOffer {
    pub job_id: Uuid,
    pub job_type: JobType,
    pub provisioner: Provisioner,
    pub file: OfferedFile,
    pub input: OfferInput,
}

/// The template archive a job runs, fetched by the daemon itself (once:
/// it caches archives by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedFile {
    pub id: Uuid,
    /// sha256, hex.
    pub hash: String,
    pub size: i64,
}

/// What kind of job, with its own input.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferInput {
    /// Boxed: a build's input is several times an import's.
    WorkspaceBuild(Box<BuildInput>),
    TemplateImport(ImportInput),
}

/// A workspace build's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInput {
    pub build_id: Uuid,
    pub build_number: i32,
    pub transition: Transition,
    /// The previous build's terraform state.
    pub state: Vec<u8>,
    pub dry_run: bool,
    /// The log level the build was asked for, if any.
    pub log_level: Option<LogLevel>,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub owner_email: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_version_id: Uuid,
    pub template_version_name: String,
    pub parameters: Vec<NameValue>,
    /// The template version's variable values (those it was imported with).
    pub variables: Vec<NameValue>,
}

/// A template version import's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInput {
    pub template_version_id: Uuid,
    pub user_variable_values: Vec<NameValue>,
}

/// The offer the server sends.
pub fn offer_to_proto(o: JobOffer) -> proto::JobOffer {
    let input = match o.input {
        OfferInput::WorkspaceBuild(b) => {
            let b = *b;
            proto::job_offer::Input::WorkspaceBuild(proto::WorkspaceBuildInput {
                build_id: b.build_id.to_string(),
                build_number: b.build_number,
                transition: b.transition.to_wire(),
                state: b.state,
                dry_run: b.dry_run,
                log_level: b.log_level.map_or(0, LogLevel::to_wire),
                workspace_id: b.workspace_id.to_string(),
                workspace_name: b.workspace_name,
                owner_id: b.owner_id.to_string(),
                owner_name: b.owner_name,
                owner_email: b.owner_email,
                template_id: b.template_id.to_string(),
                template_name: b.template_name,
                template_version_id: b.template_version_id.to_string(),
                template_version_name: b.template_version_name,
                parameters: params_to_proto(b.parameters),
                variables: params_to_proto(b.variables),
            })
        }
        OfferInput::TemplateImport(t) => {
            proto::job_offer::Input::TemplateImport(proto::TemplateImportInput {
                template_version_id: t.template_version_id.to_string(),
                user_variable_values: params_to_proto(t.user_variable_values),
            })
        }
    };
    proto::JobOffer {
        job_id: o.job_id.to_string(),
        job_type: o.job_type.to_wire(),
        provisioner: o.provisioner.to_string(),
        file_id: o.file.id.to_string(),
        file_hash: o.file.hash,
        file_size: o.file.size,
        input: Some(input),
    }
}

/// Reads the server's offer.
pub fn offer_from_proto(o: proto::JobOffer) -> Result<JobOffer, BadMessage> {
    let input = match o.input {
        Some(proto::job_offer::Input::WorkspaceBuild(b)) => {
            OfferInput::WorkspaceBuild(Box::new(BuildInput {
                build_id: parse_id(&b.build_id, "build_id")?,
                build_number: b.build_number,
                transition: Transition::from_wire(b.transition)?,
                state: b.state,
                dry_run: b.dry_run,
                log_level: match b.log_level {
                    0 => None,
                    level => Some(LogLevel::from_wire(level)?),
                },
                workspace_id: parse_id(&b.workspace_id, "workspace_id")?,
                workspace_name: b.workspace_name,
                owner_id: parse_id(&b.owner_id, "owner_id")?,
                owner_name: b.owner_name,
                owner_email: b.owner_email,
                template_id: parse_id(&b.template_id, "template_id")?,
                template_name: b.template_name,
                template_version_id: parse_id(&b.template_version_id, "template_version_id")?,
                template_version_name: b.template_version_name,
                parameters: params_from_proto(b.parameters),
                variables: params_from_proto(b.variables),
            }))
        }
        Some(proto::job_offer::Input::TemplateImport(t)) => {
            OfferInput::TemplateImport(ImportInput {
                template_version_id: parse_id(&t.template_version_id, "template_version_id")?,
                user_variable_values: params_from_proto(t.user_variable_values),
            })
        }
        None => return Err(BadMessage("the server sent a job without input".into())),
    };
    Ok(JobOffer {
        job_id: parse_id(&o.job_id, "job_id")?,
        job_type: JobType::from_wire(o.job_type)?,
        provisioner: o.provisioner.parse().map_err(|e| BadMessage(format!("{e}")))?,
        file: OfferedFile {
            id: parse_id(&o.file_id, "file_id")?,
            hash: o.file_hash,
            size: o.file_size,
        },
        input,
    })
}

fn params_to_proto(values: Vec<NameValue>) -> Vec<proto::Parameter> {
    values.into_iter().map(|p| proto::Parameter { name: p.name, value: p.value }).collect()
}

fn params_from_proto(values: Vec<proto::Parameter>) -> Vec<NameValue> {
    values.into_iter().map(|p| NameValue { name: p.name, value: p.value }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(name: &str, value: &str) -> NameValue {
        NameValue { name: name.into(), value: value.into() }
    }

    fn build(transition: Transition, log_level: Option<LogLevel>) -> BuildInput {
        BuildInput {
            build_id: Uuid::new_v4(),
            build_number: 3,
            transition,
            state: b"previous".to_vec(),
            dry_run: transition == Transition::Stop,
            log_level,
            workspace_id: Uuid::new_v4(),
            workspace_name: "dev".into(),
            owner_id: Uuid::new_v4(),
            owner_name: "alice".into(),
            owner_email: "alice@example.com".into(),
            template_id: Uuid::new_v4(),
            template_name: "docker".into(),
            template_version_id: Uuid::new_v4(),
            template_version_name: "v1".into(),
            parameters: vec![nv("region", "eu"), nv("size", "")],
            variables: vec![nv("image", "ubuntu")],
        }
    }

    fn offer(job_type: JobType, provisioner: Provisioner, input: OfferInput) -> JobOffer {
        JobOffer {
            job_id: Uuid::new_v4(),
            job_type,
            provisioner,
            file: OfferedFile { id: Uuid::new_v4(), hash: "ab".repeat(32), size: 1234 },
            input,
        }
    }

    #[test]
    fn offers_round_trip_with_every_job_type_transition_and_level() {
        let mut offers = Vec::new();
        for transition in Transition::every() {
            let levels = LogLevel::every().into_iter().map(Some).chain([None]);
            for level in levels {
                let input = OfferInput::WorkspaceBuild(Box::new(build(transition, level)));
                offers.push(offer(JobType::WorkspaceBuild, Provisioner::Terraform, input));
            }
        }
        for job_type in JobType::every() {
            let input = OfferInput::TemplateImport(ImportInput {
                template_version_id: Uuid::new_v4(),
                user_variable_values: vec![nv("image", "debian")],
            });
            offers.push(offer(job_type, Provisioner::Echo, input));
        }
        for o in offers {
            assert_eq!(offer_from_proto(offer_to_proto(o.clone())), Ok(o));
        }
    }

    #[test]
    fn unreadable_offers_are_bad_messages() {
        let good = offer_to_proto(offer(
            JobType::WorkspaceBuild,
            Provisioner::Echo,
            OfferInput::WorkspaceBuild(Box::new(build(Transition::Start, None))),
        ));
        let no_input = proto::JobOffer { input: None, ..good.clone() };
        assert!(offer_from_proto(no_input).expect_err("input").0.contains("without input"));
        let no_type = proto::JobOffer { job_type: 0, ..good.clone() };
        assert!(offer_from_proto(no_type).expect_err("type").0.contains("job type"));
        let bad_provisioner = proto::JobOffer { provisioner: "chef".into(), ..good.clone() };
        assert!(offer_from_proto(bad_provisioner).is_err());
        let mut no_transition = good;
        if let Some(proto::job_offer::Input::WorkspaceBuild(b)) = &mut no_transition.input {
            b.transition = 0;
        }
        let err = offer_from_proto(no_transition).expect_err("transition");
        assert!(err.0.contains("transition"), "{err}");
    }
}
