//! The pages, one module per audience. Handlers are thin: take the signed-in person of the
//! page's audience (`guard::Signed`), call the gateway, shape what came back for a template.

mod account;
mod admin;
mod appointments;
mod care;
mod patient;
mod waitlist;

use std::collections::HashMap;

use axum::Router;
use axum::http::HeaderMap;
use serde::Deserialize;

use crate::WebState;
use crate::api::Problem;
use crate::page::WebError;
use crate::session::Session;

pub fn router() -> Router<WebState> {
    Router::new()
        .merge(account::router())
        .merge(patient::router())
        .merge(appointments::router())
        .merge(care::router())
        .merge(admin::router())
        .merge(waitlist::router())
}

/// Whether the request came from htmx (it wants a fragment, not a page).
pub fn from_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A submitted form: its values, and the errors to show next to its fields.
#[derive(Debug, Default, Clone)]
pub struct FormState {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// An error that belongs to no one field.
    pub general: Option<String>,
}

impl FormState {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let mut values: HashMap<String, String> = HashMap::new();
        for (name, value) in pairs {
            // Several values under one name (checkboxes) are joined with commas.
            values
                .entry(name)
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        Self {
            values,
            ..Self::default()
        }
    }

    /// Drops a value so it is not sent back to the browser (passwords).
    pub fn forget(&mut self, name: &str) {
        self.values.remove(name);
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    /// The submitted value of `name`, trimmed ("" if none).
    pub fn v(&self, name: &str) -> &str {
        self.values
            .get(name)
            .map(|value| value.trim())
            .unwrap_or("")
    }

    /// The submitted value exactly as typed (passwords: spaces are part of them).
    pub fn raw(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// The value, or `None` when blank.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.v(name)).filter(|value| !value.is_empty())
    }

    /// The error to show next to `name` ("" if none).
    pub fn e(&self, name: &str) -> &str {
        self.errors.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        self.errors
            .entry(name.to_owned())
            .or_insert_with(|| message.into());
    }

    /// Whether `name` was left blank; records "is required" if so.
    pub fn required(&mut self, name: &str) -> bool {
        let missing = self.v(name).is_empty();
        if missing {
            self.error(name, "This field is required.");
        }
        missing
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.general.is_some()
    }

    /// Puts the API's field errors next to the form's fields. `names` maps an API field to
    /// the form's name for it where they differ; errors for fields the form does not have
    /// become the general message.
    pub fn absorb(&mut self, problem: &Problem, names: &[(&str, &str)]) {
        let mut unplaced = Vec::new();
        for (field, message) in &problem.fields {
            let name = names
                .iter()
                .find(|(api, _)| api == field)
                .map(|(_, form)| *form)
                .unwrap_or(field.as_str());
            if self.values.contains_key(name) {
                self.error(name, capitalise(message));
            } else {
                unplaced.push(format!("{field}: {message}"));
            }
        }
        if problem.fields.is_empty() {
            self.general = Some(problem.detail.clone());
        } else if !unplaced.is_empty() {
            self.general = Some(unplaced.join("; "));
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

/// A page of a cursor-paged list.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Every item of a cursor-paged list at `path` (which has a query already), following
/// `next_cursor` for at most `pages` pages.
pub async fn all_pages<T: serde::de::DeserializeOwned>(
    state: &WebState,
    session: &Session,
    path: &str,
    pages: usize,
) -> Result<Vec<T>, crate::api::ApiFailure> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..pages {
        let page_path = match &cursor {
            Some(cursor) => format!("{path}&cursor={cursor}"),
            None => path.to_owned(),
        };
        let page: Page<T> = state.gateway.get(session, &page_path).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(items)
}

/// The idempotency key a form carries (one per rendered form: submitting it twice acts
/// once), or a fresh one for a form that has none.
pub fn form_key(f: &FormState) -> String {
    f.opt("idempotency_key")
        .filter(|key| uuid::Uuid::parse_str(key).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Only a path on this site may be a place to go back to (no open redirects).
pub fn local_path(next: Option<&str>) -> Option<String> {
    let next = next?;
    // Browsers drop tabs and newlines from a Location and read `\` as `/`: refuse them all,
    // so what is checked is what the browser follows.
    let plain = !next
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    let safe = plain && next.starts_with('/') && !next.starts_with("//");
    safe.then(|| next.to_owned())
}

/// Builds a query string from the non-empty pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
}

/// The first eight characters of an id: enough to tell people apart on a screen.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A UUID from the path. Anything else is a page that does not exist (and never reaches
/// the API, so a crafted segment cannot steer the API call elsewhere).
pub struct Id(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| WebError::NotFound)?;
        uuid::Uuid::parse_str(&raw)
            .map(|id| Id(id.to_string()))
            .map_err(|_| WebError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_places_to_go_back_to() {
        assert_eq!(local_path(Some("/record")).as_deref(), Some("/record"));
        assert_eq!(local_path(Some("//evil.example")), None);
        assert_eq!(local_path(Some("https://evil.example")), None);
        assert_eq!(local_path(Some("/\\evil.example")), None);
        assert_eq!(local_path(Some("/\t/evil.example")), None);
        assert_eq!(local_path(Some("/\r\nSet-Cookie: x")), None);
        assert_eq!(local_path(None), None);
    }

    #[test]
    fn api_field_errors_land_next_to_the_forms_fields() {
        let mut form = FormState::new(vec![("email".into(), "x".into())]);
        let problem = Problem {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed".into(),
            detail: "email: is not an email address".into(),
            fields: vec![("email".into(), "is not an email address".into())],
            body: serde_json::Value::Null,
        };
        form.absorb(&problem, &[]);
        assert_eq!(form.e("email"), "Is not an email address.");
        assert!(form.general.is_none());
    }
}
