//! Payment operations: each asks the provider, then records the new state, a history row and
//! the event announcing it in one transaction. The payment's row is locked for the whole
//! operation, so capture, void and refund of one payment never run at once.

use chrono::{DateTime, Utc};
use polyclinic_contracts::payments::{
    PaymentAuthorizedV1, PaymentCapturedV1, PaymentExpiredV1, PaymentFailedV1, PaymentRefundedV1,
    PaymentVoidedV1,
};
use polyclinic_contracts::{AppointmentId, PatientId, PaymentId};
use polyclinic_events::{EventContext, outbox};
use sqlx::{PgConnection, PgPool};

use crate::domain::intent::{PaymentStatus, authorization_lifetime};
use crate::provider::{Provider, ProviderError, ProviderIntent};
use crate::repo::payments::{self as repo, HistoryEntry, NewPayment, PaymentRow};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no such payment")]
    NotFound,
    #[error("the payment is {}; that is not possible now", .0.as_str())]
    WrongState(PaymentStatus),
    #[error("the amount must be between 1 and {max} minor units")]
    BadAmount { max: i64 },
    #[error("the card was declined: {0}")]
    Declined(String),
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for LedgerError {
    fn from(err: sqlx::Error) -> Self {
        LedgerError::Unexpected(err.into())
    }
}

impl From<ProviderError> for LedgerError {
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::Declined(message) => LedgerError::Declined(message),
            other => LedgerError::Provider(other),
        }
    }
}

/// Payments and their provider.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: PgPool,
    provider: Provider,
}

impl Ledger {
    pub fn new(pool: PgPool, provider: Provider) -> Self {
        Self { pool, provider }
    }

    fn provider_name(&self) -> &'static str {
        match self.provider {
            Provider::Simulated(_) => "simulated",
            Provider::Stripe(_) => "stripe",
        }
    }

    pub async fn find(&self, id: PaymentId) -> Result<PaymentRow, LedgerError> {
        repo::find(&self.pool, id)
            .await?
            .ok_or(LedgerError::NotFound)
    }

    async fn lock(conn: &mut PgConnection, id: PaymentId) -> Result<PaymentRow, LedgerError> {
        repo::lock(conn, id).await?.ok_or(LedgerError::NotFound)
    }

    /// The payment of an appointment, created at the provider on first request; asking
    /// again for the same appointment returns the same payment.
    pub async fn create(
        &self,
        appointment_id: AppointmentId,
        patient_id: PatientId,
        amount: i64,
        currency: &str,
        actor: &str,
    ) -> Result<PaymentRow, LedgerError> {
        if let Some(existing) = repo::find_for_appointment(&self.pool, appointment_id).await? {
            return Ok(existing);
        }
        if amount <= 0 {
            return Err(LedgerError::BadAmount { max: i64::MAX });
        }
        // The provider key is derived from the appointment: a retry never makes two intents.
        let intent = self
            .provider
            .create(
                amount,
                currency,
                &appointment_id.to_string(),
                &format!("payment-create-{appointment_id}"),
            )
            .await?;
        let mut tx = self.pool.begin().await?;
        let (payment, inserted) = repo::insert(
            &mut tx,
            &NewPayment {
                appointment_id,
                patient_id,
                amount,
                currency,
                status: PaymentStatus::from(intent.status),
                provider: self.provider_name(),
                provider_intent_id: &intent.id,
                client_secret: intent.client_secret.as_deref(),
            },
        )
        .await?;
        if inserted {
            history(
                &mut tx,
                &payment,
                "created",
                None,
                Some(amount),
                None,
                actor,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(payment)
    }

    /// Confirms with a payment method server-side (test mode). A decline is recorded and
    /// announced; the payment stays open for another card.
    pub async fn confirm(
        &self,
        id: PaymentId,
        payment_method: &str,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        if payment.status != PaymentStatus::RequiresPaymentMethod {
            return Err(LedgerError::WrongState(payment.status));
        }
        let attempt = repo::count_history(&mut tx, id, &["authorized", "declined"]).await?;
        let key = format!("payment-confirm-{id}-{attempt}");
        match self
            .provider
            .confirm(&payment.provider_intent_id, payment_method, &key)
            .await
        {
            Ok(intent) => {
                let updated = self
                    .apply(&mut tx, &payment, &intent, actor, context)
                    .await?;
                tx.commit().await?;
                Ok(updated)
            }
            Err(ProviderError::Declined(reason)) => {
                history(
                    &mut tx,
                    &payment,
                    "declined",
                    Some(PaymentStatus::RequiresPaymentMethod),
                    None,
                    Some(&reason),
                    actor,
                )
                .await?;
                let failed = PaymentFailedV1 {
                    payment: payment.reference(),
                    reason: reason.clone(),
                };
                outbox::enqueue(&mut tx, crate::SERVICE, &failed, context).await?;
                tx.commit().await?;
                Err(LedgerError::Declined(reason))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Captures all of the authorisation, or `amount` of it.
    pub async fn capture(
        &self,
        id: PaymentId,
        amount: Option<i64>,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        if payment.status != PaymentStatus::RequiresCapture {
            return Err(LedgerError::WrongState(payment.status));
        }
        if amount.is_some_and(|amount| !(1..=payment.amount).contains(&amount)) {
            return Err(LedgerError::BadAmount {
                max: payment.amount,
            });
        }
        let intent = self
            .provider
            .capture(
                &payment.provider_intent_id,
                amount,
                &format!("payment-capture-{id}"),
            )
            .await?;
        let updated = self
            .apply(&mut tx, &payment, &intent, actor, context)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Voids the payment before capture.
    pub async fn void(
        &self,
        id: PaymentId,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        if payment.status.is_final() {
            return Err(LedgerError::WrongState(payment.status));
        }
        let intent = self
            .provider
            .cancel(&payment.provider_intent_id, &format!("payment-cancel-{id}"))
            .await?;
        let updated = self
            .apply(&mut tx, &payment, &intent, actor, context)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Refunds `amount` (default: all that is left) of a captured payment.
    pub async fn refund(
        &self,
        id: PaymentId,
        amount: Option<i64>,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        if payment.status != PaymentStatus::Succeeded {
            return Err(LedgerError::WrongState(payment.status));
        }
        let left = payment.amount_captured - payment.amount_refunded;
        let amount = amount.unwrap_or(left);
        if !(1..=left).contains(&amount) {
            return Err(LedgerError::BadAmount { max: left });
        }
        let refunds = repo::count_history(&mut tx, id, &["refunded"]).await?;
        let refunded = self
            .provider
            .refund(
                &payment.provider_intent_id,
                Some(amount),
                &format!("payment-refund-{id}-{refunds}"),
            )
            .await?;
        let updated = repo::add_refund(&mut tx, id, refunded).await?;
        history(
            &mut tx,
            &updated,
            "refunded",
            Some(PaymentStatus::Succeeded),
            Some(refunded),
            None,
            actor,
        )
        .await?;
        let event = PaymentRefundedV1 {
            payment: updated.reference(),
            refunded,
            refunded_total: updated.amount_refunded,
        };
        outbox::enqueue(&mut tx, crate::SERVICE, &event, context).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Records a failed payment attempt reported by the provider.
    pub async fn record_failure(
        &self,
        id: PaymentId,
        reason: &str,
        actor: &str,
        context: &EventContext,
    ) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        history(
            &mut tx,
            &payment,
            "declined",
            Some(payment.status),
            None,
            Some(reason),
            actor,
        )
        .await?;
        let failed = PaymentFailedV1 {
            payment: payment.reference(),
            reason: reason.to_owned(),
        };
        outbox::enqueue(&mut tx, crate::SERVICE, &failed, context).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Brings the refunded amount up to what the provider reports (a refund made in its
    /// dashboard, say); smaller or equal totals change nothing.
    pub async fn record_refund_total(
        &self,
        id: PaymentId,
        total: i64,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        if total <= payment.amount_refunded || total > payment.amount_captured {
            return Ok(payment);
        }
        let refunded = total - payment.amount_refunded;
        let updated = repo::set_refunded(&mut tx, id, total).await?;
        history(
            &mut tx,
            &updated,
            "refunded",
            Some(payment.status),
            Some(refunded),
            None,
            actor,
        )
        .await?;
        let event = PaymentRefundedV1 {
            payment: updated.reference(),
            refunded,
            refunded_total: total,
        };
        outbox::enqueue(&mut tx, crate::SERVICE, &event, context).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Reads the provider's view and applies it if it is ahead of ours (webhooks and the
    /// reconciliation job); a late report of an earlier state changes nothing.
    pub async fn sync(
        &self,
        id: PaymentId,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        let intent = self.provider.retrieve(&payment.provider_intent_id).await?;
        let updated = self
            .apply(&mut tx, &payment, &intent, actor, context)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// The payment of an appointment, if it has one.
    pub async fn find_for_appointment(
        &self,
        appointment_id: AppointmentId,
    ) -> Result<Option<PaymentRow>, LedgerError> {
        Ok(repo::find_for_appointment(&self.pool, appointment_id).await?)
    }

    /// Settles the payment of an appointment that ended without a visit (expired,
    /// rejected, cancelled): an open or authorised payment is voided, a captured one refunded
    /// in full; a settled one is left alone. Safe to repeat.
    pub async fn settle(
        &self,
        appointment_id: AppointmentId,
        actor: &str,
        context: &EventContext,
    ) -> Result<Option<PaymentRow>, LedgerError> {
        let Some(payment) = self.find_for_appointment(appointment_id).await? else {
            return Ok(None);
        };
        let settled = match payment.status {
            PaymentStatus::RequiresPaymentMethod | PaymentStatus::RequiresCapture => {
                self.void(payment.id, actor, context).await
            }
            PaymentStatus::Succeeded if payment.amount_captured > payment.amount_refunded => {
                self.refund(payment.id, None, actor, context).await
            }
            _ => return Ok(Some(payment)),
        };
        match settled {
            Ok(payment) => Ok(Some(payment)),
            // Settled meanwhile by someone else (an admin, a webhook): nothing left to do.
            Err(LedgerError::WrongState(_)) => Ok(Some(self.find(payment.id).await?)),
            Err(err) => Err(err),
        }
    }

    /// Asks the provider about up to `limit` payments in a non-final state that nobody
    /// looked at for `quiet` before `now`, least recently checked first, and applies what it
    /// reports. Returns how many moved forward.
    pub async fn reconcile(
        &self,
        now: DateTime<Utc>,
        quiet: chrono::Duration,
        limit: i64,
    ) -> Result<usize, LedgerError> {
        let stale = repo::claim_unsettled(&self.pool, now, now - quiet, limit).await?;
        let context = EventContext::default();
        let mut moved = 0;
        for (id, before) in stale {
            match self.sync(id, "reconciliation", &context).await {
                Ok(payment) if payment.status != before => moved += 1,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(payment = %id, error = %err, "reconciling a payment failed; tried again later")
                }
            }
        }
        Ok(moved)
    }

    /// Records the provider's `intent` for `payment` if it moves it forward, with its history
    /// row and event.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        payment: &PaymentRow,
        intent: &ProviderIntent,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let before = payment.status;
        let reported = PaymentStatus::from(intent.status);
        let mut domain = crate::domain::intent::Intent {
            status: before,
            amount: payment.amount,
            amount_captured: payment.amount_captured,
            amount_refunded: payment.amount_refunded,
            authorized_at: payment.authorized_at,
        };
        if !domain.observe(reported) {
            return Ok(payment.clone());
        }
        let now = Utc::now();
        let updated =
            repo::record_status(conn, payment.id, reported, intent.amount_received, now).await?;
        let reference = updated.reference();
        let (action, amount) = match reported {
            PaymentStatus::RequiresCapture => {
                outbox::enqueue(
                    conn,
                    crate::SERVICE,
                    &PaymentAuthorizedV1 { payment: reference },
                    context,
                )
                .await?;
                ("authorized", Some(updated.amount))
            }
            PaymentStatus::Succeeded => {
                let captured = PaymentCapturedV1 {
                    payment: reference,
                    captured: updated.amount_captured,
                };
                outbox::enqueue(conn, crate::SERVICE, &captured, context).await?;
                ("captured", Some(updated.amount_captured))
            }
            PaymentStatus::Canceled => {
                let lapsed = before == PaymentStatus::RequiresCapture
                    && payment
                        .authorized_at
                        .is_some_and(|at| now >= at + authorization_lifetime());
                if lapsed {
                    outbox::enqueue(
                        conn,
                        crate::SERVICE,
                        &PaymentExpiredV1 { payment: reference },
                        context,
                    )
                    .await?;
                    ("expired", None)
                } else {
                    outbox::enqueue(
                        conn,
                        crate::SERVICE,
                        &PaymentVoidedV1 { payment: reference },
                        context,
                    )
                    .await?;
                    ("voided", None)
                }
            }
            PaymentStatus::RequiresPaymentMethod => ("reopened", None),
        };
        history(conn, &updated, action, Some(before), amount, None, actor).await?;
        Ok(updated)
    }
}

/// Writes a history row of `payment` in its present status.
async fn history(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    action: &str,
    from: Option<PaymentStatus>,
    amount: Option<i64>,
    detail: Option<&str>,
    actor: &str,
) -> Result<(), LedgerError> {
    repo::record_history(
        conn,
        payment,
        HistoryEntry {
            action,
            from,
            amount,
            detail,
            actor,
        },
    )
    .await?;
    Ok(())
}
