//! Failed emails (resend), dead-lettered events (replay) and the platform's status.

use askama::Template;
use axum::extract::State;
use serde_json::json;

use super::super::{Id, Page};
use super::outcome;
use crate::WebState;
use crate::guard::{Signed, audience::Admins};
use crate::model::{DeadLetters, Delivery, StatusReport};
use crate::page::{Layout, PageResult, WebError, render};

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

pub(super) async fn deliveries(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
) -> PageResult {
    let here = "/admin/deliveries";
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

pub(super) async fn resend(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
) -> PageResult {
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

pub(super) async fn replay(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
) -> PageResult {
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

pub(super) async fn status(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
) -> PageResult {
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
