//! `payments` and `payment_history`: a payment as stored, and every query on the two tables.

use chrono::{DateTime, Utc};
use polyclinic_contracts::payments::PaymentRef;
use polyclinic_contracts::{AppointmentId, PatientId, PaymentId};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::intent::PaymentStatus;

impl TryFrom<String> for PaymentStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        PaymentStatus::parse(&text).ok_or_else(|| format!("unknown payment status {text}"))
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: PaymentId,
    pub appointment_id: AppointmentId,
    pub patient_id: PatientId,
    pub amount: i64,
    pub currency: String,
    #[sqlx(try_from = "String")]
    pub status: PaymentStatus,
    /// `simulated` or `stripe`.
    pub provider: String,
    /// The PaymentIntent; none yet while a far-ahead visit's card is only saved.
    pub provider_intent_id: Option<String>,
    pub client_secret: Option<String>,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub authorized_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub visit_starts_at: Option<DateTime<Utc>>,
    pub customer_id: Option<String>,
    /// The SetupIntent that saves the card of a visit booked far ahead.
    pub setup_intent_id: Option<String>,
    pub payment_method: Option<String>,
    pub authorize_at: Option<DateTime<Utc>>,
    pub capture_requested_at: Option<DateTime<Utc>>,
    pub card_deadline: Option<DateTime<Utc>>,
}

impl PaymentRow {
    /// The payment as events describe it.
    pub fn reference(&self) -> PaymentRef {
        PaymentRef {
            payment_id: self.id.into(),
            appointment_id: self.appointment_id.into(),
            patient_id: self.patient_id.into(),
            amount: self.amount,
            currency: self.currency.clone(),
        }
    }
}

const COLUMNS: &str =
    "id, appointment_id, patient_id, amount, currency, status, provider, provider_intent_id,
    client_secret, amount_captured, amount_refunded, authorized_at, created_at, updated_at,
    visit_starts_at, customer_id, setup_intent_id, payment_method, authorize_at,
    capture_requested_at, card_deadline";

pub async fn find(conn: impl PgExecutor<'_>, id: PaymentId) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!("select {COLUMNS} from payments where id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The payment, locked until the transaction ends.
pub async fn lock(conn: &mut PgConnection, id: PaymentId) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from payments where id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn find_for_appointment(
    conn: impl PgExecutor<'_>,
    appointment_id: AppointmentId,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from payments where appointment_id = $1"
    ))
    .bind(appointment_id)
    .fetch_optional(conn)
    .await
}

/// The payment of a provider intent (a PaymentIntent or a SetupIntent).
pub async fn find_by_intent(
    conn: impl PgExecutor<'_>,
    intent_id: &str,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from payments where provider_intent_id = $1
         union all
         select {COLUMNS} from payments where setup_intent_id = $1
         limit 1"
    ))
    .bind(intent_id)
    .fetch_optional(conn)
    .await
}

/// A payment about to be stored.
#[derive(Debug)]
pub struct NewPayment<'a> {
    pub appointment_id: AppointmentId,
    pub patient_id: PatientId,
    pub amount: i64,
    pub currency: &'a str,
    pub status: PaymentStatus,
    pub provider: &'a str,
    pub provider_intent_id: Option<&'a str>,
    pub setup_intent_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub customer_id: &'a str,
    pub visit_starts_at: Option<DateTime<Utc>>,
    pub authorize_at: Option<DateTime<Utc>>,
}

/// Stores the payment unless its appointment has one already; returns the appointment's
/// payment and whether it was this one.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewPayment<'_>,
) -> sqlx::Result<(PaymentRow, bool)> {
    let inserted = sqlx::query(
        "insert into payments (id, appointment_id, patient_id, amount, currency, status, provider,
                               provider_intent_id, client_secret, setup_intent_id, customer_id,
                               visit_starts_at, authorize_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         on conflict (appointment_id) do nothing",
    )
    .bind(Uuid::now_v7())
    .bind(new.appointment_id)
    .bind(new.patient_id)
    .bind(new.amount)
    .bind(new.currency)
    .bind(new.status.as_str())
    .bind(new.provider)
    .bind(new.provider_intent_id)
    .bind(new.client_secret)
    .bind(new.setup_intent_id)
    .bind(new.customer_id)
    .bind(new.visit_starts_at)
    .bind(new.authorize_at)
    .execute(&mut *conn)
    .await?;
    let payment = sqlx::query_as(&format!(
        "select {COLUMNS} from payments where appointment_id = $1"
    ))
    .bind(new.appointment_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((payment, inserted.rows_affected() == 1))
}

/// Records the provider's status (and what it has received); the time of the
/// authorisation is kept from the first time the payment reached `requires_capture`.
pub async fn record_status(
    conn: &mut PgConnection,
    id: PaymentId,
    status: PaymentStatus,
    amount_received: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set status = $2, amount_captured = greatest(amount_captured, $3),
                authorized_at = coalesce(authorized_at, case when $2 = 'requires_capture' then $4 end),
                updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(amount_received)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The card of a far-ahead visit is saved: it is authorised at `authorize_at`.
pub async fn record_card_saved(
    conn: &mut PgConnection,
    id: PaymentId,
    payment_method: &str,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set status = 'card_saved', payment_method = $2, updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(payment_method)
    .fetch_one(conn)
    .await
}

/// A new PaymentIntent stands for the payment (an off-session authorisation, or a renewed
/// one), in `status`; a refused one leaves the patient until `card_deadline`.
pub async fn record_intent(
    conn: &mut PgConnection,
    id: PaymentId,
    intent_id: &str,
    client_secret: Option<&str>,
    status: PaymentStatus,
    authorized_at: Option<DateTime<Utc>>,
    card_deadline: Option<DateTime<Utc>>,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set provider_intent_id = $2, client_secret = coalesce($3, client_secret),
                status = $4, authorized_at = $5, card_deadline = $6, updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(intent_id)
    .bind(client_secret)
    .bind(status.as_str())
    .bind(authorized_at)
    .bind(card_deadline)
    .fetch_one(conn)
    .await
}

/// Remembers the card a payment was confirmed with (for its renewal), and that no deadline
/// runs any more.
pub async fn record_payment_method(
    conn: &mut PgConnection,
    id: PaymentId,
    payment_method: Option<&str>,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set payment_method = coalesce($2, payment_method), card_deadline = null,
                updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(payment_method)
    .fetch_one(conn)
    .await
}

/// The clinic approved the visit before its card was authorised: capture follows.
pub async fn request_capture(
    conn: &mut PgConnection,
    id: PaymentId,
    now: DateTime<Utc>,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set capture_requested_at = coalesce(capture_requested_at, $2), updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The visit moved: its start, and when a saved card is authorised.
pub async fn move_visit(
    conn: impl PgExecutor<'_>,
    appointment_id: AppointmentId,
    starts_at: DateTime<Utc>,
    authorize_at: DateTime<Utc>,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!(
        "update payments set visit_starts_at = $2,
                authorize_at = case when setup_intent_id is not null then $3 end,
                updated_at = now()
         where appointment_id = $1 returning {COLUMNS}"
    ))
    .bind(appointment_id)
    .bind(starts_at)
    .bind(authorize_at)
    .fetch_optional(conn)
    .await
}

/// What a payment job looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Saved cards whose authorisation time has come (and captures asked for before an
    /// authorisation that could not be taken with it).
    Authorization,
    /// Authorisations old enough to be renewed before they lapse (`before` is the oldest
    /// `authorized_at` kept), of visits not yet over.
    Renewal { before: DateTime<Utc> },
    /// Refused authorisations whose deadline for another card passed.
    CardDeadline,
}

impl Due {
    /// The condition on a payment row (`$1` is now, `$2` the renewal cutoff).
    fn condition(self) -> &'static str {
        match self {
            // A capture asked for before an authorisation whose own round could not take it
            // is taken with the next round.
            Due::Authorization => {
                "(status = 'card_saved' and authorize_at <= $1)
                 or (status = 'requires_capture' and capture_requested_at is not null)"
            }
            Due::Renewal { .. } => {
                "status = 'requires_capture' and authorized_at <= $2
                 and payment_method is not null and customer_id is not null
                 and coalesce(visit_starts_at, $1) >= $1 - interval '1 day'"
            }
            Due::CardDeadline => "status = 'requires_payment_method' and card_deadline <= $1",
        }
    }

    /// The soonest due first.
    fn order(self) -> &'static str {
        match self {
            Due::Authorization => "authorize_at nulls first, id",
            Due::Renewal { .. } => "authorized_at, id",
            Due::CardDeadline => "card_deadline, id",
        }
    }

    fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Due::Renewal { before } => before,
            _ => now,
        }
    }
}

/// Up to `limit` payments `due` at `now`, oldest first (not locked: each is taken with
/// [`lock_if_due`] in a transaction of its own).
pub async fn due(
    conn: impl PgExecutor<'_>,
    due: Due,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<PaymentId>> {
    sqlx::query_scalar(&format!(
        "select id from payments where {} order by {} limit $3",
        due.condition(),
        due.order()
    ))
    .bind(now)
    .bind(due.cutoff(now))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The payment, locked, if it is still `due` at `now` and no other instance holds it.
pub async fn lock_if_due(
    conn: &mut PgConnection,
    id: PaymentId,
    due: Due,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<PaymentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from payments where id = $3 and {} for update skip locked",
        due.condition()
    ))
    .bind(now)
    .bind(due.cutoff(now))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The patient's customer at `provider`, if they have one.
pub async fn find_customer(
    conn: impl PgExecutor<'_>,
    patient_id: PatientId,
    provider: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select customer_id from payment_customers where patient_id = $1 and provider = $2",
    )
    .bind(patient_id)
    .bind(provider)
    .fetch_optional(conn)
    .await
}

/// Records the patient's customer; the first one recorded stays (a race makes one).
pub async fn insert_customer(
    conn: impl PgExecutor<'_>,
    patient_id: PatientId,
    provider: &str,
    customer_id: &str,
) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "insert into payment_customers (patient_id, provider, customer_id) values ($1, $2, $3)
         on conflict (patient_id) do update set updated_at = now()
         returning customer_id",
    )
    .bind(patient_id)
    .bind(provider)
    .bind(customer_id)
    .fetch_one(conn)
    .await
}

/// Adds `amount` to what is refunded.
pub async fn add_refund(
    conn: &mut PgConnection,
    id: PaymentId,
    amount: i64,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set amount_refunded = amount_refunded + $2, updated_at = now() where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(amount)
    .fetch_one(conn)
    .await
}

/// Sets what is refunded in all.
pub async fn set_refunded(
    conn: &mut PgConnection,
    id: PaymentId,
    total: i64,
) -> sqlx::Result<PaymentRow> {
    sqlx::query_as(&format!(
        "update payments set amount_refunded = $2, updated_at = now() where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(total)
    .fetch_one(conn)
    .await
}

/// Claims up to `limit` open payments (not yet captured or cancelled) unchanged and unchecked
/// since `quiet_since`, least recently checked first, marking them checked at `now`.
pub async fn claim_unsettled(
    conn: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    quiet_since: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(PaymentId, PaymentStatus)>> {
    let claimed: Vec<(PaymentId, String)> = sqlx::query_as(
        "update payments set reconciled_at = $1
         where id in (
             select id from payments
             where status in ('requires_payment_method', 'requires_capture')
               and updated_at <= $2 and coalesce(reconciled_at, created_at) <= $2
             order by coalesce(reconciled_at, created_at)
             limit $3
             for update skip locked)
         returning id, status",
    )
    .bind(now)
    .bind(quiet_since)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    claimed
        .into_iter()
        .map(|(id, status)| {
            PaymentStatus::try_from(status)
                .map(|status| (id, status))
                .map_err(|err| sqlx::Error::Decode(err.into()))
        })
        .collect()
}

/// What the payment list is filtered by.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter {
    pub status: Option<PaymentStatus>,
    pub appointment_id: Option<AppointmentId>,
    pub patient_id: Option<PatientId>,
    /// Only payments created before this one (ids are UUIDv7).
    pub before: Option<PaymentId>,
}

/// Payments matching `filter`, newest first.
pub async fn list(
    conn: impl PgExecutor<'_>,
    filter: Filter,
    limit: usize,
) -> sqlx::Result<Vec<PaymentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS}
         from payments
         where ($1::text is null or status = $1)
           and ($2::uuid is null or appointment_id = $2)
           and ($3::uuid is null or patient_id = $3)
           and ($4::uuid is null or id < $4)
         order by id desc
         limit $5"
    ))
    .bind(filter.status.map(PaymentStatus::as_str))
    .bind(filter.appointment_id)
    .bind(filter.patient_id)
    .bind(filter.before)
    .bind(i64::try_from(limit).unwrap_or(100))
    .fetch_all(conn)
    .await
}

/// How many history rows of `payment` record one of `actions`.
pub async fn count_history(
    conn: &mut PgConnection,
    payment: PaymentId,
    actions: &[&str],
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from payment_history where payment_id = $1 and action = any($2)",
    )
    .bind(payment)
    .bind(actions)
    .fetch_one(conn)
    .await
}

/// One row of a payment's history.
#[derive(Debug)]
pub struct HistoryEntry<'a> {
    pub action: &'a str,
    pub from: Option<PaymentStatus>,
    pub amount: Option<i64>,
    pub detail: Option<&'a str>,
    pub actor: &'a str,
}

/// Writes a history row of `payment` (in its present status).
pub async fn record_history(
    conn: &mut PgConnection,
    payment: &PaymentRow,
    entry: HistoryEntry<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into payment_history (payment_id, action, from_status, to_status, amount, detail, actor)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(payment.id)
    .bind(entry.action)
    .bind(entry.from.map(PaymentStatus::as_str))
    .bind(payment.status.as_str())
    .bind(entry.amount)
    .bind(entry.detail)
    .bind(entry.actor)
    .execute(conn)
    .await?;
    Ok(())
}
