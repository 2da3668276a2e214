//! The production Stripe client against an in-test server that answers as Stripe's API does:
//! form-encoded requests, `Idempotency-Key`, PaymentIntent objects and statuses, error
//! objects, and a 429 when asked to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use polyclinic_payments::provider::stripe::{StripeClient, StripeError};
use polyclinic_payments::provider::{OffSessionError, Provider, ProviderStatus, Refusal};
use serde_json::{Value, json};

pub const KEY: &str = "sk_test_polyclinic";

#[derive(Default)]
pub struct Stripe {
    intents: Mutex<HashMap<String, Value>>,
    setups: Mutex<HashMap<String, Value>>,
    customers: AtomicUsize,
    refunded: Mutex<HashMap<String, i64>>,
    /// Idempotency-Key -> (request, answer status, answer body).
    replies: Mutex<HashMap<String, (String, u16, Value)>>,
    /// Answer this many requests with 429 first.
    throttle: AtomicUsize,
    created: AtomicUsize,
}

pub type Shared = Arc<Stripe>;

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

fn unexpected_state(intent: &Value) -> (StatusCode, Value) {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "payment_intent_unexpected_state",
        &format!(
            "This PaymentIntent's status is {}.",
            intent["status"].as_str().unwrap_or("")
        ),
    )
}

/// Runs `apply` once per Idempotency-Key: a repeat with the same request gets the stored
/// answer; with another request, an idempotency error.
fn idempotent(
    stripe: &Stripe,
    headers: &HeaderMap,
    request: String,
    apply: impl FnOnce() -> (StatusCode, Value),
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}"))
    {
        let (status, body) = error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided",
        );
        return (status, Json(body)).into_response();
    }
    if stripe.throttle.load(Ordering::SeqCst) > 0 {
        stripe.throttle.fetch_sub(1, Ordering::SeqCst);
        let (status, body) = error(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request_error",
            "rate_limit",
            "Too many requests",
        );
        return (status, Json(body)).into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key
        && let Some((seen, status, body)) = stripe.replies.lock().unwrap().get(key).cloned()
    {
        if seen != request {
            let (status, body) = error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "idempotency_key_in_use",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
            return (status, Json(body)).into_response();
        }
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let (status, body) = apply();
    if let Some(key) = key {
        stripe
            .replies
            .lock()
            .unwrap()
            .insert(key, (request, status.as_u16(), body.clone()));
    }
    (status, Json(body)).into_response()
}

fn form_map(form: &[(String, String)]) -> HashMap<String, String> {
    form.iter().cloned().collect()
}

async fn create(
    State(stripe): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let request = format!("create {form:?}");
    idempotent(&stripe.clone(), &headers, request, || {
        let fields = form_map(&form);
        let Some(amount) = fields
            .get("amount")
            .and_then(|amount| amount.parse::<i64>().ok())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "parameter_missing",
                "Missing required param: amount.",
            );
        };
        if fields.get("capture_method").map(String::as_str) != Some("manual") {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "parameter_invalid",
                "expected manual capture in these tests",
            );
        }
        let number = stripe.created.fetch_add(1, Ordering::SeqCst);
        let id = format!("pi_{number:024}");
        let metadata = metadata_of(&form);
        let mut intent = json!({
            "id": id, "object": "payment_intent", "status": "requires_payment_method",
            "amount": amount, "currency": fields.get("currency"), "amount_capturable": 0, "amount_received": 0,
            "capture_method": "manual", "client_secret": format!("{id}_secret_test"), "metadata": metadata,
            "customer": fields.get("customer"), "payment_method": null,
            "setup_future_usage": fields.get("setup_future_usage"),
        });
        // `confirm=true` with `off_session=true`: the saved card is charged without its
        // holder, as Stripe's test cards allow.
        let answer = if fields.get("confirm").map(String::as_str) == Some("true") {
            let method = fields.get("payment_method").cloned().unwrap_or_default();
            intent["payment_method"] = json!(method);
            let off_session = fields.get("off_session").map(String::as_str) == Some("true");
            match (method.as_str(), off_session) {
                ("pm_card_visa", _) => {
                    intent["status"] = json!("requires_capture");
                    intent["amount_capturable"] = json!(amount);
                    (StatusCode::OK, intent.clone())
                }
                ("pm_card_authenticationRequired", true) => (
                    StatusCode::PAYMENT_REQUIRED,
                    json!({"error": {"type": "card_error", "code": "authentication_required",
                        "decline_code": "authentication_required",
                        "message": "Your card was declined. This transaction requires authentication.",
                        "payment_intent": intent.clone()}}),
                ),
                _ => (
                    StatusCode::PAYMENT_REQUIRED,
                    json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                        "message": "Your card was declined.", "payment_intent": intent.clone()}}),
                ),
            }
        } else {
            (StatusCode::OK, intent.clone())
        };
        stripe.intents.lock().unwrap().insert(id, intent);
        answer
    })
}

fn metadata_of(form: &[(String, String)]) -> serde_json::Map<String, Value> {
    form.iter()
        .filter_map(|(name, value)| {
            name.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_owned(), json!(value)))
        })
        .collect()
}

async fn create_customer(
    State(stripe): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let request = format!("customer {form:?}");
    idempotent(&stripe.clone(), &headers, request, || {
        let number = stripe.customers.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::OK,
            json!({"id": format!("cus_{number:014}"), "object": "customer", "metadata": metadata_of(&form)}),
        )
    })
}

async fn create_setup(
    State(stripe): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let request = format!("setup {form:?}");
    idempotent(&stripe.clone(), &headers, request, || {
        let fields = form_map(&form);
        if fields.get("usage").map(String::as_str) != Some("off_session")
            || !fields.contains_key("customer")
        {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "parameter_invalid",
                "expected an off-session setup for a customer in these tests",
            );
        }
        let mut setups = stripe.setups.lock().unwrap();
        let id = format!("seti_{:024}", setups.len());
        let setup = json!({"id": id, "object": "setup_intent", "status": "requires_payment_method",
            "client_secret": format!("{id}_secret_test"), "customer": fields.get("customer"),
            "payment_method": null, "usage": "off_session", "metadata": metadata_of(&form)});
        setups.insert(id, setup.clone());
        (StatusCode::OK, setup)
    })
}

async fn retrieve_setup(State(stripe): State<Shared>, Path(id): Path<String>) -> Response {
    match stripe.setups.lock().unwrap().get(&id) {
        Some(setup) => Json(setup.clone()).into_response(),
        None => {
            let (status, body) = error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "No such setup_intent",
            );
            (status, Json(body)).into_response()
        }
    }
}

async fn act_on_setup(
    State(stripe): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let request = format!("setup {action} {id} {form:?}");
    idempotent(&stripe.clone(), &headers, request, || {
        let fields = form_map(&form);
        let mut setups = stripe.setups.lock().unwrap();
        let Some(setup) = setups.get_mut(&id) else {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "No such setup_intent",
            );
        };
        let open = setup["status"] == "requires_payment_method";
        match (action.as_str(), open) {
            ("confirm", true) => match fields.get("payment_method").map(String::as_str) {
                Some(
                    method @ ("pm_card_visa"
                    | "pm_card_authenticationRequired"
                    | "pm_card_chargeCustomerFail"),
                ) => {
                    setup["status"] = json!("succeeded");
                    setup["payment_method"] = json!(method);
                    (StatusCode::OK, setup.clone())
                }
                Some("pm_card_chargeDeclined") => (
                    StatusCode::PAYMENT_REQUIRED,
                    json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                        "message": "Your card was declined.", "setup_intent": setup.clone()}}),
                ),
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "resource_missing",
                    "No such PaymentMethod",
                ),
            },
            ("cancel", true) => {
                setup["status"] = json!("canceled");
                (StatusCode::OK, setup.clone())
            }
            _ => error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "setup_intent_unexpected_state",
                &format!(
                    "This SetupIntent's status is {}.",
                    setup["status"].as_str().unwrap_or("")
                ),
            ),
        }
    })
}

async fn retrieve(State(stripe): State<Shared>, Path(id): Path<String>) -> Response {
    match stripe.intents.lock().unwrap().get(&id) {
        Some(intent) => Json(intent.clone()).into_response(),
        None => {
            let (status, body) = error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "No such payment_intent",
            );
            (status, Json(body)).into_response()
        }
    }
}

async fn act(
    State(stripe): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let request = format!("{action} {id} {form:?}");
    idempotent(&stripe.clone(), &headers, request, || {
        let fields = form_map(&form);
        let mut intents = stripe.intents.lock().unwrap();
        let Some(intent) = intents.get_mut(&id) else {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "No such payment_intent",
            );
        };
        let status = intent["status"].as_str().unwrap_or("").to_owned();
        match (action.as_str(), status.as_str()) {
            ("confirm", "requires_payment_method") => {
                match fields.get("payment_method").map(String::as_str) {
                    Some(method @ ("pm_card_visa" | "pm_card_authenticationRequired")) => {
                        // On-session, the cardholder authenticates when asked.
                        intent["status"] = json!("requires_capture");
                        intent["amount_capturable"] = intent["amount"].clone();
                        intent["payment_method"] = json!(method);
                        (StatusCode::OK, intent.clone())
                    }
                    Some("pm_card_chargeDeclined") => (
                        StatusCode::PAYMENT_REQUIRED,
                        json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                        "message": "Your card was declined."}}),
                    ),
                    _ => error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "resource_missing",
                        "No such PaymentMethod",
                    ),
                }
            }
            ("capture", "requires_capture") => {
                let capturable = intent["amount_capturable"].as_i64().unwrap_or(0);
                let amount = fields
                    .get("amount_to_capture")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(capturable);
                if amount > capturable {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "amount_too_large",
                        "The amount to capture exceeds the amount capturable.",
                    );
                }
                intent["status"] = json!("succeeded");
                intent["amount_received"] = json!(amount);
                intent["amount_capturable"] = json!(0);
                (StatusCode::OK, intent.clone())
            }
            ("cancel", "requires_payment_method" | "requires_capture") => {
                intent["status"] = json!("canceled");
                intent["amount_capturable"] = json!(0);
                (StatusCode::OK, intent.clone())
            }
            _ => unexpected_state(intent),
        }
    })
}

async fn refund(
    State(stripe): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let request = format!("refund {form:?}");
    idempotent(&stripe.clone(), &headers, request, || {
        let fields = form_map(&form);
        let id = fields.get("payment_intent").cloned().unwrap_or_default();
        let intents = stripe.intents.lock().unwrap();
        let Some(intent) = intents.get(&id) else {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "No such payment_intent",
            );
        };
        if intent["status"] != "succeeded" {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "charge_not_captured",
                "This PaymentIntent has no captured charge.",
            );
        }
        let mut refunded = stripe.refunded.lock().unwrap();
        let already = refunded.get(&id).copied().unwrap_or(0);
        let left = intent["amount_received"].as_i64().unwrap_or(0) - already;
        let amount = fields
            .get("amount")
            .and_then(|a| a.parse().ok())
            .unwrap_or(left);
        if amount > left || amount <= 0 {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "amount_too_large",
                "Refund amount is greater than unrefunded amount.",
            );
        }
        refunded.insert(id.clone(), already + amount);
        (
            StatusCode::OK,
            json!({"id": format!("re_{}", already + amount), "object": "refund", "amount": amount, "status": "succeeded", "payment_intent": id}),
        )
    })
}

pub async fn fake_stripe() -> (SocketAddr, Shared) {
    let stripe = Shared::default();
    let app = Router::new()
        .route("/v1/payment_intents", post(create))
        .route("/v1/payment_intents/{id}", get(retrieve))
        .route("/v1/payment_intents/{id}/{action}", post(act))
        .route("/v1/refunds", post(refund))
        .route("/v1/customers", post(create_customer))
        .route("/v1/setup_intents", post(create_setup))
        .route("/v1/setup_intents/{id}", get(retrieve_setup))
        .route("/v1/setup_intents/{id}/{action}", post(act_on_setup))
        .with_state(stripe.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, stripe)
}

fn client(address: SocketAddr) -> StripeClient {
    StripeClient::new(&format!("http://{address}"), KEY).with_backoff(Duration::from_millis(5))
}

#[tokio::test]
async fn an_intent_is_authorised_captured_in_part_and_refunded() {
    let (address, _) = fake_stripe().await;
    let stripe = client(address);
    let intent = stripe
        .create_intent(
            6000,
            "EUR",
            None,
            &[("appointment_id", "ap-1")],
            "create-ap-1",
        )
        .await
        .unwrap();
    assert_eq!(intent.status, "requires_payment_method");
    assert_eq!(intent.currency, "eur");
    assert_eq!(intent.metadata["appointment_id"], "ap-1");
    assert!(
        intent
            .client_secret
            .as_deref()
            .unwrap()
            .starts_with(&intent.id)
    );

    let authorised = stripe
        .confirm_intent(&intent.id, "pm_card_visa", "confirm-ap-1")
        .await
        .unwrap();
    assert_eq!(
        (authorised.status.as_str(), authorised.amount_capturable),
        ("requires_capture", 6000)
    );
    let captured = stripe
        .capture_intent(&intent.id, Some(4500), "capture-ap-1")
        .await
        .unwrap();
    assert_eq!(
        (captured.status.as_str(), captured.amount_received),
        ("succeeded", 4500)
    );
    let refund = stripe
        .refund(&intent.id, None, "refund-ap-1")
        .await
        .unwrap();
    assert_eq!(refund.amount, 4500);
    assert_eq!(
        stripe.retrieve_intent(&intent.id).await.unwrap().status,
        "succeeded"
    );
}

#[tokio::test]
async fn a_retried_or_throttled_create_makes_one_intent() {
    let (address, fake) = fake_stripe().await;
    let stripe = client(address);
    fake.throttle.store(1, Ordering::SeqCst);
    let first = stripe
        .create_intent(6000, "EUR", None, &[], "create-ap-2")
        .await
        .unwrap();
    let again = stripe
        .create_intent(6000, "EUR", None, &[], "create-ap-2")
        .await
        .unwrap();
    assert_eq!(first.id, again.id, "the same key gets the same intent");
    assert_eq!(fake.created.load(Ordering::SeqCst), 1);

    fake.throttle.store(10, Ordering::SeqCst);
    let exhausted = stripe
        .create_intent(6000, "EUR", None, &[], "create-ap-3")
        .await
        .unwrap_err();
    assert!(
        matches!(exhausted, StripeError::Unavailable(_)),
        "{exhausted:?}"
    );
}

#[tokio::test]
async fn stripe_refusals_become_our_errors() {
    let (address, _) = fake_stripe().await;
    let stripe = client(address);
    let intent = stripe
        .create_intent(6000, "EUR", None, &[], "create-ap-4")
        .await
        .unwrap();
    match stripe
        .confirm_intent(&intent.id, "pm_card_chargeDeclined", "confirm-ap-4")
        .await
        .unwrap_err()
    {
        StripeError::Card {
            code, decline_code, ..
        } => {
            assert_eq!(code.as_deref(), Some("card_declined"));
            assert_eq!(decline_code.as_deref(), Some("generic_decline"));
        }
        other => panic!("{other:?}"),
    }
    match stripe
        .capture_intent(&intent.id, None, "capture-ap-4")
        .await
        .unwrap_err()
    {
        StripeError::InvalidRequest { status, code, .. } => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(code.as_deref(), Some("payment_intent_unexpected_state"));
        }
        other => panic!("{other:?}"),
    }
    let reused = stripe
        .create_intent(7000, "EUR", None, &[], "create-ap-4")
        .await
        .unwrap_err();
    assert!(
        matches!(reused, StripeError::InvalidRequest { .. }),
        "a key reused with other parameters"
    );

    let wrong_key = StripeClient::new(&format!("http://{address}"), "sk_test_wrong");
    assert!(matches!(
        wrong_key
            .create_intent(100, "EUR", None, &[], "k")
            .await
            .unwrap_err(),
        StripeError::Authentication
    ));
}

#[tokio::test]
async fn capturing_more_than_authorised_and_cancelling_after_capture_are_refused() {
    let (address, _) = fake_stripe().await;
    let stripe = client(address);
    let intent = stripe
        .create_intent(3000, "EUR", None, &[], "create-ap-5")
        .await
        .unwrap();
    stripe
        .confirm_intent(&intent.id, "pm_card_visa", "confirm-ap-5")
        .await
        .unwrap();
    let too_much = stripe
        .capture_intent(&intent.id, Some(3001), "capture-ap-5a")
        .await
        .unwrap_err();
    assert!(
        matches!(too_much, StripeError::InvalidRequest { ref code, .. } if code.as_deref() == Some("amount_too_large"))
    );
    stripe
        .capture_intent(&intent.id, None, "capture-ap-5b")
        .await
        .unwrap();
    let late = stripe
        .cancel_intent(&intent.id, "cancel-ap-5")
        .await
        .unwrap_err();
    assert!(matches!(late, StripeError::InvalidRequest { .. }));
}

#[tokio::test]
async fn a_card_saved_with_a_setup_intent_is_authorised_off_session_or_refused_with_an_intent_to_confirm()
 {
    let (address, _) = fake_stripe().await;
    let stripe = client(address);
    let customer = stripe
        .create_customer(&[("patient_id", "p-1")], "customer-p-1")
        .await
        .unwrap();
    assert!(customer.id.starts_with("cus_"));
    let again = stripe
        .create_customer(&[("patient_id", "p-1")], "customer-p-1")
        .await
        .unwrap();
    assert_eq!(again.id, customer.id, "one customer per key");

    let setup = stripe
        .create_setup_intent(&customer.id, &[("appointment_id", "ap-9")], "setup-ap-9")
        .await
        .unwrap();
    assert_eq!(setup.status, "requires_payment_method");
    assert_eq!(setup.customer.as_deref(), Some(customer.id.as_str()));
    assert!(
        setup
            .client_secret
            .as_deref()
            .unwrap()
            .starts_with(&setup.id)
    );
    let declined = stripe
        .confirm_setup_intent(&setup.id, "pm_card_chargeDeclined", "setup-confirm-1")
        .await
        .unwrap_err();
    assert!(
        matches!(&declined, StripeError::Card { code, .. } if code.as_deref() == Some("card_declined")),
        "{declined:?}"
    );
    let saved = stripe
        .confirm_setup_intent(&setup.id, "pm_card_visa", "setup-confirm-2")
        .await
        .unwrap();
    assert_eq!(saved.status, "succeeded");
    assert_eq!(saved.payment_method.as_deref(), Some("pm_card_visa"));
    assert_eq!(
        stripe
            .retrieve_setup_intent(&setup.id)
            .await
            .unwrap()
            .status,
        "succeeded"
    );

    // The saved card, charged without its holder: authorised, then captured.
    let authorised = stripe
        .authorize_off_session(
            6000,
            "EUR",
            &customer.id,
            "pm_card_visa",
            &[("appointment_id", "ap-9")],
            "auth-ap-9",
        )
        .await
        .unwrap();
    assert_eq!(
        (authorised.status.as_str(), authorised.amount_capturable),
        ("requires_capture", 6000)
    );
    assert_eq!(authorised.metadata["appointment_id"], "ap-9");
    let captured = stripe
        .capture_intent(&authorised.id, None, "capture-ap-9")
        .await
        .unwrap();
    assert_eq!(captured.amount_received, 6000);

    // Refusals carry the PaymentIntent, which the holder then confirms with them present.
    let provider = Provider::Stripe(client(address));
    let refused = provider
        .authorize_off_session(
            6000,
            "EUR",
            (&customer.id, "pm_card_authenticationRequired"),
            "ap-10",
            "auth-ap-10",
        )
        .await
        .unwrap_err();
    let OffSessionError::Refused {
        refusal,
        intent: Some(intent),
        ..
    } = refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(refusal, Refusal::AuthenticationRequired);
    assert_eq!(intent.status, ProviderStatus::RequiresPaymentMethod);
    let recovered = stripe
        .confirm_intent(&intent.id, "pm_card_visa", "confirm-ap-10")
        .await
        .unwrap();
    assert_eq!(recovered.status, "requires_capture");
    let declined = provider
        .authorize_off_session(
            6000,
            "EUR",
            (&customer.id, "pm_card_chargeCustomerFail"),
            "ap-11",
            "auth-ap-11",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            declined,
            OffSessionError::Refused {
                refusal: Refusal::Declined,
                intent: Some(_),
                ..
            }
        ),
        "an off-session decline: {declined:?}"
    );

    // A setup that saved nothing can be canceled, and then nothing is saved with it.
    let abandoned = stripe
        .create_setup_intent(&customer.id, &[], "setup-ap-12")
        .await
        .unwrap();
    let canceled = stripe
        .cancel_setup_intent(&abandoned.id, "cancel-setup-ap-12")
        .await
        .unwrap();
    assert_eq!(canceled.status, "canceled");
    assert!(matches!(
        stripe
            .confirm_setup_intent(&abandoned.id, "pm_card_visa", "setup-confirm-12")
            .await
            .unwrap_err(),
        StripeError::InvalidRequest { .. }
    ));
}
