//! Payment operations: each asks the provider, then records the new state, a history row and
//! the event announcing it in one transaction. The payment's row is locked for the whole
//! operation, so capture, void and refund of one payment never run at once.
//!
//! A visit further ahead than `payments.authorize_ahead_days` is paid in two steps: its card
//! is saved at booking (a SetupIntent) and authorised off-session
//! `payments.authorize_lead_hours` before the visit ([`Ledger::authorize_due`]); an approval
//! before then is recorded and the capture follows the authorisation. An authorisation that
//! would lapse before its capture is renewed the same way ([`Ledger::renew_lapsing`]). A
//! refused off-session authorisation asks the patient for another card by a deadline
//! (`payments.card_update_hours`); past it the payment is canceled and announced as expired,
//! which cancels the visit ([`Ledger::cancel_unmended`]).

use chrono::{DateTime, Duration, Utc};
use polyclinic_contracts::payments::{
    PaymentActionRequiredV1, PaymentAuthorizedV1, PaymentCapturedV1, PaymentCardSavedV1,
    PaymentExpiredV1, PaymentFailedV1, PaymentRefundedV1, PaymentVoidedV1,
};
use polyclinic_contracts::{AppointmentId, PatientId, PaymentId};
use polyclinic_events::{EventContext, outbox};
use sqlx::{PgConnection, PgPool};

use crate::domain::intent::{PaymentStatus, authorization_lifetime};
use crate::provider::{
    OffSessionError, Provider, ProviderError, ProviderIntent, Refusal, SetupStatus,
};
use crate::repo::payments::{self as repo, Due, HistoryEntry, NewPayment, PaymentRow};

/// When cards are charged: how far ahead a visit is authorised at booking (beyond, its card
/// is saved), how long before such a visit its card is authorised, and how long a patient
/// has to give another card after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardTiming {
    pub ahead: Duration,
    pub lead: Duration,
    pub update: Duration,
}

impl Default for CardTiming {
    fn default() -> Self {
        Self {
            ahead: Duration::days(6),
            lead: Duration::hours(48),
            update: Duration::hours(24),
        }
    }
}

/// How long before it lapses an uncaptured authorisation is renewed.
const RENEWAL_MARGIN: Duration = Duration::days(1);

/// Payments one job round takes.
const JOB_BATCH: i64 = 50;

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
    timing: CardTiming,
}

/// A payment's PaymentIntent, which every operation but a card's saving needs.
fn intent_of(payment: &PaymentRow) -> Result<&str, LedgerError> {
    payment
        .provider_intent_id
        .as_deref()
        .ok_or(LedgerError::WrongState(payment.status))
}

impl Ledger {
    pub fn new(pool: PgPool, provider: Provider, timing: CardTiming) -> Self {
        Self {
            pool,
            provider,
            timing,
        }
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

    /// The patient's customer at the provider, made on first need.
    async fn customer(&self, patient_id: PatientId) -> Result<String, LedgerError> {
        let provider = self.provider_name();
        if let Some(customer) = repo::find_customer(&self.pool, patient_id, provider).await? {
            return Ok(customer);
        }
        let made = self
            .provider
            .create_customer(&patient_id.to_string(), &format!("customer-{patient_id}"))
            .await?;
        Ok(repo::insert_customer(&self.pool, patient_id, provider, &made).await?)
    }

    /// The payment of an appointment, created at the provider on first request; asking
    /// again for the same appointment returns the same payment. A visit starting further
    /// ahead than an authorisation lives has its card saved now and authorised later.
    pub async fn create(
        &self,
        appointment_id: AppointmentId,
        patient_id: PatientId,
        (amount, currency): (i64, &str),
        visit_starts_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<PaymentRow, LedgerError> {
        if let Some(existing) = repo::find_for_appointment(&self.pool, appointment_id).await? {
            return Ok(existing);
        }
        if amount <= 0 {
            return Err(LedgerError::BadAmount { max: i64::MAX });
        }
        let customer = self.customer(patient_id).await?;
        let now = Utc::now();
        let saved_for = visit_starts_at.filter(|starts| *starts - now > self.timing.ahead);
        // The provider keys are derived from the appointment: a retry never makes two.
        let appointment = appointment_id.to_string();
        let (status, intent, setup, secret) = match saved_for {
            Some(_) => {
                let setup = self
                    .provider
                    .create_setup(
                        &customer,
                        &appointment,
                        &format!("payment-setup-{appointment_id}"),
                    )
                    .await?;
                (
                    PaymentStatus::RequiresPaymentMethod,
                    None,
                    Some(setup.id),
                    setup.client_secret,
                )
            }
            None => {
                let intent = self
                    .provider
                    .create(
                        amount,
                        currency,
                        &customer,
                        &appointment,
                        &format!("payment-create-{appointment_id}"),
                    )
                    .await?;
                (
                    PaymentStatus::from(intent.status),
                    Some(intent.id),
                    None,
                    intent.client_secret,
                )
            }
        };
        let mut tx = self.pool.begin().await?;
        let (payment, inserted) = repo::insert(
            &mut tx,
            &NewPayment {
                appointment_id,
                patient_id,
                amount,
                currency,
                status,
                provider: self.provider_name(),
                provider_intent_id: intent.as_deref(),
                setup_intent_id: setup.as_deref(),
                client_secret: secret.as_deref(),
                customer_id: &customer,
                visit_starts_at,
                authorize_at: saved_for.map(|starts| starts - self.timing.lead),
            },
        )
        .await?;
        if inserted {
            let detail = saved_for.map(|_| "the card is saved now and authorised before the visit");
            history(
                &mut tx,
                &payment,
                "created",
                None,
                Some(amount),
                detail,
                actor,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(payment)
    }

    /// Confirms with a payment method server-side (test mode): saves the card of a visit
    /// booked far ahead, or authorises it (the first card, or another after a refused
    /// off-session authorisation; a capture the clinic asked for meanwhile follows). A
    /// decline is recorded and announced; the payment stays open for another card.
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
        let attempt =
            repo::count_history(&mut tx, id, &["authorized", "declined", "card saved"]).await?;
        let outcome = match (&payment.provider_intent_id, &payment.setup_intent_id) {
            (None, Some(setup)) => {
                let key = format!("payment-setup-confirm-{id}-{attempt}");
                match self
                    .provider
                    .confirm_setup(setup, payment_method, &key)
                    .await
                {
                    Ok(saved) if saved.status == SetupStatus::Saved => {
                        let method = saved.payment_method.as_deref().unwrap_or(payment_method);
                        let updated = self
                            .card_saved(&mut tx, &payment, method, actor, context)
                            .await?;
                        Ok(updated)
                    }
                    // The bank wants its holder to authenticate, which a server-side
                    // confirmation cannot do: another card, or the provider's own page.
                    Ok(_) => Err(ProviderError::Declined(
                        "the card needs its holder to authenticate".to_owned(),
                    )),
                    Err(err) => Err(err),
                }
            }
            (Some(intent), _) => {
                let key = format!("payment-confirm-{id}-{attempt}");
                match self.provider.confirm(intent, payment_method, &key).await {
                    Ok(intent) => {
                        let updated = self
                            .apply(&mut tx, &payment, &intent, actor, context)
                            .await?;
                        let updated = self
                            .authorized(&mut tx, updated, &intent, actor, context)
                            .await?;
                        Ok(updated)
                    }
                    Err(err) => Err(err),
                }
            }
            (None, None) => return Err(LedgerError::WrongState(payment.status)),
        };
        match outcome {
            Ok(updated) => {
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

    /// Records a far-ahead visit's card as saved and announces it (the appointment is then
    /// paid for, pending approval).
    async fn card_saved(
        &self,
        conn: &mut PgConnection,
        payment: &PaymentRow,
        payment_method: &str,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let updated = repo::record_card_saved(conn, payment.id, payment_method).await?;
        history(
            conn,
            &updated,
            "card saved",
            Some(payment.status),
            None,
            None,
            actor,
        )
        .await?;
        let event = PaymentCardSavedV1 {
            payment: updated.reference(),
            authorize_at: updated.authorize_at.unwrap_or_else(Utc::now),
        };
        outbox::enqueue(conn, crate::SERVICE, &event, context).await?;
        Ok(updated)
    }

    /// What follows an authorisation however it was learnt of (confirmed here, a webhook,
    /// reconciliation): the card it was given with is kept for a renewal, no deadline runs
    /// any more, and a capture the clinic asked for meanwhile is taken.
    async fn authorized(
        &self,
        conn: &mut PgConnection,
        payment: PaymentRow,
        intent: &ProviderIntent,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        if payment.status != PaymentStatus::RequiresCapture {
            return Ok(payment);
        }
        let updated =
            repo::record_payment_method(conn, payment.id, intent.payment_method.as_deref()).await?;
        self.capture_if_asked(conn, updated, actor, context).await
    }

    /// Captures a fresh authorisation when the clinic asked for it before the card was
    /// authorised.
    async fn capture_if_asked(
        &self,
        conn: &mut PgConnection,
        payment: PaymentRow,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        if payment.status != PaymentStatus::RequiresCapture
            || payment.capture_requested_at.is_none()
        {
            return Ok(payment);
        }
        self.capture_locked(conn, &payment, None, actor, context)
            .await
    }

    /// Captures all of the authorisation, or `amount` of it. A payment whose card is not
    /// authorised yet (saved for a visit far ahead, or waiting for another card after a
    /// refusal) records the request, and is captured in full when it is authorised.
    pub async fn capture(
        &self,
        id: PaymentId,
        amount: Option<i64>,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        let awaiting_card = payment.status == PaymentStatus::RequiresPaymentMethod
            && payment.card_deadline.is_some();
        let updated = match payment.status {
            PaymentStatus::RequiresCapture => {
                self.capture_locked(&mut tx, &payment, amount, actor, context)
                    .await?
            }
            PaymentStatus::CardSaved if amount.is_none_or(|amount| amount == payment.amount) => {
                self.request_capture(&mut tx, &payment, actor).await?
            }
            _ if awaiting_card && amount.is_none_or(|amount| amount == payment.amount) => {
                self.request_capture(&mut tx, &payment, actor).await?
            }
            PaymentStatus::CardSaved => {
                return Err(LedgerError::BadAmount {
                    max: payment.amount,
                });
            }
            other => return Err(LedgerError::WrongState(other)),
        };
        tx.commit().await?;
        Ok(updated)
    }

    async fn request_capture(
        &self,
        conn: &mut PgConnection,
        payment: &PaymentRow,
        actor: &str,
    ) -> Result<PaymentRow, LedgerError> {
        let updated = repo::request_capture(conn, payment.id, Utc::now()).await?;
        if payment.capture_requested_at.is_none() {
            let detail = "captured once the card is authorised";
            history(
                conn,
                &updated,
                "capture requested",
                Some(payment.status),
                None,
                Some(detail),
                actor,
            )
            .await?;
        }
        Ok(updated)
    }

    /// Captures a locked, authorised payment.
    async fn capture_locked(
        &self,
        conn: &mut PgConnection,
        payment: &PaymentRow,
        amount: Option<i64>,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        if amount.is_some_and(|amount| !(1..=payment.amount).contains(&amount)) {
            return Err(LedgerError::BadAmount {
                max: payment.amount,
            });
        }
        let id = payment.id;
        // A payment may have had several intents (a renewal, another card): the key names
        // this one, so a retry replays this capture and nothing else.
        let intent_id = intent_of(payment)?;
        let intent = self
            .provider
            .capture(
                intent_id,
                amount,
                &format!("payment-capture-{id}-{intent_id}"),
            )
            .await?;
        self.apply(conn, payment, &intent, actor, context).await
    }

    /// Voids the payment before capture (a card only saved is let go: nothing was held).
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
        let updated = match (&payment.provider_intent_id, &payment.setup_intent_id) {
            (Some(intent), _) => {
                let intent = self
                    .provider
                    .cancel(intent, &format!("payment-cancel-{id}-{intent}"))
                    .await?;
                self.apply(&mut tx, &payment, &intent, actor, context)
                    .await?
            }
            (None, setup) => {
                // A setup that saved no card is canceled; a saved card stays with the
                // customer, unused.
                if let Some(setup) = setup
                    && payment.status == PaymentStatus::RequiresPaymentMethod
                {
                    // One the patient completed a moment ago cannot be canceled: its card
                    // stays with the customer, unused, as the payment ends here all the same.
                    match self
                        .provider
                        .cancel_setup(setup, &format!("payment-cancel-setup-{id}"))
                        .await
                    {
                        Ok(_) | Err(ProviderError::Refused(_)) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                let updated =
                    repo::record_status(&mut tx, id, PaymentStatus::Canceled, 0, Utc::now())
                        .await?;
                history(
                    &mut tx,
                    &updated,
                    "voided",
                    Some(payment.status),
                    None,
                    None,
                    actor,
                )
                .await?;
                let event = PaymentVoidedV1 {
                    payment: updated.reference(),
                };
                outbox::enqueue(&mut tx, crate::SERVICE, &event, context).await?;
                updated
            }
        };
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
                intent_of(&payment)?,
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
    /// reconciliation job); a late report of an earlier state changes nothing. A card being
    /// saved is read from its setup.
    pub async fn sync(
        &self,
        id: PaymentId,
        actor: &str,
        context: &EventContext,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let payment = Self::lock(&mut tx, id).await?;
        let updated = match (&payment.provider_intent_id, &payment.setup_intent_id) {
            (Some(intent), _) => {
                let intent = self.provider.retrieve(intent).await?;
                let updated = self
                    .apply(&mut tx, &payment, &intent, actor, context)
                    .await?;
                self.authorized(&mut tx, updated, &intent, actor, context)
                    .await?
            }
            (None, Some(setup)) => {
                let setup = self.provider.retrieve_setup(setup).await?;
                match (setup.status, setup.payment_method) {
                    (SetupStatus::Saved, Some(method))
                        if payment.status == PaymentStatus::RequiresPaymentMethod =>
                    {
                        self.card_saved(&mut tx, &payment, &method, actor, context)
                            .await?
                    }
                    _ => payment,
                }
            }
            (None, None) => payment,
        };
        tx.commit().await?;
        Ok(updated)
    }

    /// The visit moved: a saved card is authorised its lead time before the new start (at
    /// once when that has passed); an authorisation is renewed if it would lapse first.
    pub async fn move_visit(
        &self,
        appointment_id: AppointmentId,
        starts_at: DateTime<Utc>,
    ) -> Result<Option<PaymentRow>, LedgerError> {
        Ok(repo::move_visit(
            &self.pool,
            appointment_id,
            starts_at,
            starts_at - self.timing.lead,
        )
        .await?)
    }

    /// Authorises the saved cards whose time has come (off-session, manual capture), and
    /// captures those the clinic approved meanwhile. Returns how many were authorised.
    pub async fn authorize_due(&self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        self.each_due(Due::Authorization, now, |ledger, conn, payment| {
            Box::pin(async move {
                if payment.status == PaymentStatus::RequiresCapture {
                    // Authorised in an earlier round whose capture failed: taken now.
                    let context = EventContext::default();
                    ledger
                        .capture_if_asked(conn, payment, "card-authorization", &context)
                        .await?;
                    return Ok(false);
                }
                ledger.authorize_locked(conn, &payment, now, None).await
            })
        })
        .await
    }

    /// Renews the uncaptured authorisations that would lapse within a day, of visits not yet
    /// over: the saved card is authorised anew and the old hold released. Returns how many.
    pub async fn renew_lapsing(&self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        let before = now - (authorization_lifetime() - RENEWAL_MARGIN);
        self.each_due(Due::Renewal { before }, now, |ledger, conn, payment| {
            Box::pin(async move {
                let old = payment.provider_intent_id.clone();
                ledger.authorize_locked(conn, &payment, now, old).await
            })
        })
        .await
    }

    /// Cancels the payments whose patient gave no other card by the deadline after a
    /// refused authorisation, announcing them as expired (which cancels the visit and frees
    /// its slot). Returns how many.
    pub async fn cancel_unmended(&self, now: DateTime<Utc>) -> Result<usize, LedgerError> {
        self.each_due(Due::CardDeadline, now, |ledger, conn, payment| {
            Box::pin(async move {
                if let Some(intent) = &payment.provider_intent_id {
                    let key = format!("payment-cancel-unmended-{}", payment.id);
                    match ledger.provider.cancel(intent, &key).await {
                        Ok(_) | Err(ProviderError::Refused(_)) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                let updated =
                    repo::record_status(conn, payment.id, PaymentStatus::Canceled, 0, now).await?;
                let detail = "no other card was given by the deadline";
                history(
                    conn,
                    &updated,
                    "expired",
                    Some(payment.status),
                    None,
                    Some(detail),
                    "card-deadline",
                )
                .await?;
                let event = PaymentExpiredV1 {
                    payment: updated.reference(),
                };
                outbox::enqueue(conn, crate::SERVICE, &event, &EventContext::default()).await?;
                Ok(true)
            })
        })
        .await
    }

    /// Runs `work` on each payment `due` at `now`, each in a transaction of its own with its
    /// row locked (instances share the work); one that fails is logged and tried again on
    /// the next round. Returns how many `work` counted.
    async fn each_due<F>(&self, due: Due, now: DateTime<Utc>, work: F) -> Result<usize, LedgerError>
    where
        F: for<'a> Fn(
            &'a Ledger,
            &'a mut PgConnection,
            PaymentRow,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<bool, LedgerError>> + Send + 'a>,
        >,
    {
        let mut done = 0;
        for id in repo::due(&self.pool, due, now, JOB_BATCH).await? {
            let mut tx = self.pool.begin().await?;
            let Some(payment) = repo::lock_if_due(&mut tx, id, due, now).await? else {
                continue;
            };
            match work(self, &mut tx, payment).await {
                Ok(counted) => {
                    tx.commit().await?;
                    done += usize::from(counted);
                }
                Err(err) => {
                    tracing::warn!(payment = %id, error = %err, "a payment job failed on this payment; tried again later");
                }
            }
        }
        Ok(done)
    }

    /// Authorises a locked payment's saved card off-session. Authorised: the new intent
    /// stands for the payment (`replacing` one is released) and a requested capture follows.
    /// Refused: the patient is asked for another card by the deadline. Returns whether it
    /// was authorised.
    async fn authorize_locked(
        &self,
        conn: &mut PgConnection,
        payment: &PaymentRow,
        now: DateTime<Utc>,
        replacing: Option<String>,
    ) -> Result<bool, LedgerError> {
        let id = payment.id;
        let actor = "card-authorization";
        let context = EventContext::default();
        let attempt =
            repo::count_history(conn, id, &["authorized", "authorization refused"]).await?;
        let saved = payment
            .customer_id
            .as_deref()
            .zip(payment.payment_method.as_deref());
        let outcome = match saved {
            Some(card) => {
                self.provider
                    .authorize_off_session(
                        payment.amount,
                        &payment.currency,
                        card,
                        &payment.appointment_id.to_string(),
                        &format!("payment-authorize-{id}-{attempt}"),
                    )
                    .await
            }
            None => Err(OffSessionError::Refused {
                refusal: Refusal::Declined,
                message: "no card is saved".to_owned(),
                intent: None,
            }),
        };
        // Whatever became of the new attempt, an old hold is let go: the new intent (or the
        // patient's next card) stands for the payment from now on.
        // Once the provider answered, what follows (letting the old hold go, a capture) must
        // not undo the record of the new intent: their failures are logged, the hold lapses
        // on its own, and the capture is taken on the next round.
        let release_key = format!("payment-release-{id}-{attempt}");
        let release = || async {
            if let Err(err) = self.release(replacing.as_deref(), &release_key).await {
                tracing::warn!(payment = %id, error = %err, "releasing an old authorisation failed; it lapses on its own");
            }
            Ok::<(), LedgerError>(())
        };
        match outcome {
            Ok(intent) if intent.status == crate::provider::ProviderStatus::RequiresCapture => {
                release().await?;
                let updated = repo::record_intent(
                    conn,
                    id,
                    &intent.id,
                    intent.client_secret.as_deref(),
                    PaymentStatus::RequiresCapture,
                    Some(now),
                    None,
                )
                .await?;
                let detail = if replacing.is_some() {
                    "renewed off-session before the last one lapsed"
                } else {
                    "off-session, with the saved card"
                };
                history(
                    conn,
                    &updated,
                    "authorized",
                    Some(payment.status),
                    Some(updated.amount),
                    Some(detail),
                    actor,
                )
                .await?;
                outbox::enqueue(
                    conn,
                    crate::SERVICE,
                    &PaymentAuthorizedV1 {
                        payment: updated.reference(),
                    },
                    &context,
                )
                .await?;
                // In a savepoint, so a failed capture leaves the authorisation recorded.
                let payment_id = updated.id;
                let mut attempt = sqlx::Connection::begin(&mut *conn).await?;
                match self
                    .capture_if_asked(&mut attempt, updated, actor, &context)
                    .await
                {
                    Ok(_) => attempt.commit().await?,
                    Err(err) => {
                        attempt.rollback().await?;
                        tracing::warn!(payment = %payment_id, error = %err, "capturing a fresh authorisation failed; tried again on the next round");
                    }
                }
                Ok(true)
            }
            Ok(intent) => {
                release().await?;
                self.refused(
                    conn,
                    payment,
                    Refusal::AuthenticationRequired,
                    Some(intent),
                    now,
                )
                .await?;
                Ok(false)
            }
            Err(OffSessionError::Refused {
                refusal, intent, ..
            }) => {
                release().await?;
                self.refused(conn, payment, refusal, intent, now).await?;
                Ok(false)
            }
            // The provider refused the request itself (the saved card is gone, detached):
            // the patient is asked for another, as for a declined card.
            Err(OffSessionError::Provider(ProviderError::Refused(_))) => {
                release().await?;
                self.refused(conn, payment, Refusal::Declined, None, now)
                    .await?;
                Ok(false)
            }
            Err(OffSessionError::Provider(err)) => Err(err.into()),
        }
    }

    /// Lets an old authorisation go (one that lapsed or was canceled already is let be).
    async fn release(&self, intent: Option<&str>, key: &str) -> Result<(), LedgerError> {
        let Some(intent) = intent else {
            return Ok(());
        };
        match self.provider.cancel(intent, key).await {
            Ok(_) | Err(ProviderError::Refused(_)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Records a refused off-session authorisation: the payment waits for another card
    /// (the refused intent is what the patient confirms it with) until the deadline.
    async fn refused(
        &self,
        conn: &mut PgConnection,
        payment: &PaymentRow,
        refusal: Refusal,
        intent: Option<ProviderIntent>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let deadline = now + self.timing.update;
        let intent_id = intent
            .as_ref()
            .map(|intent| intent.id.clone())
            .or_else(|| payment.provider_intent_id.clone());
        let updated = match intent_id {
            Some(intent_id) => {
                repo::record_intent(
                    conn,
                    payment.id,
                    &intent_id,
                    intent
                        .as_ref()
                        .and_then(|intent| intent.client_secret.as_deref()),
                    PaymentStatus::RequiresPaymentMethod,
                    None,
                    Some(deadline),
                )
                .await?
            }
            // Nothing at the provider for the patient to confirm: a PaymentIntent is made for
            // them to pay with another card.
            None => {
                let customer = match &payment.customer_id {
                    Some(customer) => customer.clone(),
                    None => self.customer(payment.patient_id).await?,
                };
                let made = self
                    .provider
                    .create(
                        payment.amount,
                        &payment.currency,
                        &customer,
                        &payment.appointment_id.to_string(),
                        &format!("payment-recover-{}-{}", payment.id, now.timestamp()),
                    )
                    .await?;
                repo::record_intent(
                    conn,
                    payment.id,
                    &made.id,
                    made.client_secret.as_deref(),
                    PaymentStatus::RequiresPaymentMethod,
                    None,
                    Some(deadline),
                )
                .await?
            }
        };
        history(
            conn,
            &updated,
            "authorization refused",
            Some(payment.status),
            None,
            Some(refusal.code()),
            "card-authorization",
        )
        .await?;
        let event = PaymentActionRequiredV1 {
            payment: updated.reference(),
            reason: refusal.code().to_owned(),
            deadline,
            visit_starts_at: updated.visit_starts_at,
        };
        outbox::enqueue(conn, crate::SERVICE, &event, &EventContext::default()).await?;
        Ok(())
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
            PaymentStatus::RequiresPaymentMethod
            | PaymentStatus::CardSaved
            | PaymentStatus::RequiresCapture => self.void(payment.id, actor, context).await,
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
            PaymentStatus::CardSaved => ("card saved", None),
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
