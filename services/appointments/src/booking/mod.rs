//! The booking flows: what handlers, consumers and jobs call. Each flow checks the rules,
//! writes its change with the history row and the event announcing it in one transaction,
//! and asks other services what it must (identity for fees, rooms and nurses; payments for
//! the booking's payment and its capture).
//!
//! Compensation runs through events: an expired, rejected or cancelled appointment is
//! announced, and the payments service voids or refunds its payment as the payment's state
//! requires. The outbox makes sure that announcement is never lost.

mod availability;
mod lifecycle;
mod reserve;
mod time_off;
mod waitlist;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use polyclinic_client::{CallContext, ClientError};
use polyclinic_contracts::DoctorId;
use polyclinic_contracts::Event;
use polyclinic_events::{EventContext, outbox};
use polyclinic_locks::{LockGuard, Locks};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use self::lifecycle::{Staffing, cancel_lapsed, mark_paid, visible_to};
pub use self::reserve::{Reservation, ReserveRequest};
pub use self::waitlist::Standing;
use crate::domain::appointment::{Actor, Policy, Status};
use crate::domain::schedule::{Calendar, SlotError};
use crate::domain::waitlist::WaitlistPolicy;
use crate::peers::Peers;
use crate::repo::appointments::{Overlap, WriteError};
use crate::repo::schedules;

/// Why a booking flow refused.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("no such appointment")]
    NotFound,
    #[error("no such doctor")]
    DoctorNotFound,
    #[error("{0}")]
    Slot(#[from] SlotError),
    #[error("that slot is taken")]
    SlotTaken,
    #[error("you already hold {0} unpaid reservations; pay or cancel one first")]
    PendingLimit(i64),
    #[error("the appointment is {0}; that is not possible now")]
    WrongState(Status),
    #[error("it is too late to change this appointment; please call the clinic")]
    TooLate,
    #[error("the appointment has not started yet")]
    NotStarted,
    #[error("{0}")]
    InvalidRoom(&'static str),
    #[error("{0}")]
    InvalidNurse(&'static str),
    /// A patient booking for someone else, or an admin for no one.
    #[error("{0}")]
    PatientNotYours(&'static str),
    /// An admin booking for someone who is not an active patient.
    #[error("{0}")]
    PatientNotFound(&'static str),
    #[error("the room is taken at that time")]
    RoomTaken,
    #[error("the nurse is taken at that time")]
    NurseTaken,
    #[error("your role does not allow this")]
    Forbidden,
    #[error("the payment refused: {0}")]
    PaymentRefused(String),
    #[error("{0} is unavailable; nothing was changed, please try again")]
    PeerUnavailable(&'static str),
    #[error("no doctor of the directory has that specialization")]
    UnknownSpecialization,
    #[error("you are already in {0} waitlists; leave one first")]
    WaitlistLimit(i64),
    #[error("you are already waiting for this doctor at overlapping times")]
    AlreadyWaiting,
    #[error("no such waitlist entry")]
    EntryNotFound,
    #[error("this waitlist entry is no longer in line")]
    EntryClosed,
    #[error("the offer has lapsed; the slot passed to the next patient in line")]
    OfferLapsed,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for BookingError {
    fn from(err: sqlx::Error) -> Self {
        BookingError::Unexpected(err.into())
    }
}

impl From<WriteError> for BookingError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Overlap(Overlap::Doctor) => BookingError::SlotTaken,
            WriteError::Overlap(Overlap::Room) => BookingError::RoomTaken,
            WriteError::Overlap(Overlap::Nurse) => BookingError::NurseTaken,
            WriteError::Database(err) => err.into(),
        }
    }
}

/// A failed call to `service`.
fn unavailable(service: &'static str, err: ClientError) -> BookingError {
    tracing::warn!(%service, error = %err, "a call to another service failed");
    BookingError::PeerUnavailable(service)
}

/// A failed call to the payments service: its refusals (a lapsed authorisation, say) are
/// reported as such; anything else means it could not be asked.
fn payment_error(err: ClientError) -> BookingError {
    match &err {
        ClientError::Status { status, body, .. } if status.is_client_error() => {
            BookingError::PaymentRefused(body["detail"].as_str().unwrap_or("refused").to_owned())
        }
        _ => unavailable("the payments service", err),
    }
}

/// Who is asking, and what their calls carry.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub id: Uuid,
    pub actor: Actor,
    pub call: CallContext<'a>,
}

impl Caller<'_> {
    /// The event context of what this caller causes.
    pub fn events(&self) -> EventContext {
        EventContext {
            correlation_id: self.call.request_id.map(str::to_owned),
            trace: self.call.trace.to_owned(),
        }
    }
}

/// How long a slot lock outlives a holder that vanished (Redis backend).
const SLOT_LOCK_TTL: Duration = Duration::from_secs(10);

/// The booking flows and what they need.
#[derive(Debug, Clone)]
pub struct Booking {
    pub(crate) pool: PgPool,
    pub(crate) locks: Locks,
    pub(crate) peers: Arc<Peers>,
    pub(crate) policy: Policy,
    pub(crate) waitlist: WaitlistPolicy,
    pub(crate) zone: Tz,
}

impl Booking {
    pub fn new(
        pool: PgPool,
        locks: Locks,
        peers: Arc<Peers>,
        (policy, waitlist): (Policy, WaitlistPolicy),
        zone: Tz,
    ) -> Self {
        Self {
            pool,
            locks,
            peers,
            policy,
            waitlist,
            zone,
        }
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    pub fn locks(&self) -> &Locks {
        &self.locks
    }

    /// The lock on one doctor's slot. The lock only spares the database the contention of
    /// racing writers; the exclusion constraint decides. `Ok(None)`: someone else holds it.
    /// When the lock backend is down the flow goes on without it.
    async fn lock_slot(
        &self,
        doctor_id: DoctorId,
        starts_at: DateTime<Utc>,
    ) -> Result<Option<Option<LockGuard>>, BookingError> {
        let key = format!("appointments:slot:{doctor_id}:{}", starts_at.timestamp());
        match self.locks.try_acquire(&key, SLOT_LOCK_TTL).await {
            Ok(Some(guard)) => Ok(Some(Some(guard))),
            Ok(None) => Ok(None),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "the lock backend is unavailable; relying on the database alone");
                Ok(Some(None))
            }
        }
    }

    /// Checks that the doctor offers a slot starting at `starts_at` that can still be booked.
    async fn check_slot(
        &self,
        doctor_id: DoctorId,
        starts_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<crate::domain::schedule::Slot, BookingError> {
        let (template, rules) = schedules::calendar_parts(&self.pool, doctor_id.into()).await?;
        let calendar = Calendar {
            template: &template,
            unavailability: &rules,
            zone: self.zone,
        };
        Ok(calendar.slot_at(starts_at, now, self.policy.notice)?)
    }
}

async fn release(guard: Option<LockGuard>) {
    if let Some(guard) = guard
        && let Err(err) = guard.release().await
    {
        tracing::warn!(error = %format!("{err:#}"), "releasing a slot lock failed; it expires on its own");
    }
}

/// Writes `event` to the outbox in the caller's transaction.
async fn announce<E: Event>(
    conn: &mut PgConnection,
    event: &E,
    context: &EventContext,
) -> Result<(), BookingError> {
    outbox::enqueue(conn, crate::SERVICE, event, context).await?;
    Ok(())
}
