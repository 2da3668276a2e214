//! SMART on FHIR apps: register one (its secret shown once), disable one, or cut off every
//! person's access to it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::super::FormState;
use super::outcome;
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{Signed, audience::Admins};
use crate::model::SmartApp;
use crate::page::{Layout, PageResult, WebError, render, render_status};
use crate::session::Session;

const HERE: &str = "/admin/apps";

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AppsPage {
    l: Layout,
    f: FormState,
    apps: Vec<SmartApp>,
    /// A confidential app's secret, the one time it is shown.
    secret: Option<(String, String)>,
}

async fn apps_page(
    state: &WebState,
    session: &Session,
    f: FormState,
    secret: Option<(String, String)>,
) -> Result<AppsPage, WebError> {
    let apps: Vec<SmartApp> = state
        .gateway
        .get(session, "/api/smart/apps")
        .await
        .map_err(|failure| WebError::from_api(failure, HERE))?;
    Ok(AppsPage {
        l: Layout::new(session, "SMART apps", HERE),
        f,
        apps,
        secret,
    })
}

pub(super) async fn apps(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
) -> PageResult {
    Ok(render(
        &apps_page(&state, &session, FormState::default(), None).await?,
    ))
}

/// The lines of a text area, trimmed, blank ones left out.
fn lines(text: &str) -> Vec<String> {
    text.split(['\n', ',', ' '])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) async fn register(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let missing = f.required("client_id")
        | f.required("name")
        | f.required("redirect_uris")
        | f.required("scopes");
    if !missing {
        let body = json!({
            "client_id": f.v("client_id"),
            "name": f.v("name"),
            "redirect_uris": lines(f.raw("redirect_uris")),
            "confidential": f.v("confidential") == "yes",
            "scopes": lines(f.raw("scopes")),
        });
        match state.gateway.post(&session, "/api/smart/apps", &body).await {
            Ok(registered) => {
                session.set_flash("ok", "App registered.");
                let secret = registered["client_secret"].as_str().map(|secret| {
                    (
                        registered["client_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        secret.to_owned(),
                    )
                });
                let page = apps_page(&state, &session, FormState::default(), secret).await?;
                return Ok(render_status(StatusCode::CREATED, &page));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "client_id_taken" => f.error("client_id", "An app with this client id exists."),
                _ => f.absorb(&problem, &[]),
            },
            Err(other) => return Err(WebError::from_api(other, HERE)),
        }
    }
    let page = apps_page(&state, &session, f, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub(super) async fn revoke_grants(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Path(client_id): Path<String>,
) -> PageResult {
    let path = format!("/api/smart/apps/{}/revoke-grants", urlencoding(&client_id));
    let result = state.gateway.post(&session, &path, &json!({})).await;
    outcome(
        &session,
        result,
        "Every grant of the app is revoked; its logins have ended.",
        HERE,
    )
}

pub(super) async fn disable(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Path(client_id): Path<String>,
) -> PageResult {
    let path = format!("/api/smart/apps/{}/disable", urlencoding(&client_id));
    let result = state.gateway.post(&session, &path, &json!({})).await;
    outcome(
        &session,
        result,
        "The app is disabled and its grants revoked.",
        HERE,
    )
}

/// A client id as a path segment (they are letters, digits, `.`, `_` and `-`; anything
/// else is escaped so it cannot reach another route).
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_one_per_line_or_separated_by_commas_or_spaces() {
        assert_eq!(
            lines("openid fhirUser\npatient/*.rs, launch/patient\n\n"),
            ["openid", "fhirUser", "patient/*.rs", "launch/patient"]
        );
    }

    #[test]
    fn a_client_id_cannot_leave_its_path_segment() {
        assert_eq!(urlencoding("lab-portal.v2"), "lab-portal.v2");
        assert_eq!(urlencoding("../users"), "..%2Fusers");
    }
}
