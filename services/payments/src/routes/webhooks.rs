//! `POST /api/payments/webhooks/stripe`: Stripe tells us what happened to a PaymentIntent
//! or a SetupIntent (a card saved for a visit booked far ahead).
//!
//! The signature is checked on the raw bytes before anything is parsed; each event id is
//! handled once; the payment is then brought in line with what the provider reports now
//! (never moved backwards), so events arriving late or out of order cannot undo a later state.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use polyclinic_events::EventContext;
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails, RequestId};
use serde_json::Value;

use crate::AppState;
use crate::domain::webhook;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

/// Receives Stripe's events (signed with `Stripe-Signature`).
#[utoipa::path(post, path = "/api/payments/webhooks/stripe", tag = "payments",
    responses((status = 200, description = "Handled, or already handled"), (status = 400, body = ProblemDetails)))]
async fn stripe_webhook(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if state.webhook_secrets.is_empty() {
        return Err(ApiError::not_found(
            "webhooks_not_configured",
            "No webhook secret is configured.",
        ));
    }
    webhook::verify(signature, &body, &state.webhook_secrets, Utc::now())
        .map_err(|err| ApiError::bad_request("invalid_signature", err.to_string()))?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad_request("malformed_json", err.to_string()))?;
    let (Some(event_id), Some(event_type)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(ApiError::bad_request(
            "invalid_event",
            "An event needs an id and a type.",
        ));
    };
    let object = &event["data"]["object"];
    let intent_id = match event_type {
        "charge.refunded" => object["payment_intent"].as_str(),
        _ => object["id"].as_str(),
    };
    let payment = match intent_id {
        Some(intent_id) => crate::repo::payments::find_by_intent(&state.pool, intent_id).await?,
        None => None,
    };
    let first_time = crate::repo::webhooks::record(
        &state.pool,
        event_id,
        event_type,
        payment.as_ref().map(|p| p.id.into()),
    )
    .await?;
    if !first_time {
        return Ok(StatusCode::OK);
    }
    let Some(payment) = payment else {
        // Not one of ours (another integration on the same account): acknowledged.
        return Ok(StatusCode::OK);
    };
    let context = EventContext {
        correlation_id: Some(request_id.as_str().to_owned()),
        trace: Default::default(),
    };
    let handled = match event_type {
        "payment_intent.amount_capturable_updated"
        | "payment_intent.succeeded"
        | "payment_intent.canceled"
        | "setup_intent.succeeded" => state
            .ledger
            .sync(payment.id, "stripe-webhook", &context)
            .await
            .map(|_| ()),
        "payment_intent.payment_failed" | "setup_intent.setup_failed" => {
            let reason = object["last_payment_error"]["message"]
                .as_str()
                .or_else(|| object["last_setup_error"]["message"].as_str())
                .unwrap_or("payment failed");
            state
                .ledger
                .record_failure(payment.id, reason, "stripe-webhook", &context)
                .await
        }
        "charge.refunded" => {
            let total = object["amount_refunded"].as_i64().unwrap_or(0);
            state
                .ledger
                .record_refund_total(payment.id, total, "stripe-webhook", &context)
                .await
                .map(|_| ())
        }
        _ => Ok(()),
    };
    if let Err(err) = handled {
        // Let Stripe deliver it again later.
        crate::repo::webhooks::forget(&state.pool, event_id).await?;
        return Err(err.into());
    }
    Ok(StatusCode::OK)
}
