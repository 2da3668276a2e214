//! `/api/payments`: one payment per appointment, its confirmation in test mode, capture,
//! void and refund.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use polyclinic_auth::rules::{Admin, AdminOr, Person};
use polyclinic_auth::scopes::{PaymentsCapture, PaymentsCreate, PaymentsRefund, PaymentsVoid};
use polyclinic_auth::{Asking, Principal, Require, Role, RoleRule, Scope};
use polyclinic_contracts::Money;
use polyclinic_db::idempotency::Idempotent;
use polyclinic_events::EventContext;
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, Page, ProblemDetails, RequestId, page_limit};
use polyclinic_telemetry::TraceContext;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use polyclinic_contracts::appointments::AppointmentStatus;

use crate::AppState;
use crate::domain::intent::PaymentStatus;
use crate::ledger::LedgerError;
use crate::provider::ProviderError;
use crate::repo::payments::{self as repo, PaymentRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_payment, list_payments))
        .routes(routes!(my_payments))
        .routes(routes!(get_payment))
        .routes(routes!(confirm_payment))
        .routes(routes!(capture_payment))
        .routes(routes!(cancel_payment))
        .routes(routes!(refund_payment))
}

impl From<LedgerError> for ApiError {
    fn from(err: LedgerError) -> Self {
        let detail = err.to_string();
        match err {
            LedgerError::NotFound => ApiError::not_found("payment_not_found", detail),
            LedgerError::WrongState(_) => ApiError::conflict("payment_state", detail),
            LedgerError::BadAmount { .. } => ApiError::conflict("invalid_amount", detail),
            LedgerError::Declined(_) => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "card_declined", detail)
            }
            LedgerError::Provider(ProviderError::Refused(_)) => {
                ApiError::unprocessable("provider_refused", detail)
            }
            LedgerError::Provider(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                detail,
            ),
            LedgerError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

/// The event context of what `caller`'s request causes.
fn events<R: RoleRule>(caller: &Asking<R>) -> EventContext {
    EventContext {
        correlation_id: Some(caller.request_id().as_str().to_owned()),
        trace: caller.trace().clone(),
    }
}

/// A payment, as answered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub amount: i64,
    pub currency: String,
    /// `requires_payment_method`, `card_saved` (a visit booked far ahead: its card is
    /// authorised at `authorize_at`), `requires_capture`, `succeeded` or `canceled`.
    pub status: String,
    pub provider: String,
    /// For the patient's client to confirm the payment with the provider.
    pub client_secret: Option<String>,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub authorized_at: Option<DateTime<Utc>>,
    /// When a saved card is to be authorised (a visit booked far ahead).
    pub authorize_at: Option<DateTime<Utc>>,
    /// When the clinic asked for the capture of a card not authorised yet: it follows the
    /// authorisation.
    pub capture_requested_at: Option<DateTime<Utc>>,
    /// After a refused authorisation: by when another card must be given, or the visit is
    /// cancelled.
    pub card_deadline: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PaymentRow> for Payment {
    fn from(row: PaymentRow) -> Self {
        Self {
            id: row.id.into(),
            appointment_id: row.appointment_id.into(),
            patient_id: row.patient_id.into(),
            amount: row.amount,
            currency: row.currency,
            status: row.status.as_str().to_owned(),
            provider: row.provider,
            client_secret: row.client_secret,
            amount_captured: row.amount_captured,
            amount_refunded: row.amount_refunded,
            authorized_at: row.authorized_at,
            authorize_at: row.authorize_at,
            capture_requested_at: row.capture_requested_at,
            card_deadline: row.card_deadline,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Who may ask for a payment: patients (their own booking's), admins, and platform services
/// granted `payments:create`.
pub struct Payers;

impl RoleRule for Payers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Patient, Role::Service];
    const SERVICE_SCOPE: Option<&'static str> = Some(PaymentsCreate::NAME);
}

/// Whether `caller` may see `payment`: admins all, a patient their own. (No service reads
/// payments: each acts on the ones it moves, through the scoped routes.)
fn may_see(caller: &Principal, payment: &PaymentRow) -> bool {
    caller.is(Role::Admin) || caller.user_id().is_ok_and(|id| payment.patient_id == id)
}

/// The price a trusted caller states: a [`Money`] of at least one minor unit (a card is
/// never authorised for nothing).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Minor units, at least 1.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// ISO 4217, upper case: `EUR`.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

impl From<Price> for Money {
    fn from(price: Price) -> Self {
        Money {
            amount: price.amount,
            currency: price.currency,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    pub appointment_id: Uuid,
    /// Admins and platform services may state the patient or the amount (or both); what
    /// they leave out is the appointment's, asked of the appointments service with the
    /// caller's token. Anyone else states neither (403 `price_set_by_appointment`).
    pub patient_id: Option<Uuid>,
    pub amount: Option<Price>,
}

/// What the appointments service says about an appointment being paid for.
#[derive(Debug, Deserialize)]
struct BookedAppointment {
    patient_id: Uuid,
    status: AppointmentStatus,
    fee: Money,
    starts_at: DateTime<Utc>,
}

/// The patient and price of the payment `request` asks for, and when the visit starts:
/// stated by a trusted caller (then the card is authorised at once), or the appointment's
/// own, which the caller must be able to see.
async fn priced(
    state: &AppState,
    caller: &Asking<Payers>,
    request: CreatePayment,
) -> Result<(Uuid, Money, Option<DateTime<Utc>>), ApiError> {
    let trusted = caller.is(Role::Admin) || caller.is_service_with(PaymentsCreate::NAME);
    let stated = (request.patient_id, request.amount);
    match stated {
        (Some(patient_id), Some(amount)) if trusted => {
            return Ok((patient_id, amount.into(), None));
        }
        (None, None) => {}
        // A trusted caller states what it overrides; the appointment says the rest.
        _ if trusted => {}
        _ => {
            return Err(ApiError::forbidden(
                "price_set_by_appointment",
                "patient_id and amount: the appointment sets them",
            ));
        }
    }
    let url = format!(
        "{}/api/appointments/{}",
        state.appointments_url, request.appointment_id
    );
    let appointment: BookedAppointment = match state.client.get_json(&url, caller.call()).await {
        Ok(appointment) => appointment,
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {
            return Err(ApiError::not_found(
                "unknown_appointment",
                "appointment_id: no such appointment of yours",
            ));
        }
        Err(err) => {
            tracing::warn!(error = %err, "the appointments service could not be asked");
            return Err(ApiError::dependency_unavailable(
                "The appointments service is unavailable; please try again.",
            ));
        }
    };
    // A reservation, or a waitlist's offer being claimed (its payment is made first).
    if !matches!(
        appointment.status,
        AppointmentStatus::Pending | AppointmentStatus::Offered
    ) {
        return Err(ApiError::conflict(
            "appointment_state",
            format!(
                "the appointment is {}; only a pending one (or an offer being claimed) is paid for",
                appointment.status
            ),
        ));
    }
    Ok((
        appointment.patient_id,
        appointment.fee,
        Some(appointment.starts_at),
    ))
}

/// Creates the payment of an appointment (the appointments service does this at booking,
/// with the booking caller's token; asking again for the same appointment returns the same
/// payment). A visit further ahead than `payments.authorize_ahead_days` gets a card setup
/// (`client_secret` of a SetupIntent): the card is saved now and authorised off-session
/// `payments.authorize_lead_hours` before the visit.
#[utoipa::path(post, path = "/api/payments", tag = "payments", request_body = CreatePayment,
    security(("bearer" = [])),
    responses((status = 201, body = Payment), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn create_payment(
    State(state): State<AppState>,
    caller: Asking<Payers>,
    request: Idempotent,
) -> Response {
    request
        .run(&caller.subject, || async {
            let request: CreatePayment = request.json()?;
            let appointment_id = request.appointment_id;
            let (patient_id, amount, starts_at) = priced(&state, &caller, request).await?;
            let currency = amount.currency.as_str();
            if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(ApiError::unprocessable(
                    "validation_failed",
                    "amount.currency: an ISO 4217 code such as EUR",
                ));
            }
            let payment = state
                .ledger
                .create(
                    appointment_id.into(),
                    patient_id.into(),
                    (amount.amount, currency),
                    starts_at,
                    &caller.subject,
                )
                .await?;
            Ok((StatusCode::CREATED, Payment::from(payment)))
        })
        .await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    pub status: Option<String>,
    pub appointment_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<Uuid>,
}

/// All payments, with filters (admin).
#[utoipa::path(get, path = "/api/payments", tag = "payments", params(PaymentQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Payment>)))]
async fn list_payments(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Query(query): Query<PaymentQuery>,
) -> Result<Json<Page<Payment>>, ApiError> {
    let limit = page_limit(query.limit, 50, 100)?;
    let payments = match query.status.as_deref().map(PaymentStatus::parse) {
        // No payment is in a status that does not exist.
        Some(None) => Vec::new(),
        status => {
            let filter = repo::Filter {
                status: status.flatten(),
                appointment_id: query.appointment_id.map(Into::into),
                patient_id: query.patient_id.map(Into::into),
                before: query.cursor.map(Into::into),
            };
            repo::list(&state.pool, filter, limit + 1).await?
        }
    };
    Ok(Json(Page::from_overfetch(
        payments.into_iter().map(Payment::from).collect(),
        limit,
        |payment| payment.id.to_string(),
    )))
}

/// The caller's own payments, newest first.
#[utoipa::path(get, path = "/api/payments/mine", tag = "payments", security(("bearer" = [])),
    responses((status = 200, body = Page<Payment>)))]
async fn my_payments(
    State(state): State<AppState>,
    caller: Require<Person>,
) -> Result<Json<Page<Payment>>, ApiError> {
    let filter = repo::Filter {
        patient_id: Some(caller.user_id()?.into()),
        ..repo::Filter::default()
    };
    let payments = repo::list(&state.pool, filter, 101).await?;
    Ok(Json(Page::from_overfetch(
        payments.into_iter().map(Payment::from).collect(),
        100,
        |payment| payment.id.to_string(),
    )))
}

/// One payment: its patient, admins and platform services; anyone else gets 404.
#[utoipa::path(get, path = "/api/payments/{id}", tag = "payments", security(("bearer" = [])),
    responses((status = 200, body = Payment), (status = 404, body = ProblemDetails)))]
async fn get_payment(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Payment>, ApiError> {
    let payment = state.ledger.find(id.into()).await?;
    if !may_see(&caller, &payment) {
        return Err(LedgerError::NotFound.into());
    }
    Ok(Json(payment.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// A test payment method: `pm_card_visa`, `pm_card_chargeDeclined`,
    /// `pm_card_authenticationRequired` (asks for authentication off-session),
    /// `pm_card_chargeCustomerFail` (saved, then declined when charged).
    pub payment_method: String,
}

/// Confirms with a test card, server-side (test mode only; in production the patient's
/// client confirms with the provider using the `client_secret`): saves the card of a visit
/// booked far ahead, or authorises it (also another card after a refused authorisation).
#[utoipa::path(post, path = "/api/payments/{id}/confirm", tag = "payments", request_body = Confirm,
    security(("bearer" = [])),
    responses((status = 200, body = Payment), (status = 402, body = ProblemDetails), (status = 404, body = ProblemDetails)))]
async fn confirm_payment(
    State(state): State<AppState>,
    caller: Principal,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    request: Idempotent,
) -> Response {
    request
        .run(&caller.subject, || async {
            if !state.test_mode {
                return Err(ApiError::not_found(
                    "not_in_test_mode",
                    "Server-side confirmation exists in test mode only.",
                ));
            }
            let request: Confirm = request.json()?;
            let payment = state.ledger.find(id.into()).await?;
            let own = caller
                .user_id()
                .is_ok_and(|user| payment.patient_id == user);
            if !own && !caller.is(Role::Admin) {
                return Err(LedgerError::NotFound.into());
            }
            let confirmed = state
                .ledger
                .confirm(
                    id.into(),
                    &request.payment_method,
                    &caller.subject,
                    &EventContext {
                        correlation_id: Some(request_id.as_str().to_owned()),
                        trace: TraceContext::from_headers(&headers),
                    },
                )
                .await?;
            Ok((StatusCode::OK, Payment::from(confirmed)))
        })
        .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Minor units, at least 1 (at most what is left); all of it when absent.
    #[schema(minimum = 1)]
    pub amount: Option<i64>,
}

/// Captures the authorisation, all of it or `amount` (admins, and the appointments service
/// at approval). A card not authorised yet (saved for a visit far ahead, or waiting for
/// another after a refusal) records the request: the whole amount is captured once it is
/// authorised.
#[utoipa::path(post, path = "/api/payments/{id}/capture", tag = "payments", request_body = AmountRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Payment), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn capture_payment(
    State(state): State<AppState>,
    caller: Asking<AdminOr<PaymentsCapture>>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&caller.subject, || async {
            let request: AmountRequest = request.json_or_default()?;
            let payment = state
                .ledger
                .capture(id.into(), request.amount, &caller.subject, &events(&caller))
                .await?;
            Ok((StatusCode::OK, Payment::from(payment)))
        })
        .await
}

/// Voids the payment before capture.
#[utoipa::path(post, path = "/api/payments/{id}/cancel", tag = "payments", security(("bearer" = [])),
    responses((status = 200, body = Payment), (status = 409, body = ProblemDetails)))]
async fn cancel_payment(
    State(state): State<AppState>,
    caller: Asking<AdminOr<PaymentsVoid>>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&caller.subject, || async {
            let payment = state
                .ledger
                .void(id.into(), &caller.subject, &events(&caller))
                .await?;
            Ok((StatusCode::OK, Payment::from(payment)))
        })
        .await
}

/// Refunds a captured payment, all that is left or `amount`.
#[utoipa::path(post, path = "/api/payments/{id}/refund", tag = "payments", request_body = AmountRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Payment), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn refund_payment(
    State(state): State<AppState>,
    caller: Asking<AdminOr<PaymentsRefund>>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&caller.subject, || async {
            let request: AmountRequest = request.json_or_default()?;
            let payment = state
                .ledger
                .refund(id.into(), request.amount, &caller.subject, &events(&caller))
                .await?;
            Ok((StatusCode::OK, Payment::from(payment)))
        })
        .await
}
