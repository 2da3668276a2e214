//! Payment providers behind one interface, chosen by configuration: the Stripe REST API, or
//! the simulated provider that runs the same state machine in process (with Stripe's test
//! cards and the 7-day authorisation expiry) so the whole flow can be tried without a Stripe
//! account.

pub mod simulated;
pub mod stripe;

use serde::{Deserialize, Serialize};

use self::simulated::Simulated;
use self::stripe::{StripeClient, StripeError};
use crate::domain::intent::PaymentStatus;

/// A provider's payment intent, in our terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderIntent {
    pub id: String,
    pub status: ProviderStatus,
    pub amount: i64,
    pub amount_received: i64,
    pub client_secret: Option<String>,
}

/// [`PaymentStatus`] as stored and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    RequiresPaymentMethod,
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl From<ProviderStatus> for PaymentStatus {
    fn from(status: ProviderStatus) -> Self {
        match status {
            ProviderStatus::RequiresPaymentMethod => PaymentStatus::RequiresPaymentMethod,
            ProviderStatus::RequiresCapture => PaymentStatus::RequiresCapture,
            ProviderStatus::Succeeded => PaymentStatus::Succeeded,
            ProviderStatus::Canceled => PaymentStatus::Canceled,
        }
    }
}

impl From<PaymentStatus> for ProviderStatus {
    fn from(status: PaymentStatus) -> Self {
        match status {
            PaymentStatus::RequiresPaymentMethod => ProviderStatus::RequiresPaymentMethod,
            PaymentStatus::RequiresCapture => ProviderStatus::RequiresCapture,
            PaymentStatus::Succeeded => ProviderStatus::Succeeded,
            PaymentStatus::Canceled => ProviderStatus::Canceled,
        }
    }
}

impl ProviderStatus {
    /// Stripe's many pre-authorisation states are one for us: the card is not authorised yet.
    pub fn from_stripe(status: &str) -> Self {
        match status {
            "requires_capture" => ProviderStatus::RequiresCapture,
            "succeeded" => ProviderStatus::Succeeded,
            "canceled" => ProviderStatus::Canceled,
            _ => ProviderStatus::RequiresPaymentMethod,
        }
    }
}

/// Why the provider said no.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the card was declined: {0}")]
    Declined(String),
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

impl From<StripeError> for ProviderError {
    fn from(err: StripeError) -> Self {
        match err {
            StripeError::Card { message, .. } => ProviderError::Declined(message),
            StripeError::InvalidRequest { message, .. } => ProviderError::Refused(message),
            StripeError::Authentication => {
                ProviderError::Unavailable("our Stripe key is refused".to_owned())
            }
            StripeError::Unavailable(reason) => ProviderError::Unavailable(reason),
        }
    }
}

impl From<stripe::PaymentIntent> for ProviderIntent {
    fn from(intent: stripe::PaymentIntent) -> Self {
        Self {
            status: ProviderStatus::from_stripe(&intent.status),
            id: intent.id,
            amount: intent.amount,
            amount_received: intent.amount_received,
            client_secret: intent.client_secret,
        }
    }
}

/// The configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    Simulated(Simulated),
    Stripe(StripeClient),
}

impl Provider {
    /// Creates an intent that only authorises.
    pub async fn create(
        &self,
        amount: i64,
        currency: &str,
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        match self {
            Provider::Simulated(simulated) => {
                simulated
                    .create(amount, currency, appointment_id, key)
                    .await
            }
            Provider::Stripe(stripe) => Ok(stripe
                .create_intent(amount, currency, &[("appointment_id", appointment_id)], key)
                .await?
                .into()),
        }
    }

    pub async fn retrieve(&self, id: &str) -> Result<ProviderIntent, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.retrieve(id).await,
            Provider::Stripe(stripe) => Ok(stripe.retrieve_intent(id).await?.into()),
        }
    }

    /// Confirms with a payment method server-side (test mode).
    pub async fn confirm(
        &self,
        id: &str,
        payment_method: &str,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.confirm(id, payment_method, key).await,
            Provider::Stripe(stripe) => {
                Ok(stripe.confirm_intent(id, payment_method, key).await?.into())
            }
        }
    }

    pub async fn capture(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.capture(id, amount, key).await,
            Provider::Stripe(stripe) => Ok(stripe.capture_intent(id, amount, key).await?.into()),
        }
    }

    pub async fn cancel(&self, id: &str, key: &str) -> Result<ProviderIntent, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.cancel(id, key).await,
            Provider::Stripe(stripe) => Ok(stripe.cancel_intent(id, key).await?.into()),
        }
    }

    /// Refunds `amount` (default: what is left); returns the amount refunded.
    pub async fn refund(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &str,
    ) -> Result<i64, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.refund(id, amount, key).await,
            Provider::Stripe(stripe) => Ok(stripe.refund(id, amount, key).await?.amount),
        }
    }
}
