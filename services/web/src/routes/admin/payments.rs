//! Every payment, filtered by status; capture and refund.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::json;

use super::super::{FormState, Id, Page, form_key, query, short};
use super::{minor_units, outcome};
use crate::WebState;
use crate::guard::{Signed, audience::Admins};
use crate::model::Payment;
use crate::page::{Layout, PageResult, WebError, render, see_other};
use crate::session::Session;
use crate::view::money;

#[derive(Deserialize, Default)]
pub(super) struct PaymentFilter {
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

pub(super) async fn payments(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Query(filter): Query<PaymentFilter>,
) -> PageResult {
    let here = "/admin/payments";
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

async fn money_action(
    state: &WebState,
    session: &Session,
    id: &str,
    action: &str,
    pairs: Vec<(String, String)>,
    done: &str,
) -> PageResult {
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

pub(super) async fn capture(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    money_action(&state, &session, &id, "capture", pairs, "Captured.").await
}

pub(super) async fn refund(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    money_action(&state, &session, &id, "refund", pairs, "Refunded.").await
}
