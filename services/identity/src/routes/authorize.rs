//! SMART on FHIR's endpoints: the SMART configuration at `<fhir base>/.well-known/`, the
//! authorization endpoint (a sign-in page that says what the app asks for, where the person
//! allows or denies it), and OpenID Connect's `userinfo`.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polyclinic_auth::{Role, authenticate};
use polyclinic_config::IdentityProvider;
use polyclinic_fhir::capability::SmartEndpoints;
use polyclinic_fhir::smart::{Context, ResourceScope};
use polyclinic_http::extract::Json;
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ClientAddress, ProblemDetails};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts;
use crate::accounts::login::GrantError;
use crate::accounts::smart::{self, AuthorizeError, AuthorizeRequest, Checked};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(smart_configuration))
        .routes(routes!(authorize_page, authorize_decision))
        .routes(routes!(userinfo))
}

/// The scopes this server grants, as SMART's configuration lists them.
const SCOPES_SUPPORTED: &[&str] = &[
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.read",
    "patient/Patient.rs",
    "patient/Appointment.rs",
    "patient/Appointment.cu",
    "patient/MedicationRequest.rs",
    "patient/AllergyIntolerance.rs",
    "patient/Condition.rs",
    "patient/Observation.rs",
    "patient/AuditEvent.rs",
    "user/*.rs",
    "user/*.read",
];

/// SMART App Launch's configuration: where apps authorize, get and revoke tokens, and what
/// this server supports. With Keycloak, Keycloak's endpoints (its client scopes carry the
/// SMART scopes).
#[utoipa::path(get, path = "/fhir/.well-known/smart-configuration", tag = "auth",
    responses((status = 200, description = "SMART App Launch configuration (JSON)")))]
async fn smart_configuration(State(state): State<AppState>) -> Json<Value> {
    let issuer = &state.tokens.issuer;
    let keycloak = state.provider == IdentityProvider::Keycloak;
    let endpoints = SmartEndpoints::of_issuer(issuer, keycloak);
    let (jwks, userinfo) = if keycloak {
        (
            format!("{issuer}/protocol/openid-connect/certs"),
            format!("{issuer}/protocol/openid-connect/userinfo"),
        )
    } else {
        (format!("{issuer}/jwks"), format!("{issuer}/userinfo"))
    };
    Json(json!({
        "issuer": issuer,
        "jwks_uri": jwks,
        "authorization_endpoint": endpoints.authorize,
        "token_endpoint": endpoints.token,
        "revocation_endpoint": endpoints.revoke,
        "userinfo_endpoint": userinfo,
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "sso-openid-connect",
            "permission-offline",
            "permission-online",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
        ],
    }))
}

/// What a resource type's records are, to a person.
fn what(resource_type: &str) -> &'static str {
    match resource_type {
        "Patient" => "profile (name, contact details, date of birth)",
        "Appointment" => "appointments",
        "MedicationRequest" => "prescriptions",
        "AllergyIntolerance" => "allergies",
        "Condition" => "diagnoses",
        "Observation" => "vital signs",
        "AuditEvent" => "record's access log",
        "Practitioner" | "PractitionerRole" => "doctors and nurses",
        "Organization" | "Location" => "departments and rooms",
        "Schedule" | "Slot" => "calendar",
        _ => {
            "health records (appointments, prescriptions, allergies, diagnoses, vital signs, access log)"
        }
    }
}

/// One line of the consent page for `scope`.
fn describe(scope: &str) -> String {
    match scope {
        "openid" | "profile" => "Know who you are (your name).".to_owned(),
        "fhirUser" => "Know which record in the clinic is yours.".to_owned(),
        "launch/patient" => "Work with your records as a patient.".to_owned(),
        "offline_access" => {
            "Keep its access when you are not using it, until you withdraw it.".to_owned()
        }
        "online_access" => "Keep its access while you use it.".to_owned(),
        _ => match ResourceScope::parse(scope) {
            Some(parsed) => {
                let whose = match parsed.context {
                    Context::Patient => "your",
                    Context::User => "the clinic's (what you may see)",
                };
                let thing = what(&parsed.resource_type);
                let mut doing = Vec::new();
                if parsed.permissions.contains('r') || parsed.permissions.contains('s') {
                    doing.push("read");
                }
                if parsed.permissions.contains('c') {
                    doing.push("book");
                }
                if parsed.permissions.contains('u') {
                    doing.push("change and cancel");
                }
                if parsed.permissions.contains('d') {
                    doing.push("delete");
                }
                let mut line = format!("{} {whose} {thing}.", doing.join(", "));
                line[..1].make_ascii_uppercase();
                line
            }
            None => format!("Use `{scope}`."),
        },
    }
}

#[derive(Template)]
#[template(path = "authorize.html")]
struct AuthorizePage<'a> {
    title: &'a str,
    clinic: &'a str,
    problem: Option<String>,
    app_name: &'a str,
    asks: Vec<String>,
    error: Option<&'a str>,
    action: &'a str,
    hidden: Vec<(&'static str, String)>,
    username: &'a str,
}

/// The page, with a CSP that lets its form go to this server and on to the app.
fn page(status: StatusCode, page: &AuthorizePage<'_>, redirect_uri: Option<&str>) -> Response {
    let html = match page.render() {
        Ok(html) => html,
        Err(err) => return ApiError::internal(err.into()).into_response(),
    };
    let app_origin = redirect_uri
        .and_then(|uri| reqwest::Url::parse(uri).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {app_origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let Ok(csp) = HeaderValue::from_str(csp.trim()) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

fn problem_page(state: &AppState, status: StatusCode, message: String) -> Response {
    page(
        status,
        &AuthorizePage {
            title: "Sign-in problem",
            clinic: &state.clinic_name,
            problem: Some(message),
            app_name: "",
            asks: Vec::new(),
            error: None,
            action: "",
            hidden: Vec::new(),
            username: "",
        },
        None,
    )
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => ApiError::bad_request("invalid_request", "The redirect address is not valid.")
            .into_response(),
    }
}

fn refused(state: &AppState, err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(message) => problem_page(state, StatusCode::BAD_REQUEST, message),
        AuthorizeError::Redirect {
            redirect_uri,
            state: oauth_state,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(oauth_state) = oauth_state.as_deref() {
                pairs.push(("state", oauth_state));
            }
            redirect(&smart::redirect_to(&redirect_uri, &pairs))
        }
        AuthorizeError::Unexpected(source) => ApiError::internal(source).into_response(),
    }
}

/// The consent page of a checked request: what the app asks for, and the sign-in form
/// carrying the request on.
fn consent(
    state: &AppState,
    checked: &Checked,
    request: &AuthorizeRequest,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    let hidden = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &Some(checked.redirect_uri.clone())),
        ("scope", &request.scope),
        ("state", &request.state),
        ("aud", &request.aud),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("nonce", &request.nonce),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
    .collect();
    page(
        status,
        &AuthorizePage {
            title: "Allow access",
            clinic: &state.clinic_name,
            problem: None,
            app_name: &checked.app.name,
            asks: checked.scopes.iter().map(|scope| describe(scope)).collect(),
            error,
            action: "/api/auth/authorize",
            hidden,
            username,
        },
        Some(&checked.redirect_uri),
    )
}

fn builtin(state: &AppState) -> Option<Response> {
    (state.provider == IdentityProvider::Keycloak).then(|| {
        problem_page(
            state,
            StatusCode::NOT_FOUND,
            "Apps sign in with the clinic's Keycloak in this deployment.".into(),
        )
    })
}

/// The authorization endpoint (SMART standalone launch, authorization code with PKCE S256):
/// the sign-in page that shows what the app asks for.
#[utoipa::path(get, path = "/api/auth/authorize", tag = "auth",
    params(("response_type" = String, Query, description = "`code`"), ("client_id" = String, Query),
        ("redirect_uri" = Option<String>, Query), ("scope" = Option<String>, Query), ("state" = Option<String>, Query),
        ("aud" = Option<String>, Query, description = "The FHIR base URL"),
        ("code_challenge" = String, Query), ("code_challenge_method" = String, Query, description = "`S256`"),
        ("nonce" = Option<String>, Query)),
    responses((status = 200, description = "The sign-in and consent page", content_type = "text/html"),
        (status = 303, description = "Back to the app with `error`"),
        (status = 400, description = "A request that cannot be sent back to its app", content_type = "text/html")))]
async fn authorize_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    if let Some(response) = builtin(&state) {
        return response;
    }
    // Read here rather than by the query extractor, so that a malformed request gets the
    // page, as the person's browser shows it, not a JSON problem.
    let query = query.unwrap_or_default();
    let request: AuthorizeRequest = match serde_urlencoded::from_str(&query) {
        Ok(request) if !polyclinic_http::extract::has_encoded_nul(&query) => request,
        _ => {
            return problem_page(
                &state,
                StatusCode::BAD_REQUEST,
                "The app's request is not readable.".into(),
            );
        }
    };
    match smart::check(&state, &request).await {
        Ok(checked) => consent(&state, &checked, &request, None, "", StatusCode::OK),
        Err(err) => refused(&state, err),
    }
}

/// What the sign-in form posts: the authorization request, the person's login and their
/// decision.
#[derive(Debug, Deserialize)]
struct Decision {
    #[serde(flatten)]
    request: AuthorizeRequest,
    username: Option<String>,
    password: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
}

/// The person's answer: denied, back to the app with `access_denied`; allowed with a right
/// password, back with a code; a wrong password, the page again.
#[utoipa::path(post, path = "/api/auth/authorize", tag = "auth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "The authorization request's parameters, `username`, `password` and `decision` (`allow` or `deny`)"),
    responses((status = 303, description = "Back to the app with a `code` or an `error`"),
        (status = 400, description = "A request that cannot be sent back to its app", content_type = "text/html"),
        (status = 401, description = "Wrong login: the page again", content_type = "text/html"),
        (status = 415, body = ProblemDetails),
        (status = 429, description = "Too many attempts", content_type = "text/html")))]
async fn authorize_decision(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = builtin(&state) {
        return response;
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected Content-Type: application/x-www-form-urlencoded.",
        )
        .into_response();
    }
    let decision: Decision = match serde_urlencoded::from_bytes(&body) {
        Ok(decision) if !polyclinic_http::extract::has_encoded_nul(&body) => decision,
        _ => {
            return problem_page(
                &state,
                StatusCode::BAD_REQUEST,
                "The form was not readable.".into(),
            );
        }
    };
    let checked = match smart::check(&state, &decision.request).await {
        Ok(checked) => checked,
        Err(err) => return refused(&state, err),
    };
    if decision.decision.as_deref() != Some("allow") {
        return redirect(&smart::denied(&checked));
    }
    let username = decision.username.unwrap_or_default();
    let password = decision.password.unwrap_or_default();
    if username.trim().is_empty() || password.is_empty() {
        return consent(
            &state,
            &checked,
            &decision.request,
            Some("Enter your email or username and your password."),
            &username,
            StatusCode::UNAUTHORIZED,
        );
    }
    match smart::allow(&state, &checked, &username, password, client).await {
        Ok(location) => redirect(&location),
        Err(GrantError::InvalidGrant(message)) => consent(
            &state,
            &checked,
            &decision.request,
            Some(message),
            &username,
            StatusCode::UNAUTHORIZED,
        ),
        Err(GrantError::Throttled { .. }) => consent(
            &state,
            &checked,
            &decision.request,
            Some("Too many failed sign-ins for this account; try again later."),
            &username,
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// OpenID Connect's UserInfo: who the token's person is, and their FHIR resource. The one
/// route besides the FHIR API that takes an app's token, when it was granted `openid`.
#[utoipa::path(get, path = "/api/auth/userinfo", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The person's claims"), (status = 401, body = ProblemDetails),
        (status = 403, body = ProblemDetails)))]
async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&state.verifier, &headers, &uri)
        .await?
        .ok_or(polyclinic_auth::AuthError::Missing)?;
    if caller.is(Role::Service) {
        return Err(ApiError::forbidden(
            "user_token_required",
            "This route needs a person's token.",
        ));
    }
    if caller.is_delegated() && !caller.has_scope("openid") {
        return Err(polyclinic_auth::insufficient_scope("openid"));
    }
    let user = accounts::find_user(&state.pool, caller.user_id()?).await?;
    let mut claims = json!({
        "sub": user.id,
        "name": format!("{} {}", user.first_name, user.last_name),
        "given_name": user.first_name,
        "family_name": user.last_name,
        "preferred_username": user.username,
        "email": user.email,
    });
    if let Some(fhir_user) = state.fhir_user(&user) {
        claims["fhirUser"] = json!(fhir_user);
    }
    Ok(Json(claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_reads_as_a_sentence_a_patient_understands() {
        assert_eq!(
            describe("patient/Appointment.rs"),
            "Read your appointments."
        );
        assert_eq!(
            describe("patient/Appointment.cu"),
            "Book, change and cancel your appointments."
        );
        assert!(describe("patient/*.rs").starts_with("Read your health records"));
        assert_eq!(
            describe("launch/patient"),
            "Work with your records as a patient."
        );
    }
}
