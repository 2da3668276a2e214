//! The simulated provider: Stripe's PaymentIntent state machine in process, with its test
//! cards and the 7-day authorisation expiry, and its SetupIntents (a card saved for later)
//! and off-session authorisations of a saved card, kept in this service's schema so that it
//! survives restarts. Repeating a request with the same idempotency key gets the first
//! answer, as with Stripe.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    OffSessionError, ProviderError, ProviderIntent, ProviderSetup, ProviderStatus, Refusal,
    SetupStatus,
};
use crate::domain::intent::{CardOutcome, Intent, PaymentError, PaymentStatus, TestCard};

#[derive(Debug, Clone)]
pub struct Simulated {
    pool: PgPool,
}

impl From<PaymentError> for ProviderError {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Declined => ProviderError::Declined("Your card was declined.".to_owned()),
            other => ProviderError::Refused(other.to_string()),
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(err.to_string())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    amount: i64,
    #[sqlx(try_from = "String")]
    status: PaymentStatus,
    amount_received: i64,
    amount_refunded: i64,
    authorized_at: Option<DateTime<Utc>>,
    client_secret: String,
    payment_method: Option<String>,
}

impl Row {
    fn intent(&self) -> Intent {
        Intent {
            status: self.status,
            amount: self.amount,
            amount_captured: self.amount_received,
            amount_refunded: self.amount_refunded,
            authorized_at: self.authorized_at,
        }
    }

    fn provider_intent(&self, intent: &Intent) -> ProviderIntent {
        ProviderIntent {
            id: self.id.clone(),
            status: ProviderStatus::from(intent.status),
            amount: intent.amount,
            amount_received: intent.amount_captured,
            client_secret: Some(self.client_secret.clone()),
            payment_method: self.payment_method.clone(),
        }
    }
}

impl Simulated {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn replay(
        conn: &mut PgConnection,
        key: &str,
        operation: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let answer: Option<(String, Value)> = sqlx::query_as(
            "select operation, answer from simulated_requests where idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        match answer {
            Some((seen, answer)) if seen == operation => Ok(Some(answer)),
            Some(_) => Err(ProviderError::Refused(
                "this idempotency key was used for another request".to_owned(),
            )),
            None => Ok(None),
        }
    }

    async fn remember(
        conn: &mut PgConnection,
        key: &str,
        operation: &str,
        intent_id: &str,
        answer: &Value,
    ) -> Result<(), ProviderError> {
        sqlx::query(
            "insert into simulated_requests (idempotency_key, operation, intent_id, answer) values ($1, $2, $3, $4)",
        )
        .bind(key)
        .bind(operation)
        .bind(intent_id)
        .bind(answer)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    pub async fn create(
        &self,
        amount: i64,
        currency: &str,
        customer: Option<&str>,
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let operation = format!("create {amount} {currency} {customer:?} {appointment_id}");
        if let Some(answer) = Self::replay(&mut tx, key, &operation).await? {
            return serde_json::from_value(answer).map_err(unavailable);
        }
        if amount <= 0 {
            return Err(ProviderError::Refused("amount must be positive".to_owned()));
        }
        let id = format!("pi_sim_{}", Uuid::now_v7().simple());
        let secret = format!("{id}_secret_{}", Uuid::new_v4().simple());
        sqlx::query(
            "insert into simulated_intents (id, amount, currency, status, client_secret, metadata, customer)
             values ($1, $2, $3, 'requires_payment_method', $4, jsonb_build_object('appointment_id', $5::text), $6)",
        )
        .bind(&id)
        .bind(amount)
        .bind(currency.to_lowercase())
        .bind(&secret)
        .bind(appointment_id)
        .bind(customer)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let intent = ProviderIntent {
            id: id.clone(),
            status: ProviderStatus::RequiresPaymentMethod,
            amount,
            amount_received: 0,
            client_secret: Some(secret),
            payment_method: None,
        };
        let answer = serde_json::to_value(&intent).map_err(unavailable)?;
        Self::remember(&mut tx, key, &operation, &id, &answer).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(intent)
    }

    /// Loads an intent for change, letting a lapsed authorisation expire first.
    async fn load(conn: &mut PgConnection, id: &str) -> Result<(Row, Intent), ProviderError> {
        let row: Row = sqlx::query_as(
            "select id, amount, status, amount_received, amount_refunded, authorized_at, client_secret,
                    payment_method
             from simulated_intents where id = $1 for update",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ProviderError::Refused(format!("no such payment intent {id}")))?;
        let mut intent = row.intent();
        if intent.authorization_expired(Utc::now()) {
            intent.cancel()?;
            Self::save(conn, id, &intent).await?;
        }
        Ok((row, intent))
    }

    async fn save(conn: &mut PgConnection, id: &str, intent: &Intent) -> Result<(), ProviderError> {
        sqlx::query(
            "update simulated_intents set status = $2, amount_received = $3, amount_refunded = $4,
                    authorized_at = $5, updated_at = now()
             where id = $1",
        )
        .bind(id)
        .bind(intent.status.as_str())
        .bind(intent.amount_captured)
        .bind(intent.amount_refunded)
        .bind(intent.authorized_at)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Runs `change` on intent `id` once per idempotency `key`.
    async fn change(
        &self,
        id: &str,
        key: &str,
        operation: String,
        change: impl FnOnce(&mut Intent) -> Result<(), PaymentError>,
    ) -> Result<ProviderIntent, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        if let Some(answer) = Self::replay(&mut tx, key, &operation).await? {
            return serde_json::from_value(answer).map_err(unavailable);
        }
        let (row, mut intent) = Self::load(&mut tx, id).await?;
        let outcome = change(&mut intent);
        if let Err(err) = outcome {
            // An expiry noticed while loading is kept even when the change is refused.
            tx.commit().await.map_err(unavailable)?;
            return Err(err.into());
        }
        Self::save(&mut tx, id, &intent).await?;
        let answer = row.provider_intent(&intent);
        Self::remember(
            &mut tx,
            key,
            &operation,
            id,
            &serde_json::to_value(&answer).map_err(unavailable)?,
        )
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(answer)
    }

    pub async fn retrieve(&self, id: &str) -> Result<ProviderIntent, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let (row, intent) = Self::load(&mut tx, id).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(row.provider_intent(&intent))
    }

    pub async fn confirm(
        &self,
        id: &str,
        payment_method: &str,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let card = TestCard::parse(payment_method).ok_or(PaymentError::UnknownCard)?;
        let now = Utc::now();
        let mut confirmed = self
            .change(
                id,
                key,
                format!("confirm {id} {payment_method}"),
                |intent| intent.confirm(card, now),
            )
            .await?;
        // The card confirmed is the intent's (and its customer's, for later).
        sqlx::query("update simulated_intents set payment_method = $2 where id = $1")
            .bind(id)
            .bind(payment_method)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        confirmed.payment_method = Some(payment_method.to_owned());
        Ok(confirmed)
    }

    /// Starts saving a card to `customer` (a SetupIntent).
    pub async fn create_setup(
        &self,
        customer: &str,
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderSetup, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let operation = format!("setup {customer} {appointment_id}");
        if let Some(answer) = Self::replay(&mut tx, key, &operation).await? {
            return serde_json::from_value(answer).map_err(unavailable);
        }
        let id = format!("seti_sim_{}", Uuid::now_v7().simple());
        let setup = ProviderSetup {
            client_secret: Some(format!("{id}_secret_{}", Uuid::new_v4().simple())),
            id,
            status: SetupStatus::Open,
            payment_method: None,
        };
        sqlx::query(
            "insert into simulated_setups (id, customer, status, client_secret, metadata)
             values ($1, $2, 'requires_payment_method', $3, jsonb_build_object('appointment_id', $4::text))",
        )
        .bind(&setup.id)
        .bind(customer)
        .bind(&setup.client_secret)
        .bind(appointment_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let answer = serde_json::to_value(&setup).map_err(unavailable)?;
        Self::remember(&mut tx, key, &operation, &setup.id, &answer).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(setup)
    }

    async fn load_setup(conn: &mut PgConnection, id: &str) -> Result<ProviderSetup, ProviderError> {
        let row: Option<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "select id, status, client_secret, payment_method from simulated_setups where id = $1 for update",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        let (id, status, client_secret, payment_method) =
            row.ok_or_else(|| ProviderError::Refused(format!("no such setup intent {id}")))?;
        Ok(ProviderSetup {
            id,
            status: match status.as_str() {
                "succeeded" => SetupStatus::Saved,
                "canceled" => SetupStatus::Canceled,
                _ => SetupStatus::Open,
            },
            client_secret,
            payment_method,
        })
    }

    pub async fn retrieve_setup(&self, id: &str) -> Result<ProviderSetup, ProviderError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        Self::load_setup(&mut conn, id).await
    }

    /// Saves the card, as a test card allows: the holder is present and authenticates.
    pub async fn confirm_setup(
        &self,
        id: &str,
        payment_method: &str,
        key: &str,
    ) -> Result<ProviderSetup, ProviderError> {
        let card = TestCard::parse(payment_method).ok_or(PaymentError::UnknownCard)?;
        self.change_setup(
            id,
            key,
            format!("confirm setup {id} {payment_method}"),
            |setup| {
                if setup.status != SetupStatus::Open {
                    return Err(PaymentError::WrongState("a setup that is not open"));
                }
                match card.setup() {
                    CardOutcome::Approved => {
                        setup.status = SetupStatus::Saved;
                        setup.payment_method = Some(payment_method.to_owned());
                        Ok(())
                    }
                    _ => Err(PaymentError::Declined),
                }
            },
        )
        .await
    }

    pub async fn cancel_setup(&self, id: &str, key: &str) -> Result<ProviderSetup, ProviderError> {
        self.change_setup(id, key, format!("cancel setup {id}"), |setup| {
            if setup.status != SetupStatus::Open {
                return Err(PaymentError::WrongState("a setup that is not open"));
            }
            setup.status = SetupStatus::Canceled;
            Ok(())
        })
        .await
    }

    /// Runs `change` on setup `id` once per idempotency `key`.
    async fn change_setup(
        &self,
        id: &str,
        key: &str,
        operation: String,
        change: impl FnOnce(&mut ProviderSetup) -> Result<(), PaymentError>,
    ) -> Result<ProviderSetup, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        if let Some(answer) = Self::replay(&mut tx, key, &operation).await? {
            return serde_json::from_value(answer).map_err(unavailable);
        }
        let mut setup = Self::load_setup(&mut tx, id).await?;
        change(&mut setup)?;
        sqlx::query(
            "update simulated_setups set status = $2, payment_method = $3, updated_at = now() where id = $1",
        )
        .bind(id)
        .bind(match setup.status {
            SetupStatus::Open => "requires_payment_method",
            SetupStatus::Saved => "succeeded",
            SetupStatus::Canceled => "canceled",
        })
        .bind(&setup.payment_method)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let answer = serde_json::to_value(&setup).map_err(unavailable)?;
        Self::remember(&mut tx, key, &operation, id, &answer).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(setup)
    }

    /// Authorises a saved card without its holder, as the test card allows. A refusal leaves
    /// an intent waiting for another card, which the holder can confirm on-session.
    pub async fn authorize_off_session(
        &self,
        amount: i64,
        currency: &str,
        customer: &str,
        payment_method: &str,
        appointment_id: &str,
        key: &str,
    ) -> Result<ProviderIntent, OffSessionError> {
        let card = TestCard::parse(payment_method)
            .ok_or(ProviderError::Refused("no such payment method".to_owned()))?;
        let mut intent = self
            .create(amount, currency, Some(customer), appointment_id, key)
            .await?;
        let refusal = match card.off_session() {
            CardOutcome::Approved => None,
            CardOutcome::Declined => Some((Refusal::Declined, "Your card was declined.")),
            CardOutcome::AuthenticationRequired => Some((
                Refusal::AuthenticationRequired,
                "Your card was declined: this transaction requires authentication.",
            )),
        };
        if let Some((refusal, message)) = refusal {
            return Err(OffSessionError::Refused {
                refusal,
                message: message.to_owned(),
                intent: Some(intent),
            });
        }
        let now = Utc::now();
        // Confirmed at once, as Stripe's `confirm=true` does; the same key answers the same.
        let confirmed = self
            .change(
                &intent.id,
                &format!("{key}-confirm"),
                format!("confirm {} {payment_method} off-session", intent.id),
                |state| {
                    if state.status == PaymentStatus::RequiresPaymentMethod {
                        state.status = PaymentStatus::RequiresCapture;
                        state.authorized_at = Some(now);
                    }
                    Ok(())
                },
            )
            .await?;
        sqlx::query("update simulated_intents set payment_method = $2 where id = $1")
            .bind(&intent.id)
            .bind(payment_method)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        intent = confirmed;
        intent.payment_method = Some(payment_method.to_owned());
        Ok(intent)
    }

    pub async fn capture(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        self.change(id, key, format!("capture {id} {amount:?}"), |intent| {
            intent.capture(amount).map(|_| ())
        })
        .await
    }

    pub async fn cancel(&self, id: &str, key: &str) -> Result<ProviderIntent, ProviderError> {
        self.change(id, key, format!("cancel {id}"), Intent::cancel)
            .await
    }

    pub async fn refund(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &str,
    ) -> Result<i64, ProviderError> {
        let operation = format!("refund {id} {amount:?}");
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        if let Some(answer) = Self::replay(&mut tx, key, &operation).await? {
            return answer["refunded"]
                .as_i64()
                .ok_or_else(|| unavailable("a stored refund answer without an amount"));
        }
        let (_, mut intent) = Self::load(&mut tx, id).await?;
        let refunded = match intent.refund(amount) {
            Ok(refunded) => refunded,
            Err(err) => {
                tx.commit().await.map_err(unavailable)?;
                return Err(err.into());
            }
        };
        Self::save(&mut tx, id, &intent).await?;
        Self::remember(
            &mut tx,
            key,
            &operation,
            id,
            &serde_json::json!({ "refunded": refunded }),
        )
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(refunded)
    }
}
