//! A lean client of the Stripe REST API: PaymentIntents with manual capture, refunds,
//! Customers, SetupIntents that save a card for off-session use, and off-session
//! PaymentIntents that authorise a saved card.
//!
//! Chosen over `async-stripe` for compile cost and fit: a dozen form-encoded calls do not
//! justify a crate generated from Stripe's whole API. Every POST carries an `Idempotency-Key`; 429s,
//! 5xx answers and connection failures are retried with backoff and the same key, so a retry
//! never charges twice. Stripe's error objects become [`StripeError`]s.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

/// A PaymentIntent as Stripe returns it (the fields we use).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    /// `requires_payment_method`, `requires_confirmation`, `requires_action`, `processing`,
    /// `requires_capture`, `succeeded` or `canceled`.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub amount_capturable: i64,
    #[serde(default)]
    pub amount_received: i64,
    pub client_secret: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// The card it was confirmed with (an id; expanded objects are not asked for).
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A SetupIntent as Stripe returns it (the fields we use): saving a card for later.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SetupIntent {
    pub id: String,
    /// `requires_payment_method`, `requires_confirmation`, `requires_action`, `processing`,
    /// `succeeded` or `canceled`.
    pub status: String,
    pub client_secret: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// A Customer as Stripe returns it (its id is all we keep).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Customer {
    pub id: String,
}

/// A refund as Stripe returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub status: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Debug, Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: String,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    /// A card error on a PaymentIntent carries the intent as it was left.
    #[serde(default)]
    payment_intent: Option<PaymentIntent>,
}

/// Why Stripe refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// The card was declined, or wants its holder to authenticate (HTTP 402, `card_error`;
    /// `code` `card_declined`, `authentication_required`, ...).
    #[error("card declined: {message}")]
    Card {
        code: Option<String>,
        decline_code: Option<String>,
        message: String,
        /// The PaymentIntent the refusal left (off-session attempts), to be confirmed with
        /// the cardholder present.
        payment_intent: Option<Box<PaymentIntent>>,
    },
    /// The request was wrong for the object's state, or malformed (HTTP 400/404/409).
    #[error("Stripe refused the request ({status}): {message}")]
    InvalidRequest {
        status: StatusCode,
        code: Option<String>,
        message: String,
    },
    /// Our secret key was refused (HTTP 401/403).
    #[error("Stripe refused our API key")]
    Authentication,
    /// Still rate-limited or failing after every retry.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

/// The client.
#[derive(Debug, Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret_key: String,
    retries: u32,
    backoff: Duration,
}

impl StripeClient {
    /// A client for the API at `base` (`https://api.stripe.com` in production).
    pub fn new(base: &str, secret_key: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            retries: 3,
            backoff: Duration::from_millis(200),
        }
    }

    /// Shorter waits between retries (tests).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Creates a PaymentIntent that only authorises (`capture_method=manual`). With a
    /// `customer`, the card it is confirmed with is saved to them for off-session use
    /// (`setup_future_usage=off_session`), so a lapsing authorisation can be renewed.
    pub async fn create_intent(
        &self,
        amount: i64,
        currency: &str,
        customer: Option<&str>,
        metadata: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let mut form = manual_capture(amount, currency);
        if let Some(customer) = customer {
            form.push(("customer".to_owned(), customer.to_owned()));
            form.push(("setup_future_usage".to_owned(), "off_session".to_owned()));
        }
        form.extend(metadata_fields(metadata));
        self.call(
            Method::POST,
            "/v1/payment_intents",
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Creates a Customer, whose saved cards are charged off-session.
    pub async fn create_customer(
        &self,
        metadata: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<Customer, StripeError> {
        let form: Vec<(String, String)> = metadata_fields(metadata).collect();
        self.call(Method::POST, "/v1/customers", &form, Some(idempotency_key))
            .await
    }

    /// Creates a SetupIntent that saves a card to `customer` for off-session use.
    pub async fn create_setup_intent(
        &self,
        customer: &str,
        metadata: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<SetupIntent, StripeError> {
        let mut form = vec![
            ("customer".to_owned(), customer.to_owned()),
            ("usage".to_owned(), "off_session".to_owned()),
            ("payment_method_types[]".to_owned(), "card".to_owned()),
        ];
        form.extend(metadata_fields(metadata));
        self.call(
            Method::POST,
            "/v1/setup_intents",
            &form,
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_setup_intent(&self, id: &str) -> Result<SetupIntent, StripeError> {
        self.call(Method::GET, &format!("/v1/setup_intents/{id}"), &[], None)
            .await
    }

    /// Confirms a SetupIntent with a payment method server-side (test mode).
    pub async fn confirm_setup_intent(
        &self,
        id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<SetupIntent, StripeError> {
        let form = [("payment_method".to_owned(), payment_method.to_owned())];
        self.call(
            Method::POST,
            &format!("/v1/setup_intents/{id}/confirm"),
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Cancels a SetupIntent that has not saved a card yet.
    pub async fn cancel_setup_intent(
        &self,
        id: &str,
        idempotency_key: &str,
    ) -> Result<SetupIntent, StripeError> {
        self.call(
            Method::POST,
            &format!("/v1/setup_intents/{id}/cancel"),
            &[],
            Some(idempotency_key),
        )
        .await
    }

    /// Authorises `customer`'s saved `payment_method` without them (`off_session=true`,
    /// `confirm=true`, manual capture). A refusal is a [`StripeError::Card`] carrying the
    /// PaymentIntent, which the customer can confirm on-session with another card.
    pub async fn authorize_off_session(
        &self,
        amount: i64,
        currency: &str,
        customer: &str,
        payment_method: &str,
        metadata: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let mut form = manual_capture(amount, currency);
        form.extend([
            ("customer".to_owned(), customer.to_owned()),
            ("payment_method".to_owned(), payment_method.to_owned()),
            ("off_session".to_owned(), "true".to_owned()),
            ("confirm".to_owned(), "true".to_owned()),
        ]);
        form.extend(metadata_fields(metadata));
        self.call(
            Method::POST,
            "/v1/payment_intents",
            &form,
            Some(idempotency_key),
        )
        .await
    }

    pub async fn retrieve_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        self.call(Method::GET, &format!("/v1/payment_intents/{id}"), &[], None)
            .await
    }

    /// Confirms with a payment method server-side (test mode: `pm_card_visa`, ...).
    pub async fn confirm_intent(
        &self,
        id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let form = [("payment_method".to_owned(), payment_method.to_owned())];
        self.call(
            Method::POST,
            &format!("/v1/payment_intents/{id}/confirm"),
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Captures all of the authorisation, or `amount` of it.
    pub async fn capture_intent(
        &self,
        id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let form: Vec<(String, String)> = amount
            .map(|amount| ("amount_to_capture".to_owned(), amount.to_string()))
            .into_iter()
            .collect();
        self.call(
            Method::POST,
            &format!("/v1/payment_intents/{id}/capture"),
            &form,
            Some(idempotency_key),
        )
        .await
    }

    /// Voids an uncaptured PaymentIntent.
    pub async fn cancel_intent(
        &self,
        id: &str,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        self.call(
            Method::POST,
            &format!("/v1/payment_intents/{id}/cancel"),
            &[],
            Some(idempotency_key),
        )
        .await
    }

    /// Refunds all of a captured PaymentIntent, or `amount` of it.
    pub async fn refund(
        &self,
        payment_intent: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        let mut form = vec![("payment_intent".to_owned(), payment_intent.to_owned())];
        if let Some(amount) = amount {
            form.push(("amount".to_owned(), amount.to_string()));
        }
        self.call(Method::POST, "/v1/refunds", &form, Some(idempotency_key))
            .await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.secret_key);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if method == Method::POST {
                request = request.form(form);
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        return serde_json::from_value(body).map_err(|err| {
                            StripeError::Unavailable(format!("unreadable answer: {err}"))
                        });
                    }
                    let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retry {
                        return Err(refusal(status, body));
                    }
                    format!("{status}")
                }
                Err(err) => err.to_string(),
            };
            attempt += 1;
            if attempt > self.retries {
                return Err(StripeError::Unavailable(outcome));
            }
            tracing::debug!(%url, attempt, reason = %outcome, "retrying a Stripe call with the same idempotency key");
            tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
        }
    }
}

/// The fields of a card PaymentIntent that only authorises `amount`.
fn manual_capture(amount: i64, currency: &str) -> Vec<(String, String)> {
    vec![
        ("amount".to_owned(), amount.to_string()),
        ("currency".to_owned(), currency.to_lowercase()),
        ("capture_method".to_owned(), "manual".to_owned()),
        ("payment_method_types[]".to_owned(), "card".to_owned()),
    ]
}

/// `metadata[<name>]` form fields.
fn metadata_fields<'a>(
    metadata: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = (String, String)> + 'a {
    metadata
        .iter()
        .map(|(name, value)| (format!("metadata[{name}]"), (*value).to_owned()))
}

fn refusal(status: StatusCode, body: Value) -> StripeError {
    let error = serde_json::from_value::<ErrorBody>(body)
        .ok()
        .map(|body| body.error);
    let message = error
        .as_ref()
        .and_then(|error| error.message.clone())
        .unwrap_or_else(|| format!("HTTP {status}"));
    match (status, error) {
        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => StripeError::Authentication,
        (_, Some(error)) if error.kind == "card_error" => StripeError::Card {
            code: error.code,
            decline_code: error.decline_code,
            message,
            payment_intent: error.payment_intent.map(Box::new),
        },
        (status, error) => StripeError::InvalidRequest {
            status,
            code: error.and_then(|error| error.code),
            message,
        },
    }
}
