//! The one middleware in front of every page: it finds (or starts) the browser's session,
//! refuses unsafe requests that do not bring the session's CSRF token back, sets the
//! session cookie, adds the security headers, and turns a handler's [`WebError`] into the
//! error page for that session.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::WebState;
use crate::page::{Layout, WebError, plain_error, render_status};
use crate::session::{COOKIE, Role, SECURE_COOKIE, Session, User};

/// The CSRF token's form field; htmx sends it as the `X-CSRF-Token` header instead.
pub const CSRF_FIELD: &str = "_csrf";
const CSRF_HEADER: &str = "x-csrf-token";
/// Forms are small; a bigger unsafe body is refused before it is parsed.
const FORM_LIMIT: usize = 64 * 1024;

/// The session of the current request.
#[derive(Clone)]
pub struct Visitor(pub Arc<Session>);

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Visitor>()
            .cloned()
            .ok_or_else(|| plain_error(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// The people a page is for. Each page's handler takes a [`Signed`] of its audience instead
/// of checking roles itself.
pub trait Audience {
    const ROLES: &'static [Role];
    /// Where a signed-out visitor is sent back after signing in when what they asked for
    /// was not a page (a form's POST cannot be repeated by following a link).
    const HOME: &'static str;
}

/// The audiences of the pages.
pub mod audience {
    use super::Audience;
    use crate::session::Role;

    /// Administrators.
    pub struct Admins;
    /// Patients.
    pub struct Patients;
    /// Doctors.
    pub struct Doctors;
    /// Nurses.
    pub struct Nurses;
    /// The care team: doctors and nurses.
    pub struct CareTeam;
    /// Patients, and the doctors and nurses who see them (their appointment lists).
    pub struct PatientsAndCare;
    /// Patients and administrators (cancelling and rescheduling a booking).
    pub struct PatientsAndAdmins;
    /// Doctors, nurses and administrators (closing a visit).
    pub struct CareAndAdmins;
    /// Anyone signed in.
    pub struct Everyone;

    impl Audience for Admins {
        const ROLES: &'static [Role] = &[Role::Admin];
        const HOME: &'static str = "/admin/queue";
    }
    impl Audience for Patients {
        const ROLES: &'static [Role] = &[Role::Patient];
        const HOME: &'static str = "/record";
    }
    impl Audience for Doctors {
        const ROLES: &'static [Role] = &[Role::Doctor];
        const HOME: &'static str = "/doctor";
    }
    impl Audience for Nurses {
        const ROLES: &'static [Role] = &[Role::Nurse];
        const HOME: &'static str = "/nurse";
    }
    impl Audience for CareTeam {
        const ROLES: &'static [Role] = &[Role::Doctor, Role::Nurse];
        const HOME: &'static str = "/appointments";
    }
    impl Audience for PatientsAndCare {
        const ROLES: &'static [Role] = &[Role::Patient, Role::Doctor, Role::Nurse];
        const HOME: &'static str = "/appointments";
    }
    impl Audience for PatientsAndAdmins {
        const ROLES: &'static [Role] = &[Role::Patient, Role::Admin];
        const HOME: &'static str = "/appointments";
    }
    impl Audience for CareAndAdmins {
        const ROLES: &'static [Role] = &[Role::Doctor, Role::Nurse, Role::Admin];
        const HOME: &'static str = "/appointments";
    }
    impl Audience for Everyone {
        const ROLES: &'static [Role] = &[Role::Patient, Role::Doctor, Role::Nurse, Role::Admin];
        const HOME: &'static str = "/account";
    }
}

/// The signed-in person, when their role is one of `A`'s; otherwise the sign-in page (and
/// back here after it) for a visitor, and "not available to you" for another role.
pub struct Signed<A: Audience> {
    pub session: Arc<Session>,
    pub user: User,
    audience: PhantomData<fn() -> A>,
}

impl<S: Send + Sync, A: Audience> FromRequestParts<S> for Signed<A> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(Visitor(session)) = Visitor::from_request_parts(parts, state).await else {
            return Err(WebError::Unavailable(
                "the page was reached without a session".to_owned(),
            ));
        };
        match &session.user {
            Some(user) if A::ROLES.contains(&user.role) => Ok(Self {
                user: user.clone(),
                session,
                audience: PhantomData,
            }),
            Some(_) => Err(WebError::Forbidden),
            None => {
                let page = matches!(parts.method, Method::GET | Method::HEAD);
                let next = match parts.uri.path_and_query() {
                    Some(here) if page => here.as_str().to_owned(),
                    _ => A::HOME.to_owned(),
                };
                Err(WebError::SignIn { next })
            }
        }
    }
}

/// Put on a response by a handler that replaced the session (sign-in, sign-out): the
/// browser gets the new session's cookie.
#[derive(Clone)]
pub struct NewSession(pub Arc<Session>);

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // Rendered by the middleware below, which knows the session to lay it out for.
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response
            .extensions_mut()
            .insert(Arc::new(std::sync::Mutex::new(Some(self))));
        response
    }
}

type PendingError = Arc<std::sync::Mutex<Option<WebError>>>;

#[derive(askama::Template)]
#[template(path = "csrf.html")]
struct CsrfRefused {
    l: Layout,
}

pub async fn sessions_and_csrf(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    let cookie_name = if state.secure { SECURE_COOKIE } else { COOKIE };
    let existing = match cookie(request.headers(), cookie_name) {
        Some(id) => state.sessions.get(&id).await,
        None => Ok(None),
    };
    let fresh = matches!(existing, Ok(None));
    let session = match existing {
        Ok(Some(session)) => session,
        Ok(None) => match state.sessions.start().await {
            Ok(session) => session,
            Err(err) => return sessions_unavailable(&err),
        },
        Err(err) => return sessions_unavailable(&err),
    };

    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let mut request = request;
    if unsafe_method {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
            return plain_error(StatusCode::PAYLOAD_TOO_LARGE);
        };
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| form_field(&bytes, CSRF_FIELD));
        let matches =
            presented.is_some_and(|token| polyclinic_http::secrets_match(&token, &session.csrf));
        if fresh || !matches {
            tracing::warn!(path = %parts.uri.path(), "refused an unsafe request without the session's CSRF token");
            let page = CsrfRefused {
                l: Layout::new(&session, "Form expired", ""),
            };
            let mut response = render_status(StatusCode::FORBIDDEN, &page);
            finish(
                &state,
                cookie_name,
                fresh.then_some(&session),
                &mut response,
            );
            return response;
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }

    let htmx = request.headers().contains_key("hx-request");
    request.extensions_mut().insert(Visitor(session.clone()));
    let mut response = next.run(request).await;
    let mut replaced = response.extensions_mut().remove::<NewSession>();
    if let Some(pending) = response.extensions_mut().remove::<PendingError>() {
        let error = pending.lock().ok().and_then(|mut error| error.take());
        if let Some(error) = error {
            let mut shown_to = session.clone();
            if matches!(error, WebError::SignIn { .. }) && session.user.is_some() {
                // The login behind this session has ended (revoked, expired, password changed
                // elsewhere): the session goes with it, or sign-in would send the person
                // straight back here.
                let restarted = match state.sessions.remove(&session.id).await {
                    Ok(()) => state.sessions.start().await,
                    Err(err) => Err(err),
                };
                let fresh = match restarted {
                    Ok(fresh) => fresh,
                    Err(err) => return sessions_unavailable(&err),
                };
                fresh.set_flash("warn", "Your sign-in has ended. Please sign in again.");
                replaced = Some(NewSession(fresh.clone()));
                shown_to = fresh;
            }
            response = error.page(&shown_to);
            if htmx && response.status() == StatusCode::SEE_OTHER {
                // htmx would swap the sign-in page into a fragment; tell it to navigate.
                if let Some(location) = response.headers().get(header::LOCATION).cloned() {
                    response = StatusCode::OK.into_response();
                    response.headers_mut().insert("hx-redirect", location);
                }
            }
        }
    }
    let set = match &replaced {
        Some(NewSession(new)) => Some(new),
        None => fresh.then_some(&session),
    };
    // What the request changed (a flash message shown or left, a pending login) is written
    // back; a replaced session was written whole when it was made.
    let written = match &replaced {
        Some(NewSession(new)) => state.sessions.persist(new).await,
        None => state.sessions.persist(&session).await,
    };
    if let Err(err) = written {
        tracing::warn!(error = %format!("{err:#}"), "the session's changes were not saved");
    }
    finish(&state, cookie_name, set, &mut response);
    response
}

/// The sessions' table cannot be reached: nothing can be shown without a session.
fn sessions_unavailable(err: &anyhow::Error) -> Response {
    tracing::error!(error = %format!("{err:#}"), "the session store is unavailable");
    plain_error(StatusCode::SERVICE_UNAVAILABLE)
}

/// Sets the cookie (when the session is new) and the pages' own security headers.
fn finish(state: &WebState, name: &str, new: Option<&Arc<Session>>, response: &mut Response) {
    let headers = response.headers_mut();
    if let Some(session) = new {
        let secure = if state.secure { "; Secure" } else { "" };
        let value = format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            session.id
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    // The pages' own policy (scripts and styles from here); ServiceApp adds the rest of the
    // platform's headers (nosniff, DENY framing, no-referrer, no-store) to every answer.
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    if state.secure {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; polyclinic_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, SECURE_COOKIE), None);
    }

    #[test]
    fn the_csrf_field_is_read_from_a_urlencoded_form() {
        let body = b"name=x&_csrf=t%2Bk&other=y";
        assert_eq!(form_field(body, CSRF_FIELD).as_deref(), Some("t+k"));
        assert_eq!(form_field(b"name=x", CSRF_FIELD), None);
    }
}
