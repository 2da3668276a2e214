//! HL7 FHIR R4 (4.0.1) as Polyclinic serves it.
//!
//! Each service serves the resources of the data it owns under `/fhir/<Type>` (the gateway
//! forwards by resource type, as it forwards REST paths) through the same flows, access
//! rules and audit as its REST routes; this crate holds what they share:
//!
//! - [`resources`] and [`types`]: the resources served, as typed serde structs;
//! - [`Fhir`]: a resource as an `application/fhir+json` answer;
//! - [`outcome`]: every error as an `OperationOutcome` (a layer rewrites the platform's
//!   problem documents, so handlers return [`ApiError`] as everywhere else);
//! - [`search`] and [`bundle`]: search parameters and `searchset` Bundles with keyset paging;
//! - [`capability`]: what is supported, once, for `/fhir/metadata` and the gateway's table;
//! - [`smart`]: SMART scopes, and the layer that holds a delegated token to them;
//! - [`mount`]: a service's FHIR router with the layers every one of them needs.

pub mod bundle;
pub mod capability;
pub mod outcome;
pub mod parameters;
pub mod resources;
pub mod search;
pub mod smart;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use polyclinic_auth::Verifier;
use polyclinic_http::ApiError;
use serde::Serialize;

pub use bundle::Bundle;
pub use outcome::OperationOutcome;
pub use resources::Resource;
pub use search::Search;

/// The FHIR release served.
pub const FHIR_VERSION: &str = "4.0.1";

/// FHIR's JSON media type, as every answer carries it.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// The code systems and extension URLs the resources use.
pub mod systems {
    /// UCUM, for quantities.
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// LOINC, for vital signs.
    pub const LOINC: &str = "http://loinc.org";
    /// ICD-10, for diagnoses.
    pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
    /// The platform's own ids (a prescription's, as `MedicationRequest.groupIdentifier`).
    pub const PRESCRIPTION: &str = "urn:polyclinic:prescription";
    /// Appointment's reason for a cancellation.
    pub const CANCELLATION_REASON: &str =
        "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason";
    /// The canonical base of Polyclinic's own definitions.
    pub const DEFINITION_BASE: &str = "https://polyclinic.example/fhir";
    /// Where Polyclinic's own extensions are defined.
    pub const EXTENSION_BASE: &str = "https://polyclinic.example/fhir/StructureDefinition";
}

/// A resource as an answer: `application/fhir+json`, status 200 unless wrapped with one.
#[derive(Debug, Clone)]
pub struct Fhir<T>(pub T);

impl<T: Serialize> IntoResponse for Fhir<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => (
                [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
                body,
            )
                .into_response(),
            Err(err) => ApiError::internal(err.into()).into_response(),
        }
    }
}

/// The answer to a read of what the caller may not see, or what does not exist: 404, never
/// telling which (as in the REST API).
pub fn not_found(resource_type: &str) -> ApiError {
    ApiError::not_found(
        "resource_not_found",
        format!("No {resource_type} with this id is visible to you."),
    )
}

/// A search's answer: the `searchset` of `resources` on `base/resource_type`, with `next`
/// when more follow (see [`Bundle::searchset`]).
pub fn searchset(
    base: &Base,
    resource_type: &str,
    search: &Search,
    resources: Vec<Resource>,
    next: Option<String>,
) -> Fhir<Resource> {
    Fhir(Bundle::searchset(base.as_str(), resource_type, search, resources, next).into())
}

/// The FHIR base URL as clients see it (`<public_url>/fhir`), for links and `fullUrl`s.
#[derive(Debug, Clone)]
pub struct Base(pub Arc<str>);

impl Base {
    /// The base of a platform whose gateway is at `public_url`.
    pub fn of(public_url: &str) -> Self {
        Self(format!("{}/fhir", public_url.trim_end_matches('/')).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Base>().cloned().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("the FHIR base URL is not configured"))
        })
    }
}

/// Refuses what the API cannot answer: a `_format` or an `Accept` that asks for XML (or
/// anything but JSON) gets 406, as FHIR's format negotiation says.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let format = request.uri().query().and_then(|query| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find(|(name, _)| name == "_format")
            .map(|(_, value)| value)
    });
    let json_format = |text: &str| {
        let essence = text.split(';').next().unwrap_or("").trim();
        matches!(
            essence,
            "json" | "application/json" | "application/fhir+json" | "application/json+fhir"
        )
    };
    if let Some(format) = format
        && !json_format(&format)
    {
        return not_acceptable();
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    if let Some(accept) = accept {
        let acceptable = accept.split(',').any(|range| {
            let essence = range.split(';').next().unwrap_or("").trim();
            json_format(essence) || matches!(essence, "*/*" | "application/*" | "")
        });
        if !acceptable {
            return not_acceptable();
        }
    }
    next.run(request).await
}

fn not_acceptable() -> Response {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "format_not_supported",
        "This server answers FHIR JSON only (application/fhir+json).",
    )
    .into_response()
}

/// A service's FHIR routes as served: under `/fhir`, errors as OperationOutcomes (an
/// unknown path under `/fhir` too), format negotiation, SMART scopes enforced (with
/// `verifier`), and the base URL for links.
pub fn mount<S>(routes: Router<S>, public_url: &str, verifier: Arc<Verifier>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let fhir = routes
        .fallback(|| async {
            ApiError::not_found(
                "fhir_route_not_found",
                "This FHIR server has no such resource type or interaction.",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            verifier,
            smart::enforce,
        ))
        .layer(axum::middleware::from_fn(negotiate))
        .layer(axum::middleware::map_response(
            outcome::to_operation_outcome,
        ))
        .layer(axum::Extension(Base::of(public_url)));
    Router::new().nest("/fhir", fhir)
}
