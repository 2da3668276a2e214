//! The patient's screens: the doctor directory, a doctor's week of free slots, reserving,
//! paying with a card, the inbox, the medical record with prescriptions and refills, and who
//! has looked at the record.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{Datelike, Duration, NaiveDate};
use serde::Deserialize;
use serde_json::json;

use super::{FormState, Id, from_htmx, query};
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{
    Signed, Visitor,
    audience::{Everyone, Patients},
};
use crate::model::{
    AccessLogRow, Appointment, Availability, Doctor, Inbox, InboxItem, Payment, Record,
};
use crate::page::{Layout, PageResult, WebError, render, render_status, see_other};
use crate::routes::care::{EntryView, PrescriptionView};
use crate::view::money;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/doctors", get(directory))
        .route("/doctors/{id}", get(week))
        .route("/book", get(book_page).post(book))
        .route("/appointments/{id}/pay", get(pay_page).post(pay))
        .route("/notifications", get(notifications))
        .route("/notifications/{id}/read", post(mark_read))
        .route("/record", get(record))
        .route("/prescriptions/{id}/refill", post(request_refill))
}

#[derive(Deserialize)]
struct DirectoryQuery {
    department_id: Option<String>,
    specialization: Option<String>,
}

struct DoctorCard {
    id: String,
    name: String,
    specialization: String,
    department: String,
    experience: String,
    fee: String,
}

impl From<&Doctor> for DoctorCard {
    fn from(doctor: &Doctor) -> Self {
        Self {
            id: doctor.id.clone(),
            name: doctor.name(),
            specialization: doctor.specialization.clone(),
            department: doctor.department_name.clone(),
            experience: format!("{} years", doctor.years_of_experience),
            fee: money(
                doctor.consultation_fee.amount,
                &doctor.consultation_fee.currency,
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "doctors.html")]
struct DirectoryPage {
    l: Layout,
    departments: Vec<(String, String)>,
    specializations: Vec<String>,
    department_id: String,
    specialization: String,
    doctors: Vec<DoctorCard>,
}

/// Everyone may browse; booking needs a patient's sign-in.
async fn directory(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Query(filter): Query<DirectoryQuery>,
) -> PageResult {
    let all: Vec<Doctor> = state
        .gateway
        .get_as(&session, "/api/doctors")
        .await
        .map_err(|failure| WebError::from_api(failure, "/doctors"))?;
    let department_id = filter.department_id.unwrap_or_default();
    let specialization = filter.specialization.unwrap_or_default();
    let mut departments: BTreeMap<String, String> = BTreeMap::new();
    let mut specializations: Vec<String> = Vec::new();
    for doctor in &all {
        departments.insert(doctor.department_name.clone(), doctor.department_id.clone());
        if !specializations.contains(&doctor.specialization) {
            specializations.push(doctor.specialization.clone());
        }
    }
    specializations.sort();
    let shown: Vec<Doctor> = if department_id.is_empty() && specialization.is_empty() {
        all
    } else {
        let path = format!(
            "/api/doctors{}",
            query(&[
                ("department_id", &department_id),
                ("specialization", &specialization)
            ])
        );
        state
            .gateway
            .get_as(&session, &path)
            .await
            .map_err(|failure| WebError::from_api(failure, "/doctors"))?
    };
    Ok(render(&DirectoryPage {
        l: Layout::new(&session, "Find a doctor", "/doctors"),
        departments: departments
            .into_iter()
            .map(|(name, id)| (id, name))
            .collect(),
        specializations,
        department_id,
        specialization,
        doctors: shown.iter().map(DoctorCard::from).collect(),
    }))
}

#[derive(Deserialize)]
struct WeekQuery {
    from: Option<NaiveDate>,
    /// Moving this appointment rather than booking a new one.
    reschedule: Option<uuid::Uuid>,
}

struct SlotView {
    starts_at: String,
    time: String,
    free: bool,
}

struct DayView {
    heading: String,
    slots: Vec<SlotView>,
}

#[derive(Template)]
#[template(path = "week.html")]
struct WeekPage {
    l: Layout,
    doctor: DoctorCard,
    days: Vec<DayView>,
    previous: Option<String>,
    next: String,
    reschedule: Option<String>,
    timezone: String,
    /// The idempotency key of this rendering's move-here forms.
    key: String,
}

async fn week(
    State(state): State<WebState>,
    Visitor(session): Visitor,
    Id(doctor_id): Id,
    Query(week): Query<WeekQuery>,
) -> PageResult {
    let today = state.clinic.today();
    // Within the year ahead: availability is asked for a week at a time.
    let from = week
        .from
        .filter(|from| *from >= today && *from <= today + Duration::days(366))
        .unwrap_or(today);
    let to = from + Duration::days(6);
    let here = format!("/doctors/{doctor_id}");
    let doctor: Doctor = state
        .gateway
        .get_as(&session, &format!("/api/doctors/{doctor_id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let availability: Availability = state
        .gateway
        .get_as(
            &session,
            &format!("/api/doctors/{doctor_id}/availability?from={from}&to={to}"),
        )
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let days = (0..7)
        .map(|offset| {
            let date = from + Duration::days(offset);
            DayView {
                heading: format!("{} {}", weekday_name(date), date.format("%-d %b")),
                slots: availability
                    .slots
                    .iter()
                    .filter(|slot| slot.local_date == date)
                    .map(|slot| SlotView {
                        starts_at: slot.starts_at.to_rfc3339(),
                        time: slot.local_time.clone(),
                        free: slot.state == "free",
                    })
                    .collect(),
            }
        })
        .collect();
    let reschedule = week.reschedule.map(|id| id.to_string());
    let keep = |date: NaiveDate| {
        let mut link = format!("{here}?from={date}");
        if let Some(id) = &reschedule {
            link.push_str(&format!("&reschedule={id}"));
        }
        link
    };
    Ok(render(&WeekPage {
        l: Layout::new(&session, doctor.name(), "/doctors"),
        doctor: DoctorCard::from(&doctor),
        days,
        previous: (from > today).then(|| keep((from - Duration::days(7)).max(today))),
        next: keep(from + Duration::days(7)),
        reschedule,
        timezone: state.clinic.tz.name().to_owned(),
        key: uuid::Uuid::new_v4().to_string(),
    }))
}

fn weekday_name(date: NaiveDate) -> &'static str {
    match date.weekday() {
        chrono::Weekday::Mon => "Mon",
        chrono::Weekday::Tue => "Tue",
        chrono::Weekday::Wed => "Wed",
        chrono::Weekday::Thu => "Thu",
        chrono::Weekday::Fri => "Fri",
        chrono::Weekday::Sat => "Sat",
        chrono::Weekday::Sun => "Sun",
    }
}

#[derive(Template)]
#[template(path = "book.html")]
struct BookPage {
    l: Layout,
    f: FormState,
    doctor: DoctorCard,
    when: String,
}

async fn book_form(
    state: &WebState,
    session: &crate::session::Session,
    f: FormState,
) -> Result<BookPage, WebError> {
    let here = format!(
        "/book{}",
        query(&[
            ("doctor_id", f.v("doctor_id")),
            ("starts_at", f.v("starts_at"))
        ])
    );
    let doctor_id = uuid::Uuid::parse_str(f.v("doctor_id")).map_err(|_| WebError::NotFound)?;
    let starts_at = chrono::DateTime::parse_from_rfc3339(f.v("starts_at"))
        .map_err(|_| WebError::NotFound)?
        .with_timezone(&chrono::Utc);
    let doctor: Doctor = state
        .gateway
        .get_as(session, &format!("/api/doctors/{doctor_id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    Ok(BookPage {
        l: Layout::new(session, "Confirm your booking", "/doctors"),
        doctor: DoctorCard::from(&doctor),
        when: state.clinic.time(&starts_at),
        f,
    })
}

#[derive(Deserialize)]
struct BookQuery {
    doctor_id: Option<String>,
    starts_at: Option<String>,
}

async fn book_page(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Query(slot): Query<BookQuery>,
) -> PageResult {
    let f = FormState::default()
        .with("doctor_id", slot.doctor_id.unwrap_or_default())
        .with("starts_at", slot.starts_at.unwrap_or_default())
        // One key per rendered form: submitting it twice books once.
        .with("idempotency_key", uuid::Uuid::new_v4().to_string());
    Ok(render(&book_form(&state, &session, f).await?))
}

async fn book(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let page = book_form(&state, &session, f.clone()).await?;
    if f.v("reason").chars().count() > 500 {
        f.error("reason", "Please keep the reason under 500 characters.");
    }
    if !f.has_errors() {
        let body = json!({
            "doctor_id": f.v("doctor_id"),
            "starts_at": f.v("starts_at"),
            "reason": f.v("reason"),
            "notes": f.v("notes"),
        });
        let key = f
            .opt("idempotency_key")
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        match state
            .gateway
            .post_once(&session, "/api/appointments", &body, &key)
            .await
        {
            Ok(reservation) => {
                let id = reservation["id"].as_str().unwrap_or_default();
                session.set_flash("ok", "The slot is held for you. Pay to send the request to the clinic.");
                return Ok(see_other(&format!("/appointments/{id}/pay")));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "slot_taken" | "not_a_slot" | "slot_too_soon" => {
                    session.set_flash("error", "That slot is no longer available. Please pick another.");
                    return Ok(see_other(&format!("/doctors/{}", f.v("doctor_id"))));
                }
                "pending_limit_reached" => {
                    f.general = Some(
                        "You already hold the most unpaid bookings allowed. Pay for or cancel one first."
                            .to_owned(),
                    )
                }
                _ => f.absorb(&problem, &[]),
            },
            Err(other) => return Err(WebError::from_api(other, "/doctors")),
        }
    }
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &BookPage { f, ..page },
    ))
}

#[derive(Template)]
#[template(path = "pay.html")]
struct PayPage {
    l: Layout,
    f: FormState,
    appointment_id: String,
    doctor: String,
    when: String,
    amount: String,
    hold_until: String,
    test_mode: bool,
    /// A visit booked far ahead: the card is saved now, and authorised on this day.
    saving: String,
    /// After a refused authorisation: by when another card must be given.
    deadline: String,
}

async fn pay_form(
    state: &WebState,
    session: &crate::session::Session,
    id: &str,
    f: FormState,
) -> Result<Result<PayPage, Response>, WebError> {
    let here = format!("/appointments/{id}/pay");
    let appointment: Appointment = state
        .gateway
        .get(session, &format!("/api/appointments/{id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let payment: Option<Payment> = match &appointment.payment_id {
        Some(payment_id) => Some(
            state
                .gateway
                .get(session, &format!("/api/payments/{payment_id}"))
                .await
                .map_err(|failure| WebError::from_api(failure, &here))?,
        ),
        None => None,
    };
    // A reservation's first card, or another card after a refused authorisation of a
    // visit that is paid for or approved already.
    let payable = matches!(
        appointment.status.as_str(),
        "PENDING" | "PAID" | "SCHEDULED"
    ) && payment
        .as_ref()
        .is_some_and(|payment| payment.status == "requires_payment_method");
    if !payable {
        return Ok(Err(see_other(&format!("/appointments/{id}"))));
    }
    let deadline = payment
        .as_ref()
        .and_then(|payment| payment.card_deadline)
        .map(|at| state.clinic.time(&at))
        .unwrap_or_default();
    let saving = payment
        .as_ref()
        .filter(|_| deadline.is_empty())
        .and_then(|payment| payment.authorize_at)
        .map(|at| state.clinic.time(&at))
        .unwrap_or_default();
    let doctor: Option<Doctor> = state
        .gateway
        .get_as(session, &format!("/api/doctors/{}", appointment.doctor_id))
        .await
        .ok();
    Ok(Ok(PayPage {
        l: Layout::new(session, "Pay for your appointment", "/appointments"),
        appointment_id: appointment.id.clone(),
        doctor: doctor.map(|doctor| doctor.name()).unwrap_or_default(),
        when: state.clinic.time(&appointment.starts_at),
        amount: money(appointment.fee.amount, &appointment.fee.currency),
        hold_until: appointment
            .hold_expires_at
            .map(|at| state.clinic.clock(&at))
            .unwrap_or_default(),
        test_mode: payment.is_some_and(|payment| payment.provider == "simulated"),
        saving,
        deadline,
        f,
    }))
}

async fn pay_page(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
) -> PageResult {
    let f = FormState::default().with("idempotency_key", uuid::Uuid::new_v4().to_string());
    Ok(match pay_form(&state, &session, &id, f).await? {
        Ok(page) => render(&page),
        Err(elsewhere) => elsewhere,
    })
}

async fn pay(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let page = match pay_form(&state, &session, &id, FormState::default()).await? {
        Ok(page) => page,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let card = check_card(&mut f);
    if let (Some(card), false) = (card, f.has_errors()) {
        let payment_id = state
            .gateway
            .get::<Appointment>(&session, &format!("/api/appointments/{id}"))
            .await
            .map_err(|failure| WebError::from_api(failure, "/appointments"))?
            .payment_id
            .unwrap_or_default();
        let key = f
            .opt("idempotency_key")
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        match state
            .gateway
            .post_once(
                &session,
                &format!("/api/payments/{payment_id}/confirm"),
                &json!({ "payment_method": card }),
                &key,
            )
            .await
        {
            Ok(paid) => {
                let message = match paid["status"].as_str() {
                    Some("card_saved") => format!(
                        "Card saved. It is authorised on {}, two days before the visit; the clinic confirms your appointment meanwhile.",
                        page.saving
                    ),
                    Some("succeeded") => "Payment taken: your appointment is confirmed.".to_owned(),
                    _ => "Payment authorised. The clinic will confirm your appointment; the card is charged then.".to_owned(),
                };
                session.set_flash("ok", message);
                return Ok(see_other(&format!("/appointments/{id}")));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "card_declined" => {
                    f.error("card_number", "The card was declined. Try another card.")
                }
                "provider_refused" => f.error("card_number", "This card cannot be used here."),
                "not_in_test_mode" => {
                    f.general = Some(
                        "Card payments are taken by Stripe's payment form in this clinic."
                            .to_owned(),
                    )
                }
                _ => f.general = Some(problem.detail.clone()),
            },
            Err(other) => return Err(WebError::from_api(other, "/appointments")),
        }
    }
    for name in ["card_number", "cvc"] {
        f.forget(name);
    }
    // A failed attempt gets a new key: the next try is a new attempt.
    let f = f.with("idempotency_key", uuid::Uuid::new_v4().to_string());
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &PayPage { f, ..page },
    ))
}

/// Checks the card form the way a card form does (number by Luhn, expiry in the future,
/// CVC length) and returns the digits for the provider.
fn check_card(f: &mut FormState) -> Option<String> {
    let digits: String = f
        .v("card_number")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    f.required("card_name");
    let mut card = None;
    if digits.is_empty() {
        f.error("card_number", "Enter the card number.");
    } else if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        f.error("card_number", "A card number has 12 to 19 digits.");
    } else if !luhn(&digits) {
        f.error(
            "card_number",
            "This card number is not valid; check for a typo.",
        );
    } else {
        card = Some(digits);
    }
    match parse_expiry(f.v("expiry")) {
        None => f.error("expiry", "Enter the expiry date as MM/YY."),
        Some((year, month)) => {
            let today = chrono::Utc::now().date_naive();
            if (year, month) < (today.year(), today.month()) {
                f.error("expiry", "This card has expired.");
            }
        }
    }
    let cvc = f.v("cvc");
    if !(3..=4).contains(&cvc.len()) || !cvc.chars().all(|c| c.is_ascii_digit()) {
        f.error("cvc", "The security code is the 3 or 4 digits on the card.");
    }
    card
}

fn parse_expiry(text: &str) -> Option<(i32, u32)> {
    let (month, year) = text.split_once('/')?;
    let month: u32 = month.trim().parse().ok()?;
    let year: i32 = year.trim().parse().ok()?;
    let year = if year < 100 { 2000 + year } else { year };
    (1..=12).contains(&month).then_some((year, month))
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(index, digit)| {
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

pub struct InboxView {
    id: String,
    subject: String,
    body: String,
    at: String,
    unread: bool,
    /// How the email copy fared.
    delivery: &'static str,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    l: Layout,
    items: Vec<InboxView>,
    unread: i64,
}

#[derive(Template)]
#[template(path = "notification_item.html")]
struct NotificationItem {
    l: Layout,
    item: InboxView,
}

fn inbox_view(state: &WebState, item: &InboxItem) -> InboxView {
    InboxView {
        id: item.id.clone(),
        subject: item.subject.clone(),
        body: item.body_text.clone(),
        at: state.clinic.time(&item.created_at),
        unread: item.read_at.is_none(),
        delivery: match item.status.as_str() {
            "SENT" => "Emailed to you",
            "FAILED" => "The email could not be delivered",
            _ => "Email on its way",
        },
    }
}

async fn notifications(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Everyone>,
) -> PageResult {
    let inbox: Inbox = state
        .gateway
        .get(&session, "/api/notifications/me?limit=50")
        .await
        .map_err(|failure| WebError::from_api(failure, "/notifications"))?;
    Ok(render(&NotificationsPage {
        l: Layout::new(&session, "Notifications", "/notifications"),
        items: inbox
            .items
            .iter()
            .map(|item| inbox_view(&state, item))
            .collect(),
        unread: inbox.unread_count,
    }))
}

async fn mark_read(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Everyone>,
    Id(id): Id,
    headers: HeaderMap,
) -> PageResult {
    let value = state
        .gateway
        .post(
            &session,
            &format!("/api/notifications/{id}/read"),
            &json!({}),
        )
        .await
        .map_err(|failure| WebError::from_api(failure, "/notifications"))?;
    if from_htmx(&headers) {
        let item: InboxItem = serde_json::from_value(value)
            .map_err(|error| WebError::Unavailable(error.to_string()))?;
        return Ok(render(&NotificationItem {
            l: Layout::new(&session, "Notifications", "/notifications"),
            item: inbox_view(&state, &item),
        }));
    }
    Ok(see_other("/notifications"))
}

struct AccessView {
    at: String,
    who: String,
    action: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    l: Layout,
    entries: Vec<EntryView>,
    declared_allergies: Vec<String>,
    blood_type: Option<String>,
    prescriptions: Vec<PrescriptionView>,
    access: Vec<AccessView>,
}

async fn record(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Patients>,
) -> PageResult {
    let record: Record = state
        .gateway
        .get(&session, &format!("/api/records/{}", user.id))
        .await
        .map_err(|failure| WebError::from_api(failure, "/record"))?;
    let access: Vec<AccessLogRow> = state
        .gateway
        .get(&session, &format!("/api/records/{}/access-log", user.id))
        .await
        .map_err(|failure| WebError::from_api(failure, "/record"))?;
    let doctors: Vec<Doctor> = state
        .gateway
        .get_as(&session, "/api/doctors")
        .await
        .unwrap_or_default();
    let doctor_name = |id: &str| {
        doctors
            .iter()
            .find(|doctor| doctor.id == id)
            .map(Doctor::name)
            .unwrap_or_else(|| "a doctor".to_owned())
    };
    Ok(render(&RecordPage {
        l: Layout::new(&session, "My record", "/record"),
        entries: record
            .entries
            .iter()
            .map(|entry| EntryView::new(&state, entry))
            .collect(),
        declared_allergies: record.declared.substances(),
        blood_type: record.declared.blood_type.clone(),
        prescriptions: record
            .prescriptions
            .iter()
            .map(|prescription| {
                PrescriptionView::new(prescription, doctor_name(&prescription.doctor_id))
            })
            .collect(),
        access: access
            .iter()
            .take(100)
            .map(|row| AccessView {
                at: state.clinic.time(&row.at),
                who: if row.actor_id == user.id {
                    "You".to_owned()
                } else {
                    match row.actor_role.as_str() {
                        "DOCTOR" => doctor_name(&row.actor_id),
                        role => role.to_lowercase(),
                    }
                },
                action: row.action.replace(['.', '_'], " "),
                outcome: row.outcome.clone(),
            })
            .collect(),
    }))
}

async fn request_refill(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
) -> PageResult {
    match state
        .gateway
        .post(
            &session,
            &format!("/api/prescriptions/{id}/refills"),
            &json!({}),
        )
        .await
    {
        Ok(_) => session.set_flash("ok", "Refill requested. Your doctor will decide."),
        Err(ApiFailure::Rejected(problem)) if problem.status == StatusCode::CONFLICT => session
            .set_flash(
                "error",
                match problem.code.as_str() {
                    "refill_pending" => {
                        "A refill request for this prescription is already waiting."
                    }
                    _ => "This prescription cannot be refilled.",
                },
            ),
        Err(other) => return Err(WebError::from_api(other, "/record")),
    }
    Ok(see_other("/record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_checked_by_luhn() {
        assert!(luhn("4242424242424242"));
        assert!(luhn("4000000000000002"));
        assert!(!luhn("4242424242424241"));
    }

    #[test]
    fn expiry_dates_read_as_month_and_year() {
        assert_eq!(parse_expiry("12/34"), Some((2034, 12)));
        assert_eq!(parse_expiry("13/34"), None);
        assert_eq!(parse_expiry("1234"), None);
    }
}
