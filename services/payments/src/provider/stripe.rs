//! A lean client of the Stripe REST API: PaymentIntents with manual capture, and refunds.
//!
//! Chosen over `async-stripe` for compile cost and fit: six form-encoded calls do not justify
//! a crate generated from Stripe's whole API. Every POST carries an `Idempotency-Key`; 429s,
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
}

/// Why Stripe refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// The card was declined (HTTP 402, `card_error`).
    #[error("card declined: {message}")]
    Card {
        code: Option<String>,
        decline_code: Option<String>,
        message: String,
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

    /// Creates a PaymentIntent that only authorises (`capture_method=manual`).
    pub async fn create_intent(
        &self,
        amount: i64,
        currency: &str,
        metadata: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let mut form = vec![
            ("amount".to_owned(), amount.to_string()),
            ("currency".to_owned(), currency.to_lowercase()),
            ("capture_method".to_owned(), "manual".to_owned()),
            ("payment_method_types[]".to_owned(), "card".to_owned()),
        ];
        form.extend(
            metadata
                .iter()
                .map(|(name, value)| (format!("metadata[{name}]"), (*value).to_owned())),
        );
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
        },
        (status, error) => StripeError::InvalidRequest {
            status,
            code: error.and_then(|error| error.code),
            message,
        },
    }
}
