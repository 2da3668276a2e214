//! The admin's screens: the approval queue (room and nurse pickers list only the free ones),
//! all appointments and payments with filters, capture and refund, users and staff, departments
//! and rooms, doctors' weekly schedules, failed emails and dead-lettered events, and the
//! platform's status.

use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::NaiveDate;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::appointments::{AppointmentView, doctor_names};
use super::{FormState, Id, Page, form_key, query, require, short};
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::Visitor;
use crate::model::{
    Appointment, DeadLetters, Delivery, Department, Doctor, Payment, Person, Room, Schedule,
    StatusReport,
};
use crate::page::{Layout, PageResult, WebError, encode, render, render_status, see_other};
use crate::session::{Role, Session};
use crate::view::{Clinic, money};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/admin", get(|| async { see_other("/admin/queue") }))
        .route("/admin/queue", get(queue))
        .route("/admin/appointments/{id}/approve", post(approve))
        .route("/admin/appointments/{id}/reject", post(reject))
        .route("/admin/appointments", get(appointments))
        .route("/admin/payments", get(payments))
        .route("/admin/payments/{id}/capture", post(capture))
        .route("/admin/payments/{id}/refund", post(refund))
        .route("/admin/users", get(users).post(create_staff))
        .route("/admin/users/{id}/deactivate", post(deactivate))
        .route(
            "/admin/departments",
            get(departments).post(create_department),
        )
        .route("/admin/rooms", post(create_room))
        .route("/admin/schedules", get(schedules))
        .route("/admin/schedules/{id}", post(save_schedule))
        .route("/admin/deliveries", get(deliveries))
        .route("/admin/notifications/{id}/resend", post(resend))
        .route("/admin/dead-letters/{id}/replay", post(replay))
        .route("/admin/status", get(status))
}

fn admin<'a>(session: &'a Session, here: &str) -> Result<&'a crate::session::User, WebError> {
    require(session, &[Role::Admin], here)
}

struct Choice {
    id: String,
    label: String,
}

struct QueueItem {
    a: AppointmentView,
    rooms: Vec<Choice>,
    nurses: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    l: Layout,
    items: Vec<QueueItem>,
}

/// What a department has: its rooms and active nurses.
struct Staffing {
    rooms: Vec<Room>,
    nurses: Vec<Person>,
}

async fn queue(State(state): State<WebState>, Visitor(session): Visitor) -> PageResult {
    let here = "/admin/queue";
    admin(&session, here)?;
    let fail = |failure| WebError::from_api(failure, here);
    let waiting: Page<Appointment> = state
        .gateway
        .get(&session, "/api/appointments/queue?limit=100")
        .await
        .map_err(fail)?;
    let directory: Vec<Doctor> = state
        .gateway
        .get_as(&session, "/api/doctors")
        .await
        .map_err(fail)?;
    let names: HashMap<String, String> =
        directory.iter().map(|d| (d.id.clone(), d.name())).collect();
    // One read of the scheduled visits that could overlap any waiting request (no visit is
    // longer than a day), rather than one per request.
    let scheduled: Vec<Appointment> = match (
        waiting.items.iter().map(|a| a.starts_at).min(),
        waiting.items.iter().map(|a| a.ends_at).max(),
    ) {
        (Some(first), Some(last)) => {
            let path = format!(
                "/api/appointments?status=SCHEDULED&limit=100&from={}&to={}",
                encode(&(first - chrono::Duration::hours(24)).to_rfc3339()),
                encode(&last.to_rfc3339())
            );
            super::all_pages(&state, &session, &path, 50)
                .await
                .map_err(fail)?
        }
        _ => Vec::new(),
    };
    let mut staffing: HashMap<String, Staffing> = HashMap::new();
    let mut items = Vec::new();
    for appointment in &waiting.items {
        let department = directory
            .iter()
            .find(|doctor| doctor.id == appointment.doctor_id)
            .map(|doctor| doctor.department_id.clone())
            .unwrap_or_default();
        // A doctor no longer in the directory (deactivated) has nothing to offer.
        if !department.is_empty() && !staffing.contains_key(&department) {
            let rooms: Vec<Room> = state
                .gateway
                .get(&session, &format!("/api/rooms?department_id={department}"))
                .await
                .map_err(fail)?;
            let nurses: Page<Person> = state
                .gateway
                .get(
                    &session,
                    &format!(
                        "/api/users?role=NURSE&status=ACTIVE&department_id={department}&limit=100"
                    ),
                )
                .await
                .map_err(fail)?;
            staffing.insert(
                department.clone(),
                Staffing {
                    rooms,
                    nurses: nurses.items,
                },
            );
        }
        let (busy_rooms, busy_nurses) = busy_during(&scheduled, appointment);
        let staff = staffing.get(&department);
        items.push(QueueItem {
            a: AppointmentView::new(&state, appointment, &names, Role::Admin),
            rooms: staff
                .into_iter()
                .flat_map(|staff| &staff.rooms)
                .filter(|room| !busy_rooms.contains(&room.id))
                .map(|room| Choice {
                    id: room.id.clone(),
                    label: room.name.clone(),
                })
                .collect(),
            nurses: staff
                .into_iter()
                .flat_map(|staff| &staff.nurses)
                .filter(|nurse| !busy_nurses.contains(&nurse.id))
                .map(|nurse| Choice {
                    id: nurse.id.clone(),
                    label: nurse.name(),
                })
                .collect(),
        });
    }
    Ok(render(&QueuePage {
        l: Layout::new(&session, "Approvals", here),
        items,
    }))
}

/// The rooms and nurses that a scheduled visit overlapping `appointment` already holds.
fn busy_during(
    scheduled: &[Appointment],
    appointment: &Appointment,
) -> (HashSet<String>, HashSet<String>) {
    let overlapping = scheduled.iter().filter(|other| {
        other.id != appointment.id
            && other.starts_at < appointment.ends_at
            && other.ends_at > appointment.starts_at
    });
    let mut rooms = HashSet::new();
    let mut nurses = HashSet::new();
    for other in overlapping {
        rooms.extend(other.room_id.clone());
        nurses.extend(other.nurse_id.clone());
    }
    (rooms, nurses)
}

async fn approve(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    admin(&session, "/admin/queue")?;
    let f = FormState::new(pairs);
    if f.v("room_id").is_empty() || f.v("nurse_id").is_empty() {
        session.set_flash("error", "Choose a room and a nurse to approve.");
        return Ok(see_other("/admin/queue"));
    }
    let body = json!({ "room_id": f.v("room_id"), "nurse_id": f.v("nurse_id") });
    outcome(
        &session,
        state
            .gateway
            .post_once(
                &session,
                &format!("/api/appointments/{id}/approve"),
                &body,
                &form_key(&f),
            )
            .await,
        "Approved: the payment is captured and the patient is told.",
        "/admin/queue",
    )
}

async fn reject(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    admin(&session, "/admin/queue")?;
    let f = FormState::new(pairs);
    if f.v("reason").is_empty() {
        session.set_flash("error", "Give the patient a reason for the rejection.");
        return Ok(see_other("/admin/queue"));
    }
    outcome(
        &session,
        state
            .gateway
            .post_once(
                &session,
                &format!("/api/appointments/{id}/reject"),
                &json!({ "reason": f.v("reason") }),
                &form_key(&f),
            )
            .await,
        "Rejected: the card authorisation is released and the patient is told.",
        "/admin/queue",
    )
}

/// A flash for what happened, then back to `back`. Refusals are shown, not error pages.
fn outcome(
    session: &Session,
    result: Result<Value, ApiFailure>,
    done: &str,
    back: &str,
) -> PageResult {
    match result {
        Ok(_) => session.set_flash("ok", done),
        Err(ApiFailure::Rejected(problem)) => {
            let message = match problem.code.as_str() {
                "room_taken" => {
                    "That room was just booked for the same time. Choose another.".to_owned()
                }
                "nurse_taken" => {
                    "That nurse was just booked for the same time. Choose another.".to_owned()
                }
                _ if problem.fields.is_empty() => problem.detail.clone(),
                _ => problem
                    .fields
                    .iter()
                    .map(|(field, message)| format!("{field}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            session.set_flash("error", message);
        }
        Err(other) => return Err(WebError::from_api(other, back)),
    }
    Ok(see_other(back))
}

#[derive(Deserialize, Default)]
struct AppointmentFilter {
    status: Option<String>,
    doctor_id: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    cursor: Option<uuid::Uuid>,
}

const STATUSES: [&str; 8] = [
    "PENDING",
    "PAID",
    "SCHEDULED",
    "COMPLETED",
    "NO_SHOW",
    "EXPIRED",
    "REJECTED",
    "CANCELLED",
];

#[derive(Template)]
#[template(path = "admin_appointments.html")]
struct AppointmentsPage {
    l: Layout,
    statuses: Vec<&'static str>,
    doctors: Vec<Choice>,
    status: String,
    doctor_id: String,
    from: String,
    to: String,
    rows: Vec<AppointmentView>,
    next: Option<String>,
}

async fn appointments(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(filter): Query<AppointmentFilter>,
) -> PageResult {
    let here = "/admin/appointments";
    admin(&session, here)?;
    let status = filter
        .status
        .clone()
        .filter(|s| STATUSES.contains(&s.as_str()))
        .unwrap_or_default();
    let doctor_id = filter
        .doctor_id
        .as_deref()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(|id| id.to_string())
        .unwrap_or_default();
    let (from_day, to_day) = (
        filter.from.and_then(Clinic::plausible),
        filter.to.and_then(Clinic::plausible),
    );
    let from = from_day
        .map(|date| state.clinic.day_bounds(date, 0).0.to_rfc3339())
        .unwrap_or_default();
    let to = to_day
        .map(|date| state.clinic.day_bounds(date, 1).1.to_rfc3339())
        .unwrap_or_default();
    let cursor = filter.cursor.map(|c| c.to_string()).unwrap_or_default();
    let path = format!(
        "/api/appointments{}",
        query(&[
            ("status", &status),
            ("doctor_id", &doctor_id),
            ("from", &from),
            ("to", &to),
            ("limit", "50"),
            ("cursor", &cursor),
        ])
    );
    let page: Page<Appointment> = state
        .gateway
        .get(&session, &path)
        .await
        .map_err(|failure| WebError::from_api(failure, here))?;
    let names = doctor_names(&state, &session).await;
    let from_date = from_day.map(|d| d.to_string()).unwrap_or_default();
    let to_date = to_day.map(|d| d.to_string()).unwrap_or_default();
    let next = page.next_cursor.as_ref().map(|next| {
        format!(
            "{here}{}",
            query(&[
                ("status", &status),
                ("doctor_id", &doctor_id),
                ("from", &from_date),
                ("to", &to_date),
                ("cursor", next),
            ])
        )
    });
    let mut doctors: Vec<Choice> = names
        .iter()
        .map(|(id, name)| Choice {
            id: id.clone(),
            label: name.clone(),
        })
        .collect();
    doctors.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(render(&AppointmentsPage {
        l: Layout::new(&session, "All appointments", here),
        statuses: STATUSES.to_vec(),
        doctors,
        status,
        doctor_id,
        from: from_date,
        to: to_date,
        rows: page
            .items
            .iter()
            .map(|appointment| AppointmentView::new(&state, appointment, &names, Role::Admin))
            .collect(),
        next,
    }))
}

#[derive(Deserialize, Default)]
struct PaymentFilter {
    status: Option<String>,
    cursor: Option<uuid::Uuid>,
}

struct PaymentRow {
    id: String,
    appointment_id: String,
    patient: String,
    amount: String,
    captured: String,
    refunded: String,
    status: String,
    status_label: String,
    created: String,
    can_capture: bool,
    can_refund: bool,
    key: String,
}

const PAYMENT_STATUSES: [&str; 4] = [
    "requires_payment_method",
    "requires_capture",
    "succeeded",
    "canceled",
];

#[derive(Template)]
#[template(path = "admin_payments.html")]
struct PaymentsPage {
    l: Layout,
    statuses: Vec<&'static str>,
    status: String,
    rows: Vec<PaymentRow>,
    next: Option<String>,
}

async fn payments(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(filter): Query<PaymentFilter>,
) -> PageResult {
    let here = "/admin/payments";
    admin(&session, here)?;
    let status = filter
        .status
        .filter(|s| PAYMENT_STATUSES.contains(&s.as_str()))
        .unwrap_or_default();
    let cursor = filter.cursor.map(|c| c.to_string()).unwrap_or_default();
    let page: Page<Payment> = state
        .gateway
        .get(
            &session,
            &format!(
                "/api/payments{}",
                query(&[("status", &status), ("limit", "50"), ("cursor", &cursor)])
            ),
        )
        .await
        .map_err(|failure| WebError::from_api(failure, here))?;
    let next = page
        .next_cursor
        .as_ref()
        .map(|next| format!("{here}{}", query(&[("status", &status), ("cursor", next)])));
    Ok(render(&PaymentsPage {
        l: Layout::new(&session, "Payments", here),
        statuses: PAYMENT_STATUSES.to_vec(),
        status,
        rows: page
            .items
            .iter()
            .map(|payment| PaymentRow {
                id: payment.id.clone(),
                appointment_id: payment.appointment_id.clone(),
                patient: format!("Patient {}", short(&payment.patient_id)),
                amount: money(payment.amount, &payment.currency),
                captured: money(payment.amount_captured, &payment.currency),
                refunded: money(payment.amount_refunded, &payment.currency),
                status: payment.status.clone(),
                status_label: payment.status.replace('_', " "),
                created: state.clinic.time(&payment.created_at),
                can_capture: payment.status == "requires_capture",
                can_refund: payment.status == "succeeded"
                    && payment.amount_refunded < payment.amount_captured,
                key: uuid::Uuid::new_v4().to_string(),
            })
            .collect(),
        next,
    }))
}

/// `12.50` as 1250 minor units; `None` for text that is not such an amount.
fn minor_units(text: &str) -> Option<i64> {
    let text = text.trim().replace(',', ".");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(cents)
}

async fn money_action(
    state: &WebState,
    session: &Session,
    id: &str,
    action: &str,
    pairs: Vec<(String, String)>,
    done: &str,
) -> PageResult {
    admin(session, "/admin/payments")?;
    let f = FormState::new(pairs);
    let body = match f.opt("amount") {
        None => json!({}),
        Some(text) => match minor_units(text) {
            Some(amount) => json!({ "amount": amount }),
            None => {
                session.set_flash(
                    "error",
                    "Enter the amount like 12.50, or leave it empty for all of it.",
                );
                return Ok(see_other("/admin/payments"));
            }
        },
    };
    let result = state
        .gateway
        .post_once(
            session,
            &format!("/api/payments/{id}/{action}"),
            &body,
            &form_key(&f),
        )
        .await;
    outcome(session, result, done, "/admin/payments")
}

async fn capture(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    money_action(&state, &session, &id, "capture", pairs, "Captured.").await
}

async fn refund(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    money_action(&state, &session, &id, "refund", pairs, "Refunded.").await
}

#[derive(Deserialize, Default)]
struct UserFilter {
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
    admin(session, here)?;
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

async fn users(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(filter): Query<UserFilter>,
) -> PageResult {
    let f = FormState::default().with("role", "DOCTOR");
    Ok(render(&users_page(&state, &session, filter, f).await?))
}

async fn create_staff(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    admin(&session, "/admin/users")?;
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

async fn deactivate(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
) -> PageResult {
    admin(&session, "/admin/users")?;
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
    admin(session, here)?;
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

async fn departments(State(state): State<WebState>, Visitor(session): Visitor) -> PageResult {
    Ok(render(
        &departments_page(&state, &session, FormState::default()).await?,
    ))
}

async fn create_department(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    admin(&session, "/admin/departments")?;
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

async fn create_room(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    admin(&session, "/admin/departments")?;
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

#[derive(Deserialize)]
struct ScheduleQuery {
    doctor_id: Option<uuid::Uuid>,
}

struct DayRow {
    weekday: u32,
    name: &'static str,
    works: bool,
    starts_at: String,
    ends_at: String,
    slot_minutes: String,
}

#[derive(Template)]
#[template(path = "admin_schedules.html")]
struct SchedulesPage {
    l: Layout,
    doctors: Vec<Choice>,
    doctor_id: String,
    custom: bool,
    days: Vec<DayRow>,
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

async fn schedules_page(
    state: &WebState,
    session: &Session,
    doctor_id: Option<String>,
) -> Result<SchedulesPage, WebError> {
    let here = "/admin/schedules";
    admin(session, here)?;
    let names = doctor_names(state, session).await;
    let mut doctors: Vec<Choice> = names
        .iter()
        .map(|(id, name)| Choice {
            id: id.clone(),
            label: name.clone(),
        })
        .collect();
    doctors.sort_by(|a, b| a.label.cmp(&b.label));
    let doctor_id = doctor_id
        .or_else(|| doctors.first().map(|d| d.id.clone()))
        .unwrap_or_default();
    let (custom, days) = if doctor_id.is_empty() {
        (false, Vec::new())
    } else {
        let schedule: Schedule = state
            .gateway
            .get(session, &format!("/api/doctors/{doctor_id}/schedule"))
            .await
            .map_err(|failure| WebError::from_api(failure, here))?;
        let days = (1..=7u32)
            .map(|weekday| {
                let day = schedule.days.iter().find(|day| day.weekday == weekday);
                DayRow {
                    weekday,
                    name: WEEKDAYS[(weekday - 1) as usize],
                    works: day.is_some(),
                    starts_at: day
                        .map(|d| d.starts_at.clone())
                        .unwrap_or_else(|| "08:00".into()),
                    ends_at: day
                        .map(|d| d.ends_at.clone())
                        .unwrap_or_else(|| "17:00".into()),
                    slot_minutes: day
                        .map(|d| d.slot_minutes.to_string())
                        .unwrap_or_else(|| "30".into()),
                }
            })
            .collect();
        (schedule.custom, days)
    };
    Ok(SchedulesPage {
        l: Layout::new(session, "Schedules", here),
        doctors,
        doctor_id,
        custom,
        days,
    })
}

async fn schedules(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(q): Query<ScheduleQuery>,
) -> PageResult {
    Ok(render(
        &schedules_page(&state, &session, q.doctor_id.map(|id| id.to_string())).await?,
    ))
}

async fn save_schedule(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(doctor_id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    admin(&session, "/admin/schedules")?;
    let mut f = FormState::new(pairs);
    let mut days = Vec::new();
    for weekday in 1..=7 {
        if f.v(&format!("works_{weekday}")).is_empty() {
            continue;
        }
        let minutes = f.v(&format!("slot_{weekday}")).parse::<u32>();
        match minutes {
            Ok(minutes) => days.push(json!({
                "weekday": weekday,
                "starts_at": f.v(&format!("starts_{weekday}")),
                "ends_at": f.v(&format!("ends_{weekday}")),
                "slot_minutes": minutes,
            })),
            Err(_) => f.error(&format!("slot_{weekday}"), "Minutes as a whole number."),
        }
    }
    let back = format!("/admin/schedules?doctor_id={doctor_id}");
    if f.has_errors() {
        session.set_flash("error", "Slot lengths are whole minutes.");
        return Ok(see_other(&back));
    }
    let result = state
        .gateway
        .call(
            &session,
            Method::PUT,
            &format!("/api/doctors/{doctor_id}/schedule"),
            &json!({ "days": days }),
        )
        .await;
    outcome(
        &session,
        result,
        "Schedule saved. Booked appointments stay as they are.",
        &back,
    )
}

struct DeliveryRow {
    id: String,
    at: String,
    to: String,
    template: String,
    attempts: i64,
    error: String,
}

struct DeadLetterRow {
    id: String,
    at: String,
    service: String,
    consumer: String,
    event_type: String,
    error: String,
    attempts: i64,
    replayed: String,
}

#[derive(Template)]
#[template(path = "admin_deliveries.html")]
struct DeliveriesPage {
    l: Layout,
    failed: Vec<DeliveryRow>,
    dead: Vec<DeadLetterRow>,
    unreachable: Vec<String>,
}

async fn deliveries(State(state): State<WebState>, Visitor(session): Visitor) -> PageResult {
    let here = "/admin/deliveries";
    admin(&session, here)?;
    let fail = |failure| WebError::from_api(failure, here);
    let failed: Page<Delivery> = state
        .gateway
        .get(&session, "/api/notifications?status=FAILED&limit=100")
        .await
        .map_err(fail)?;
    let dead: DeadLetters = state
        .gateway
        .get(&session, "/api/events/dead-letters")
        .await
        .map_err(fail)?;
    Ok(render(&DeliveriesPage {
        l: Layout::new(&session, "Failed deliveries", here),
        failed: failed
            .items
            .iter()
            .map(|d| DeliveryRow {
                id: d.id.clone(),
                at: state.clinic.time(&d.created_at),
                to: d.recipient_email.clone(),
                template: format!("{} ({})", d.template, d.event_type),
                attempts: d.attempts,
                error: d.last_error.clone().unwrap_or_default(),
            })
            .collect(),
        dead: dead
            .items
            .iter()
            .map(|d| DeadLetterRow {
                id: d.id.clone(),
                at: state.clinic.time(&d.created_at),
                service: d.service.clone(),
                consumer: d.consumer.clone(),
                event_type: d.event_type.clone(),
                error: d.replay_error.clone().unwrap_or_else(|| d.error.clone()),
                attempts: d.attempts,
                replayed: d
                    .replayed_at
                    .map(|at| state.clinic.time(&at))
                    .unwrap_or_default(),
            })
            .collect(),
        unreachable: dead.unreachable,
    }))
}

async fn resend(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
) -> PageResult {
    admin(&session, "/admin/deliveries")?;
    let result = state
        .gateway
        .post(
            &session,
            &format!("/api/notifications/{id}/resend"),
            &json!({}),
        )
        .await;
    outcome(
        &session,
        result,
        "Queued to be sent again.",
        "/admin/deliveries",
    )
}

async fn replay(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(id): Id,
) -> PageResult {
    admin(&session, "/admin/deliveries")?;
    let result = state
        .gateway
        .post(
            &session,
            &format!("/api/events/dead-letters/{id}/replay"),
            &json!({}),
        )
        .await;
    outcome(
        &session,
        result,
        "Replayed: the event was handled this time.",
        "/admin/deliveries",
    )
}

#[derive(Template)]
#[template(path = "admin_status.html")]
struct StatusPage {
    l: Layout,
    report: StatusReport,
}

async fn status(State(state): State<WebState>, Visitor(session): Visitor) -> PageResult {
    admin(&session, "/admin/status")?;
    let report: StatusReport = state
        .gateway
        .get_public("/status")
        .await
        .map_err(|failure| WebError::from_api(failure, "/admin/status"))?;
    Ok(render(&StatusPage {
        l: Layout::new(&session, "Service status", "/admin/status"),
        report,
    }))
}

#[cfg(test)]
mod tests {
    use super::minor_units;

    #[test]
    fn amounts_are_read_as_minor_units() {
        assert_eq!(minor_units("60"), Some(6000));
        assert_eq!(minor_units("12.5"), Some(1250));
        assert_eq!(minor_units("12,05"), Some(1205));
        assert_eq!(minor_units("1.234"), None);
        assert_eq!(minor_units("-3"), None);
        assert_eq!(minor_units(""), None);
    }
}
