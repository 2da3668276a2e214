//! [`ServiceRoutes`]: how every service with a schema documents and serves its routes. A
//! service names its documented routes once; the OpenAPI document and the router (with the
//! readiness check of its database, the internal event routes of its consumers and the
//! event backbone) are built the same way for all of them.

use std::sync::Arc;

use axum::extract::FromRef;
use polyclinic_auth::Verifier;
use polyclinic_config::{Config, Service};
use polyclinic_http::ServiceApp;
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa::openapi::OpenApi;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use sqlx::PgPool;

use crate::Backbone;
use crate::api::{EventsApi, Replay, internal_routes};

/// A service's documented routes, whether it serves the internal event routes (its
/// consumers' outcomes and dead letters), and its FHIR routes (described by the FHIR
/// CapabilityStatement rather than the OpenAPI document).
pub struct ServiceRoutes<S> {
    service: Service,
    api: fn() -> OpenApiRouter<S>,
    consumers: bool,
    fhir: Option<fn() -> Router<S>>,
}

impl<S> ServiceRoutes<S>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Arc<Verifier>: FromRef<S>,
{
    /// A service that consumes no events.
    pub const fn new(service: Service, api: fn() -> OpenApiRouter<S>) -> Self {
        Self {
            service,
            api,
            consumers: false,
            fhir: None,
        }
    }

    /// A service whose consumers' outcomes and dead letters are served (and documented).
    pub const fn with_consumers(service: Service, api: fn() -> OpenApiRouter<S>) -> Self {
        Self {
            service,
            api,
            consumers: true,
            fhir: None,
        }
    }

    /// Also serves `fhir`'s routes under `/fhir` ([`polyclinic_fhir::mount`]).
    pub const fn with_fhir(self, fhir: fn() -> Router<S>) -> Self {
        Self {
            fhir: Some(fhir),
            ..self
        }
    }

    /// The service's OpenAPI document.
    pub fn openapi(&self) -> OpenApi {
        let mut api = (self.api)().split_for_parts().1;
        if self.consumers {
            api.merge(crate::api::openapi());
        }
        polyclinic_http::document(self.service, api)
    }

    /// The service's HTTP interface before the event backbone is attached: its routes with
    /// `state`, the internal routes of `consumers`, the configured limits and the readiness
    /// check of its database.
    pub fn app(&self, config: &Config, state: S, consumers: Vec<Arc<dyn Replay>>) -> ServiceApp {
        let pool = PgPool::from_ref(&state);
        let check = polyclinic_db::readiness_check(&pool);
        let internal = self.consumers.then(|| {
            internal_routes(EventsApi {
                service: self.service.as_str(),
                pool,
                verifier: Arc::<Verifier>::from_ref(&state),
                consumers: Arc::new(consumers),
            })
        });
        let mut api = (self.api)().with_state(state.clone());
        if let Some(internal) = internal {
            api = api.merge(internal);
        }
        if let Some(fhir) = self.fhir {
            let verifier = Arc::<Verifier>::from_ref(&state);
            let fhir =
                polyclinic_fhir::mount(fhir(), &config.public_url, verifier).with_state(state);
            api = api.merge(OpenApiRouter::from(fhir));
        }
        ServiceApp::new(self.service, api)
            .configured(config)
            .check(check)
    }

    /// The service's complete router: [`ServiceRoutes::app`] with the backbone attached.
    pub fn router(
        &self,
        config: &Config,
        state: S,
        backbone: &Backbone,
        consumers: Vec<Arc<dyn Replay>>,
    ) -> Router {
        backbone
            .attach(self.app(config, state, consumers))
            .into_router()
    }
}
