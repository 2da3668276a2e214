//! Departments and their rooms.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::super::FormState;
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{Signed, audience::Admins};
use crate::model::{Department, Room};
use crate::page::{Layout, PageResult, WebError, render, render_status, see_other};
use crate::session::Session;

struct DepartmentRow {
    id: String,
    name: String,
    description: String,
    rooms: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin_departments.html")]
struct DepartmentsPage {
    l: Layout,
    f: FormState,
    rows: Vec<DepartmentRow>,
}

async fn departments_page(
    state: &WebState,
    session: &Session,
    f: FormState,
) -> Result<DepartmentsPage, WebError> {
    let here = "/admin/departments";
    let fail = |failure| WebError::from_api(failure, here);
    let departments: Vec<Department> = state
        .gateway
        .get(session, "/api/departments")
        .await
        .map_err(fail)?;
    let rooms: Vec<Room> = state
        .gateway
        .get(session, "/api/rooms")
        .await
        .map_err(fail)?;
    Ok(DepartmentsPage {
        l: Layout::new(session, "Departments and rooms", here),
        f,
        rows: departments
            .into_iter()
            .map(|department| DepartmentRow {
                rooms: rooms
                    .iter()
                    .filter(|room| room.department_id == department.id)
                    .map(|room| room.name.clone())
                    .collect(),
                id: department.id,
                name: department.name,
                description: department.description,
            })
            .collect(),
    })
}

pub(super) async fn departments(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
) -> PageResult {
    Ok(render(
        &departments_page(&state, &session, FormState::default()).await?,
    ))
}

pub(super) async fn create_department(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    if !f.required("name") {
        let body = json!({ "name": f.v("name"), "description": f.v("description") });
        match state
            .gateway
            .post(&session, "/api/departments", &body)
            .await
        {
            Ok(_) => {
                session.set_flash("ok", "Department created.");
                return Ok(see_other("/admin/departments"));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "department_name_taken" => f.error("name", "A department with this name exists."),
                _ => f.absorb(&problem, &[]),
            },
            Err(other) => return Err(WebError::from_api(other, "/admin/departments")),
        }
    }
    let page = departments_page(&state, &session, f).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub(super) async fn create_room(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let missing = f.required("room_name") | f.required("room_department_id");
    if !missing {
        let body = json!({ "name": f.v("room_name"), "department_id": f.v("room_department_id") });
        match state.gateway.post(&session, "/api/rooms", &body).await {
            Ok(_) => {
                session.set_flash("ok", "Room created.");
                return Ok(see_other("/admin/departments"));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "room_name_taken" => f.error("room_name", "A room with this name exists."),
                _ => f.absorb(
                    &problem,
                    &[
                        ("name", "room_name"),
                        ("department_id", "room_department_id"),
                    ],
                ),
            },
            Err(other) => return Err(WebError::from_api(other, "/admin/departments")),
        }
    }
    let page = departments_page(&state, &session, f).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
