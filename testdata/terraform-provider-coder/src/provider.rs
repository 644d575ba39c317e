//! The `tfplugin6.Provider` gRPC service: schemas, validation (left to
//! Terraform), and the plan/apply/read calls, dispatched to `resources` and
//! `data_sources`.

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use crate::data_sources::{self, ProcessEnv};
use crate::proto::tfplugin6::provider_server::Provider;
use crate::proto::tfplugin6::{
    apply_resource_change, call_function, configure_provider, diagnostic, get_functions,
    get_metadata, get_provider_schema, import_resource_state, move_resource_state,
    plan_resource_change, read_data_source, read_resource, stop_provider, upgrade_resource_state,
    validate_data_resource_config, validate_provider_config, validate_resource_config, Diagnostic,
    DynamicValue, Schema, ServerCapabilities,
};
use crate::resources;
use crate::schema::{Attr, Block, Ty};
use crate::value;

/// The provider: its schemas, built once.
pub struct CoderProvider {
    provider: Block,
    resources: HashMap<&'static str, Block>,
    data_sources: HashMap<&'static str, Block>,
}

impl Default for CoderProvider {
    fn default() -> Self {
        CoderProvider {
            provider: Block::new(vec![
                Attr::optional("url", Ty::String),
                Attr::optional("agent_url", Ty::String),
            ]),
            resources: resources::schemas().into_iter().collect(),
            data_sources: data_sources::schemas().into_iter().collect(),
        }
    }
}

fn error(summary: impl Into<String>) -> Vec<Diagnostic> {
    vec![Diagnostic {
        severity: diagnostic::Severity::Error as i32,
        summary: summary.into(),
        ..Default::default()
    }]
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: false,
        move_resource_state: false,
    }
}

impl CoderProvider {
    fn resource(&self, name: &str) -> Result<&Block, Vec<Diagnostic>> {
        self.resources.get(name).ok_or_else(|| error(format!("unknown resource type {name:?}")))
    }

    fn data_source(&self, name: &str) -> Result<&Block, Vec<Diagnostic>> {
        self.data_sources.get(name).ok_or_else(|| error(format!("unknown data source {name:?}")))
    }

    fn plan(
        &self,
        req: &plan_resource_change::Request,
    ) -> Result<plan_resource_change::Response, Vec<Diagnostic>> {
        let block = self.resource(&req.type_name)?;
        let prior = value::decode(req.prior_state.as_ref()).map_err(error)?;
        let proposed = value::decode(req.proposed_new_state.as_ref()).map_err(error)?;
        let planned = resources::plan(block, &prior, proposed);
        Ok(plan_resource_change::Response {
            planned_state: Some(value::encode(&planned).map_err(error)?),
            planned_private: req.prior_private.clone(),
            ..Default::default()
        })
    }

    fn apply(
        &self,
        req: &apply_resource_change::Request,
    ) -> Result<apply_resource_change::Response, Vec<Diagnostic>> {
        self.resource(&req.type_name)?;
        let planned = value::decode(req.planned_state.as_ref()).map_err(error)?;
        let state = resources::apply(&planned);
        Ok(apply_resource_change::Response {
            new_state: Some(value::encode(&state).map_err(error)?),
            private: req.planned_private.clone(),
            ..Default::default()
        })
    }

    fn upgrade(
        &self,
        req: &upgrade_resource_state::Request,
    ) -> Result<upgrade_resource_state::Response, Vec<Diagnostic>> {
        let block = self.resource(&req.type_name)?;
        let raw = req.raw_state.as_ref().map(|r| r.json.as_slice()).unwrap_or_default();
        let stored = value::decode(Some(&DynamicValue { msgpack: Vec::new(), json: raw.to_vec() }))
            .map_err(error)?;
        let upgraded = block.shape(&stored);
        Ok(upgrade_resource_state::Response {
            upgraded_state: Some(value::encode(&upgraded).map_err(error)?),
            diagnostics: Vec::new(),
        })
    }

    fn read_data(
        &self,
        req: &read_data_source::Request,
    ) -> Result<read_data_source::Response, Vec<Diagnostic>> {
        let block = self.data_source(&req.type_name)?;
        let config = value::decode(req.config.as_ref()).map_err(error)?;
        let state =
            data_sources::read(&req.type_name, block, &config, &ProcessEnv).map_err(error)?;
        Ok(read_data_source::Response {
            state: Some(value::encode(&state).map_err(error)?),
            diagnostics: Vec::new(),
        })
    }
}

#[tonic::async_trait]
impl Provider for CoderProvider {
    async fn get_metadata(
        &self,
        _: Request<get_metadata::Request>,
    ) -> Result<Response<get_metadata::Response>, Status> {
        Ok(Response::new(get_metadata::Response {
            server_capabilities: Some(capabilities()),
            diagnostics: Vec::new(),
            data_sources: self
                .data_sources
                .keys()
                .map(|n| get_metadata::DataSourceMetadata { type_name: n.to_string() })
                .collect(),
            resources: self
                .resources
                .keys()
                .map(|n| get_metadata::ResourceMetadata { type_name: n.to_string() })
                .collect(),
            functions: Vec::new(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<get_provider_schema::Request>,
    ) -> Result<Response<get_provider_schema::Response>, Status> {
        let schemas = |blocks: &HashMap<&'static str, Block>| -> HashMap<String, Schema> {
            blocks.iter().map(|(n, b)| (n.to_string(), b.to_schema())).collect()
        };
        Ok(Response::new(get_provider_schema::Response {
            provider: Some(self.provider.to_schema()),
            resource_schemas: schemas(&self.resources),
            data_source_schemas: schemas(&self.data_sources),
            functions: HashMap::new(),
            diagnostics: Vec::new(),
            provider_meta: Some(Block::default().to_schema()),
            server_capabilities: Some(capabilities()),
        }))
    }

    async fn validate_provider_config(
        &self,
        _: Request<validate_provider_config::Request>,
    ) -> Result<Response<validate_provider_config::Response>, Status> {
        Ok(Response::new(validate_provider_config::Response { diagnostics: Vec::new() }))
    }

    async fn validate_resource_config(
        &self,
        req: Request<validate_resource_config::Request>,
    ) -> Result<Response<validate_resource_config::Response>, Status> {
        let diagnostics = self.resource(&req.get_ref().type_name).err().unwrap_or_default();
        Ok(Response::new(validate_resource_config::Response { diagnostics }))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<validate_data_resource_config::Request>,
    ) -> Result<Response<validate_data_resource_config::Response>, Status> {
        let diagnostics = self.data_source(&req.get_ref().type_name).err().unwrap_or_default();
        Ok(Response::new(validate_data_resource_config::Response { diagnostics }))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<upgrade_resource_state::Request>,
    ) -> Result<Response<upgrade_resource_state::Response>, Status> {
        Ok(Response::new(self.upgrade(req.get_ref()).unwrap_or_else(|diagnostics| {
            upgrade_resource_state::Response { upgraded_state: None, diagnostics }
        })))
    }

    async fn configure_provider(
        &self,
        _: Request<configure_provider::Request>,
    ) -> Result<Response<configure_provider::Response>, Status> {
        Ok(Response::new(configure_provider::Response { diagnostics: Vec::new() }))
    }

    async fn read_resource(
        &self,
        req: Request<read_resource::Request>,
    ) -> Result<Response<read_resource::Response>, Status> {
        // Nothing exists outside the state: the current state is the truth.
        let req = req.into_inner();
        Ok(Response::new(read_resource::Response {
            new_state: req.current_state,
            diagnostics: Vec::new(),
            private: req.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        req: Request<plan_resource_change::Request>,
    ) -> Result<Response<plan_resource_change::Response>, Status> {
        Ok(Response::new(self.plan(req.get_ref()).unwrap_or_else(|diagnostics| {
            plan_resource_change::Response { diagnostics, ..Default::default() }
        })))
    }

    async fn apply_resource_change(
        &self,
        req: Request<apply_resource_change::Request>,
    ) -> Result<Response<apply_resource_change::Response>, Status> {
        Ok(Response::new(self.apply(req.get_ref()).unwrap_or_else(|diagnostics| {
            apply_resource_change::Response { diagnostics, ..Default::default() }
        })))
    }

    async fn import_resource_state(
        &self,
        _: Request<import_resource_state::Request>,
    ) -> Result<Response<import_resource_state::Response>, Status> {
        Ok(Response::new(import_resource_state::Response {
            imported_resources: Vec::new(),
            diagnostics: error("the test coder provider does not support import"),
        }))
    }

    async fn move_resource_state(
        &self,
        _: Request<move_resource_state::Request>,
    ) -> Result<Response<move_resource_state::Response>, Status> {
        Ok(Response::new(move_resource_state::Response {
            diagnostics: error("the test coder provider does not support moved blocks"),
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        req: Request<read_data_source::Request>,
    ) -> Result<Response<read_data_source::Response>, Status> {
        Ok(Response::new(
            self.read_data(req.get_ref()).unwrap_or_else(|diagnostics| {
                read_data_source::Response { state: None, diagnostics }
            }),
        ))
    }

    async fn get_functions(
        &self,
        _: Request<get_functions::Request>,
    ) -> Result<Response<get_functions::Response>, Status> {
        Ok(Response::new(get_functions::Response::default()))
    }

    async fn call_function(
        &self,
        _: Request<call_function::Request>,
    ) -> Result<Response<call_function::Response>, Status> {
        Err(Status::unimplemented("the test coder provider has no functions"))
    }

    async fn stop_provider(
        &self,
        _: Request<stop_provider::Request>,
    ) -> Result<Response<stop_provider::Response>, Status> {
        // Every call finishes at once; there is nothing to stop.
        Ok(Response::new(stop_provider::Response { error: String::new() }))
    }
}
