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
    /// The card it was confirmed with, once it was.
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A provider's card setup (Stripe's SetupIntent), in our terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSetup {
    pub id: String,
    pub status: SetupStatus,
    pub client_secret: Option<String>,
    /// The saved card, once it is saved.
    pub payment_method: Option<String>,
}

/// Where a card setup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupStatus {
    /// Waiting for the card (or for its holder to authenticate).
    Open,
    /// The card is saved for off-session use.
    Saved,
    Canceled,
}

impl SetupStatus {
    fn from_stripe(status: &str) -> Self {
        match status {
            "succeeded" => SetupStatus::Saved,
            "canceled" => SetupStatus::Canceled,
            _ => SetupStatus::Open,
        }
    }
}

/// Why an off-session authorisation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Declined,
    /// The bank wants the cardholder to authenticate: only they can, on-session.
    AuthenticationRequired,
}

impl Refusal {
    /// The code events and messages carry.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Declined => "card_declined",
            Refusal::AuthenticationRequired => "authentication_required",
        }
    }
}

/// An off-session authorisation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OffSessionError {
    /// The card was refused; `intent` is what the attempt left, for the cardholder to confirm
    /// with another card.
    #[error("the card was refused: {message}")]
    Refused {
        refusal: Refusal,
        message: String,
        intent: Option<ProviderIntent>,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl From<StripeError> for OffSessionError {
    fn from(err: StripeError) -> Self {
        match err {
            StripeError::Card {
                code,
                message,
                payment_intent,
                ..
            } => OffSessionError::Refused {
                refusal: if code.as_deref() == Some("authentication_required") {
                    Refusal::AuthenticationRequired
                } else {
                    Refusal::Declined
                },
                message,
                intent: payment_intent.map(|intent| ProviderIntent::from(*intent)),
            },
            other => OffSessionError::Provider(other.into()),
        }
    }
}

impl From<stripe::SetupIntent> for ProviderSetup {
    fn from(setup: stripe::SetupIntent) -> Self {
        Self {
            status: SetupStatus::from_stripe(&setup.status),
            id: setup.id,
            client_secret: setup.client_secret,
            payment_method: setup.payment_method,
        }
    }
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
            // A PaymentIntent has no saved-card state: that is a SetupIntent's.
            PaymentStatus::RequiresPaymentMethod | PaymentStatus::CardSaved => {
                ProviderStatus::RequiresPaymentMethod
            }
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
            payment_method: intent.payment_method,
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
    /// Creates an intent that only authorises; the card it is confirmed with is saved to
    /// `customer` for off-session use.
    pub async fn create(
        &self,
        amount: i64,
        currency: &str,
        customer: &str,
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        match self {
            Provider::Simulated(simulated) => {
                simulated
                    .create(amount, currency, Some(customer), appointment_id, key)
                    .await
            }
            Provider::Stripe(stripe) => Ok(stripe
                .create_intent(
                    amount,
                    currency,
                    Some(customer),
                    &[("appointment_id", appointment_id)],
                    key,
                )
                .await?
                .into()),
        }
    }

    /// A customer for `patient_id`, whose saved cards are charged off-session.
    pub async fn create_customer(
        &self,
        patient_id: &str,
        key: &str,
    ) -> Result<String, ProviderError> {
        match self {
            Provider::Simulated(_) => Ok(format!("cus_sim_{}", patient_id.replace('-', ""))),
            Provider::Stripe(stripe) => Ok(stripe
                .create_customer(&[("patient_id", patient_id)], key)
                .await?
                .id),
        }
    }

    /// Starts saving a card to `customer` for the appointment's off-session authorisation.
    pub async fn create_setup(
        &self,
        customer: &str,
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderSetup, ProviderError> {
        match self {
            Provider::Simulated(simulated) => {
                simulated.create_setup(customer, appointment_id, key).await
            }
            Provider::Stripe(stripe) => Ok(stripe
                .create_setup_intent(customer, &[("appointment_id", appointment_id)], key)
                .await?
                .into()),
        }
    }

    pub async fn retrieve_setup(&self, id: &str) -> Result<ProviderSetup, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.retrieve_setup(id).await,
            Provider::Stripe(stripe) => Ok(stripe.retrieve_setup_intent(id).await?.into()),
        }
    }

    /// Saves the card with a payment method server-side (test mode).
    pub async fn confirm_setup(
        &self,
        id: &str,
        payment_method: &str,
        key: &str,
    ) -> Result<ProviderSetup, ProviderError> {
        match self {
            Provider::Simulated(simulated) => {
                simulated.confirm_setup(id, payment_method, key).await
            }
            Provider::Stripe(stripe) => Ok(stripe
                .confirm_setup_intent(id, payment_method, key)
                .await?
                .into()),
        }
    }

    /// Abandons a setup that has saved no card.
    pub async fn cancel_setup(&self, id: &str, key: &str) -> Result<ProviderSetup, ProviderError> {
        match self {
            Provider::Simulated(simulated) => simulated.cancel_setup(id, key).await,
            Provider::Stripe(stripe) => Ok(stripe.cancel_setup_intent(id, key).await?.into()),
        }
    }

    /// Authorises `customer`'s saved `payment_method` for `amount` without them (manual
    /// capture).
    pub async fn authorize_off_session(
        &self,
        amount: i64,
        currency: &str,
        (customer, payment_method): (&str, &str),
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderIntent, OffSessionError> {
        match self {
            Provider::Simulated(simulated) => {
                simulated
                    .authorize_off_session(
                        amount,
                        currency,
                        customer,
                        payment_method,
                        appointment_id,
                        key,
                    )
                    .await
            }
            Provider::Stripe(stripe) => Ok(stripe
                .authorize_off_session(
                    amount,
                    currency,
                    customer,
                    payment_method,
                    &[("appointment_id", appointment_id)],
                    key,
                )
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
