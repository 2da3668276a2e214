//! What every page shares: the layout (title, navigation for the signed-in role, the CSRF
//! token, a one-time message), rendering a template, and the error pages.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::api::ApiFailure;
use crate::session::{Flash, Role, Session};

/// One link of the top navigation.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The frame around every page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub user_name: Option<String>,
    pub role: Option<&'static str>,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub flash: Option<Flash>,
}

impl Layout {
    /// The layout for `session`, with the navigation entry under `path` marked current.
    pub fn new(session: &Session, title: impl Into<String>, path: &str) -> Self {
        let links: &[(&'static str, &'static str)] = match session.user.as_ref().map(|u| u.role) {
            None => &[
                ("/doctors", "Doctors"),
                ("/login", "Sign in"),
                ("/register", "Register"),
            ],
            Some(Role::Patient) => &[
                ("/doctors", "Book"),
                ("/appointments", "My appointments"),
                ("/waitlist", "Waitlist"),
                ("/record", "My record"),
                ("/notifications", "Notifications"),
                ("/account", "Account"),
            ],
            Some(Role::Doctor) => &[
                ("/doctor", "Appointments"),
                ("/doctor/refills", "Refills"),
                ("/doctor/unavailability", "Unavailability"),
                ("/notifications", "Notifications"),
                ("/account", "Account"),
            ],
            Some(Role::Nurse) => &[
                ("/nurse", "Appointments"),
                ("/notifications", "Notifications"),
                ("/account", "Account"),
            ],
            Some(Role::Admin) => &[
                ("/admin/queue", "Approvals"),
                ("/admin/appointments", "Appointments"),
                ("/admin/payments", "Payments"),
                ("/admin/users", "Users"),
                ("/admin/departments", "Departments"),
                ("/admin/schedules", "Schedules"),
                ("/admin/waitlist", "Waitlists"),
                ("/admin/apps", "SMART apps"),
                ("/admin/deliveries", "Deliveries"),
                ("/admin/status", "Status"),
                ("/account", "Account"),
            ],
        };
        let nav = links
            .iter()
            .map(|&(href, label)| NavItem {
                href,
                label,
                current: path == href,
            })
            .collect();
        Self {
            title: title.into(),
            user_name: session.user.as_ref().map(|user| user.name.clone()),
            role: session.user.as_ref().map(|user| user.role.label()),
            csrf: session.csrf.clone(),
            nav,
            flash: session.take_flash(),
        }
    }
}

/// Renders `template` as a 200 page.
pub fn render(template: &impl Template) -> Response {
    render_status(StatusCode::OK, template)
}

/// Renders `template` with `status` (a form shown again with its errors is a 422).
pub fn render_status(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            plain_error(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// After a successful form post: back to a page (303, so a reload does not post again).
pub fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    heading: String,
    message: String,
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// Not there, or not this person's to see (the same answer for both).
    NotFound,
    /// A screen of another role.
    Forbidden,
    /// Not signed in (or the login ended): to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// The platform behind the gateway is not answering.
    Unavailable(String),
    /// The API refused with something this page has no place for.
    Refused { status: StatusCode, detail: String },
}

impl WebError {
    pub fn from_api(failure: ApiFailure, next: &str) -> Self {
        match failure {
            ApiFailure::SignedOut => WebError::SignIn {
                next: next.to_owned(),
            },
            ApiFailure::Unavailable(why) => WebError::Unavailable(why),
            ApiFailure::Rejected(problem) => match problem.status {
                StatusCode::NOT_FOUND => WebError::NotFound,
                StatusCode::FORBIDDEN => WebError::Forbidden,
                status => WebError::Refused {
                    status,
                    detail: problem.detail,
                },
            },
        }
    }

    /// The error page, laid out for `session`.
    pub fn page(self, session: &Session) -> Response {
        let (status, heading, message) = match self {
            WebError::SignIn { next } => {
                let target = format!("/login?next={}", encode(&next));
                return see_other(&target);
            }
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it is not yours to see.".to_owned(),
            ),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not available to you",
                "This page belongs to another role. Use the menu to find yours.".to_owned(),
            ),
            WebError::Unavailable(why) => {
                tracing::warn!(%why, "a page could not be built");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "Part of the clinic's system is not answering. Please try again in a moment."
                        .to_owned(),
                )
            }
            WebError::Refused { status, detail } => (status, "That did not work", detail),
        };
        let page = ErrorPage {
            l: Layout::new(session, heading, ""),
            heading: heading.to_owned(),
            message,
        };
        let mut response = render_status(status, &page);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// A bare error page for when there is no session to lay it out for.
pub fn plain_error(status: StatusCode) -> Response {
    let text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} \
         - Polyclinic</title></head><body><main><h1>{status}</h1><p><a href=\"/\">Back to \
         the start page</a></p></main></body></html>"
    );
    (status, Html(text)).into_response()
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|pair| pair.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// A page handler's result: a response, or an error page for the session.
pub type PageResult = Result<Response, WebError>;
