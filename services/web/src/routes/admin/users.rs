//! Users and staff: the list, new staff accounts, deactivation.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::{FormState, Id, Page, query};
use super::{Choice, minor_units, outcome};
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{Signed, audience::Admins};
use crate::model::{Department, Person};
use crate::page::{Layout, PageResult, WebError, render, render_status, see_other};
use crate::session::Session;

#[derive(Deserialize, Default)]
pub(super) struct UserFilter {
    role: Option<String>,
    q: Option<String>,
    cursor: Option<uuid::Uuid>,
}

struct UserRow {
    id: String,
    name: String,
    email: String,
    role: String,
    status: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    l: Layout,
    f: FormState,
    role: String,
    q: String,
    rows: Vec<UserRow>,
    next: Option<String>,
    departments: Vec<Choice>,
    currency: String,
}

const ROLES: [&str; 4] = ["ADMIN", "DOCTOR", "NURSE", "PATIENT"];

async fn users_page(
    state: &WebState,
    session: &Session,
    filter: UserFilter,
    f: FormState,
) -> Result<UsersPage, WebError> {
    let here = "/admin/users";
    let fail = |failure| WebError::from_api(failure, here);
    let role = filter
        .role
        .filter(|r| ROLES.contains(&r.as_str()))
        .unwrap_or_default();
    let q: String = filter.q.unwrap_or_default().chars().take(100).collect();
    let cursor = filter.cursor.map(|c| c.to_string()).unwrap_or_default();
    let page: Page<Person> = state
        .gateway
        .get(
            session,
            &format!(
                "/api/users{}",
                query(&[
                    ("role", &role),
                    ("q", &q),
                    ("limit", "50"),
                    ("cursor", &cursor)
                ])
            ),
        )
        .await
        .map_err(fail)?;
    let departments: Vec<Department> = state
        .gateway
        .get(session, "/api/departments")
        .await
        .map_err(fail)?;
    let next = page.next_cursor.as_ref().map(|next| {
        format!(
            "{here}{}",
            query(&[("role", &role), ("q", &q), ("cursor", next)])
        )
    });
    Ok(UsersPage {
        l: Layout::new(session, "Users", here),
        f,
        role,
        q,
        rows: page
            .items
            .iter()
            .map(|person| UserRow {
                id: person.id.clone(),
                name: person.name(),
                email: person.email.clone(),
                role: person.role.clone(),
                status: person.status.clone(),
            })
            .collect(),
        next,
        departments: departments
            .into_iter()
            .map(|d| Choice {
                id: d.id,
                label: d.name,
            })
            .collect(),
        currency: state.currency.clone(),
    })
}

pub(super) async fn users(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Query(filter): Query<UserFilter>,
) -> PageResult {
    let f = FormState::default().with("role", "DOCTOR");
    Ok(render(&users_page(&state, &session, filter, f).await?))
}

pub(super) async fn create_staff(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    for name in ["first_name", "last_name", "email", "password", "role"] {
        f.required(name);
    }
    let role = f.v("role").to_owned();
    let mut body = json!({
        "first_name": f.v("first_name"),
        "last_name": f.v("last_name"),
        "email": f.v("email"),
        "password": f.raw("password"),
        "role": role,
    });
    if (role == "DOCTOR" || role == "NURSE") && !f.required("department_id") {
        body["department_id"] = Value::from(f.v("department_id"));
    }
    if role == "DOCTOR" {
        if !f.required("specialization") {
            body["specialization"] = Value::from(f.v("specialization"));
        }
        match f.v("years_of_experience").parse::<u32>() {
            Ok(years) => body["years_of_experience"] = Value::from(years),
            Err(_) => f.error("years_of_experience", "Enter the years as a whole number."),
        }
        match minor_units(f.v("fee")) {
            Some(amount) => {
                body["consultation_fee"] = json!({ "amount": amount, "currency": state.currency })
            }
            None => f.error("fee", "Enter the fee like 60.00."),
        }
    }
    if !f.has_errors() {
        match state
            .gateway
            .post(&session, "/api/users/staff", &body)
            .await
        {
            Ok(_) => {
                session.set_flash(
                    "ok",
                    format!(
                        "{} {} can now sign in.",
                        f.v("first_name"),
                        f.v("last_name")
                    ),
                );
                return Ok(see_other("/admin/users"));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "email_taken" => f.error("email", "An account with this email exists."),
                "unknown_department" => f.error("department_id", "Choose an existing department."),
                _ => f.absorb(
                    &problem,
                    &[
                        ("consultation_fee", "fee"),
                        ("consultation_fee.amount", "fee"),
                    ],
                ),
            },
            Err(other) => return Err(WebError::from_api(other, "/admin/users")),
        }
    }
    f.forget("password");
    let page = users_page(&state, &session, UserFilter::default(), f).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub(super) async fn deactivate(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
) -> PageResult {
    let result = state
        .gateway
        .delete(&session, &format!("/api/users/{id}"))
        .await;
    outcome(
        &session,
        result,
        "Deactivated: their sign-ins have ended.",
        "/admin/users",
    )
}
