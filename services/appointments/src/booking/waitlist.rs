//! The waitlist: patients join a line for a doctor (or a specialization) and a window;
//! when a matching slot frees, the matcher offers it to the first patient in line by holding
//! it as an OFFERED appointment for `waitlist.offer_minutes`; the patient claims it (it then
//! books and pays like any reservation) or the offer lapses and passes to the next in line.
//!
//! Every move that frees a slot (a cancellation, an expired hold or offer, a rejection, a
//! reschedule) writes an opening in its own transaction (`repo::appointments`), as do time
//! off lifted, new hours and a patient joining; the matcher works through openings one
//! instance at a time (an advisory lock), so the line's order holds across instances. The
//! exclusion constraint still decides who gets a slot: a reservation racing an offer, two
//! claims, a claim racing the expiry all end with the slot held by one appointment at most.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use polyclinic_client::CallContext;
use polyclinic_contracts::appointments::{
    AppointmentClaimedV1, AppointmentOfferExpiredV1, AppointmentOfferedV1,
};
use polyclinic_contracts::{AppointmentId, DoctorId, PatientId};
use polyclinic_events::EventContext;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Booking, BookingError, Caller, Reservation, announce, payment_error, unavailable};
use crate::domain::appointment::{Actor, Status};
use crate::domain::schedule::SlotState;
use crate::domain::waitlist::{EntryStatus, OfferStatus, Target, WaitlistPolicy, Window};
use crate::peers::Doctor;
use crate::repo::appointments::{self as repo, AppointmentRow, Change, Due, NewAppointment};
use crate::repo::waitlist::{self as line, EntryRow, OfferRow, Opening};

/// Openings one matcher transaction takes.
const OPENINGS: i64 = 100;
/// Entries the matcher considers for one doctor (the head of the line).
const LINE: i64 = 500;
/// Offers one expiry transaction closes.
const BATCH: i64 = 100;

/// An entry with where it stands: its place in line while it is in one, and its open offer.
#[derive(Debug, Clone)]
pub struct Standing {
    pub entry: EntryRow,
    /// 1 for the first in line; `None` once out of line.
    pub position: Option<i64>,
    pub offer: Option<OfferRow>,
}

/// How an offer closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// It lapsed unclaimed.
    Expired,
    /// The patient turned it down.
    Declined,
    /// The clinic took the slot back, or the patient left the line.
    Withdrawn,
}

/// The first instant of local `date` in `zone` (a date whose midnight does not exist
/// starts at its first hour that does).
fn start_of(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    (0..4)
        .filter_map(|hour| {
            zone.from_local_datetime(&date.and_time(NaiveTime::from_hms_opt(hour, 0, 0)?))
                .earliest()
        })
        .next()
        .map(|local| local.with_timezone(&Utc))
        .unwrap_or_else(|| date.and_time(NaiveTime::MIN).and_utc())
}

/// Closes the open offer that `appointment` (OFFERED, locked) stands for: the slot is freed
/// (an opening for the next in line), the offer and its entry record how it ended, and the
/// event tells the patient. At `now` in `zone`, an entry whose range is not over is back in
/// line, and its whole window is looked at again: slots that freed while it held the offer
/// passed it by.
pub(crate) async fn close_offer(
    conn: &mut PgConnection,
    appointment: &AppointmentRow,
    how: Closing,
    actor: Option<Uuid>,
    (zone, now): (Tz, DateTime<Utc>),
    context: &EventContext,
) -> Result<AppointmentRow, BookingError> {
    let (to, reason, offer_status) = match how {
        Closing::Expired => (
            Status::Expired,
            "the offer lapsed unclaimed",
            OfferStatus::Expired,
        ),
        Closing::Declined => (
            Status::Cancelled,
            "the patient declined the offer",
            OfferStatus::Declined,
        ),
        Closing::Withdrawn => (
            Status::Cancelled,
            "the offer was withdrawn",
            OfferStatus::Withdrawn,
        ),
    };
    let closed = repo::change_status(
        conn,
        appointment,
        to,
        Change {
            reason: Some(reason),
            actor,
            ..Change::default()
        },
    )
    .await?;
    let offer = line::lock_offer_of(conn, appointment.id).await?;
    let entry_id = offer.as_ref().map_or(Uuid::nil(), |offer| offer.entry_id);
    if let Some(offer) = &offer {
        line::decide_offer(conn, offer.id, offer_status).await?;
        if let Some(entry) = line::lock_entry(conn, offer.entry_id).await?
            && entry.status == EntryStatus::Offered
        {
            let window = entry.window();
            if window.is_over(now.with_timezone(&zone).date_naive()) {
                line::set_entry_status(conn, entry.id, EntryStatus::Ended).await?;
            } else {
                line::set_entry_status(conn, entry.id, EntryStatus::Waiting).await?;
                let (from, until) = window_instants(zone, &window);
                line::insert_opening_for(conn, &entry.target(), from.max(now), until).await?;
            }
        }
    }
    let event = AppointmentOfferExpiredV1 {
        appointment: closed.reference(),
        waitlist_entry_id: entry_id,
        outcome: offer_status.as_str().to_owned(),
    };
    announce(conn, &event, context).await?;
    Ok(closed)
}

/// The instants a window's dates span, in `zone`.
fn window_instants(zone: Tz, window: &Window) -> (DateTime<Utc>, DateTime<Utc>) {
    let after = window
        .to()
        .checked_add_days(Days::new(1))
        .unwrap_or(window.to());
    (start_of(zone, window.from()), start_of(zone, after))
}

impl Booking {
    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.zone).date_naive()
    }

    /// The doctor of the directory, asked without a user (the directory is public).
    async fn directory_doctor(&self, id: DoctorId) -> Result<Option<Doctor>, BookingError> {
        self.peers
            .doctor_cached(id, CallContext::default())
            .await
            .map_err(|err| unavailable("the identity service", err))
    }

    /// Puts the patient in line for `target` within `window`: up to the configured number
    /// of entries at once, and not twice for the same doctor at overlapping times.
    pub async fn join_waitlist(
        &self,
        caller: Caller<'_>,
        target: Target,
        window: Window,
    ) -> Result<EntryRow, BookingError> {
        if caller.actor != Actor::Patient {
            return Err(BookingError::Forbidden);
        }
        let patient_id = PatientId::from(caller.id);
        // Who the line is for, as the directory knows them now.
        let (target, doctors) = match target {
            Target::Doctor(id) => {
                self.peers
                    .doctor(id, caller.call)
                    .await
                    .map_err(|err| unavailable("the identity service", err))?
                    .ok_or(BookingError::DoctorNotFound)?;
                (Target::Doctor(id), vec![id])
            }
            Target::Specialization(name) => {
                let name = name.trim().to_lowercase();
                let doctors: Vec<DoctorId> = self
                    .peers
                    .doctors_specialized_in(&name, caller.call)
                    .await
                    .map_err(|err| unavailable("the identity service", err))?
                    .into_iter()
                    .filter(|doctor| doctor.specialization.trim().to_lowercase() == name)
                    .map(|doctor| doctor.id)
                    .collect();
                if doctors.is_empty() {
                    return Err(BookingError::UnknownSpecialization);
                }
                (Target::Specialization(name), doctors)
            }
        };
        let mut tx = self.pool.begin().await?;
        line::lock_patient(&mut tx, patient_id).await?;
        let active = line::active_of_patient(&mut tx, patient_id).await?;
        if active.len() as i64 >= self.waitlist.max_entries {
            return Err(BookingError::WaitlistLimit(self.waitlist.max_entries));
        }
        if active
            .iter()
            .any(|entry| entry.target() == target && entry.window().overlaps(&window))
        {
            return Err(BookingError::AlreadyWaiting);
        }
        let entry = line::insert_entry(&mut tx, patient_id, &target, &window).await?;
        // A slot already free in the window is offered at once.
        let (from, until) = window_instants(self.zone, &window);
        for doctor in doctors {
            line::insert_opening(&mut tx, doctor, from, until).await?;
        }
        tx.commit().await?;
        Ok(entry)
    }

    /// Takes the patient's entry out of line (an open offer is withdrawn, its slot passes
    /// on). An admin may take anyone's out.
    pub async fn leave_waitlist(
        &self,
        caller: Caller<'_>,
        entry_id: Uuid,
    ) -> Result<EntryRow, BookingError> {
        let mine = |entry: &EntryRow| {
            caller.actor == Actor::Admin
                || (caller.actor == Actor::Patient && entry.patient_id == caller.id)
        };
        // Rows are locked in the order every flow takes them (the offer's appointment, then
        // the entry), so leaving never deadlocks with a claim or an expiry. An offer made
        // between the look and the lock is withdrawn on the next round.
        for _ in 0..3 {
            let now = Utc::now();
            let entry = match line::find_entry(&self.pool, entry_id).await? {
                Some(entry) if mine(&entry) => entry,
                _ => return Err(BookingError::EntryNotFound),
            };
            if !entry.status.is_active() {
                return Err(BookingError::EntryClosed);
            }
            let mut tx = self.pool.begin().await?;
            for offer in line::open_offers(&self.pool, &[entry.id]).await? {
                if let Some(offered) = repo::lock(&mut tx, offer.appointment_id).await?
                    && offered.status == Status::Offered
                {
                    // Leaving one's own line turns its offer down.
                    let how = match caller.actor {
                        Actor::Patient => Closing::Declined,
                        _ => Closing::Withdrawn,
                    };
                    close_offer(
                        &mut tx,
                        &offered,
                        how,
                        Some(caller.id),
                        (self.zone, now),
                        &caller.events(),
                    )
                    .await?;
                }
            }
            let Some(locked) = line::lock_entry(&mut tx, entry.id).await? else {
                return Err(BookingError::EntryNotFound);
            };
            match locked.status {
                EntryStatus::Waiting => {
                    line::set_entry_status(&mut tx, entry.id, EntryStatus::Left).await?;
                    tx.commit().await?;
                    return Ok(EntryRow {
                        status: EntryStatus::Left,
                        ..locked
                    });
                }
                // Offered meanwhile: start again, withdrawing that offer too.
                EntryStatus::Offered => continue,
                _ => return Err(BookingError::EntryClosed),
            }
        }
        Err(BookingError::PeerUnavailable("the waitlist"))
    }

    pub fn waitlist_policy(&self) -> &WaitlistPolicy {
        &self.waitlist
    }

    /// The entry's place in line (1 is first), while it is in one.
    pub async fn position(&self, entry: &EntryRow) -> Result<Option<i64>, BookingError> {
        if !entry.status.is_active() {
            return Ok(None);
        }
        // A doctor's line is served together with their specialization's.
        let specialization = match entry.doctor_id {
            Some(doctor) => self
                .directory_doctor(doctor)
                .await
                .ok()
                .flatten()
                .map(|doctor| doctor.specialization),
            None => None,
        };
        Ok(Some(
            line::ahead_of(&self.pool, entry, specialization.as_deref()).await? + 1,
        ))
    }

    /// The patient's entries, newest first, each with its place in line and open offer.
    pub async fn my_waitlist(&self, caller: Caller<'_>) -> Result<Vec<Standing>, BookingError> {
        if caller.actor != Actor::Patient {
            return Err(BookingError::Forbidden);
        }
        let entries = line::of_patient(&self.pool, caller.id.into(), 50).await?;
        self.standings(entries).await
    }

    /// The line for a doctor (their own entries and those of their specialization), in
    /// order: what admins see.
    pub async fn waitlist_of(&self, doctor_id: DoctorId) -> Result<Vec<Standing>, BookingError> {
        let doctor = self
            .directory_doctor(doctor_id)
            .await?
            .ok_or(BookingError::DoctorNotFound)?;
        let mut conn = self.pool.acquire().await?;
        let entries = line::in_line_for(
            &mut conn,
            doctor_id,
            Some(&doctor.specialization),
            None,
            LINE,
        )
        .await?;
        drop(conn);
        let offers = self.offers_of(&entries).await?;
        Ok(entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let offer = offers
                    .iter()
                    .find(|offer| offer.entry_id == entry.id)
                    .cloned();
                Standing {
                    position: Some(index as i64 + 1),
                    offer,
                    entry,
                }
            })
            .collect())
    }

    async fn offers_of(&self, entries: &[EntryRow]) -> Result<Vec<OfferRow>, BookingError> {
        let ids: Vec<Uuid> = entries
            .iter()
            .filter(|entry| entry.status == EntryStatus::Offered)
            .map(|entry| entry.id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(line::open_offers(&self.pool, &ids).await?)
    }

    async fn standings(&self, entries: Vec<EntryRow>) -> Result<Vec<Standing>, BookingError> {
        let offers = self.offers_of(&entries).await?;
        let mut standings = Vec::with_capacity(entries.len());
        for entry in entries {
            let position = self.position(&entry).await?;
            let offer = offers
                .iter()
                .find(|offer| offer.entry_id == entry.id)
                .cloned();
            standings.push(Standing {
                entry,
                position,
                offer,
            });
        }
        Ok(standings)
    }

    /// The patient claims the slot offered to them: it becomes their reservation (held for
    /// the usual time while they pay), with its payment. Too late once the offer lapsed.
    ///
    /// The payment is made first, while the offer still holds the slot: a payments service
    /// that cannot be reached leaves the offer as it was, to be claimed again. A payment made
    /// for an offer that then lapses is voided when the offer's end is announced.
    pub async fn claim(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
    ) -> Result<Reservation, BookingError> {
        if caller.actor != Actor::Patient {
            return Err(BookingError::Forbidden);
        }
        // What the claim may do, looked at before anything is asked of the payments service.
        let seen = self.find(caller, id).await?;
        let offer = line::find_offer_of(&self.pool, id).await?;
        Self::claimable(&seen, offer.as_ref(), Utc::now())?;
        let pending = {
            let mut conn = self.pool.acquire().await?;
            repo::pending_count(&mut conn, seen.patient_id).await?
        };
        if pending >= self.policy.max_pending {
            return Err(BookingError::PendingLimit(pending));
        }
        let payment = self
            .peers
            .create_payment(id, caller.call)
            .await
            .map_err(payment_error)?;

        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let current = Self::lock_for(&mut tx, &caller, id).await?;
        let offer = line::lock_offer_of(&mut tx, id).await?;
        let offer = Self::claimable(&current, offer.as_ref(), now)?.clone();
        repo::lock_patient(&mut tx, current.patient_id).await?;
        let pending = repo::pending_count(&mut tx, current.patient_id).await?;
        if pending >= self.policy.max_pending {
            return Err(BookingError::PendingLimit(pending));
        }
        let hold_until = now + self.policy.hold;
        let claimed = repo::change_status(
            &mut tx,
            &current,
            Status::Pending,
            Change {
                actor: Some(caller.id),
                hold_until: Some(hold_until),
                payment_id: Some(payment.id),
                ..Change::default()
            },
        )
        .await?;
        line::decide_offer(&mut tx, offer.id, OfferStatus::Claimed).await?;
        line::set_entry_status(&mut tx, offer.entry_id, EntryStatus::Booked).await?;
        let event = AppointmentClaimedV1 {
            appointment: claimed.reference(),
            waitlist_entry_id: offer.entry_id,
            hold_expires_at: hold_until,
        };
        announce(&mut tx, &event, &caller.events()).await?;
        tx.commit().await?;
        Ok(Reservation {
            appointment: claimed,
            payment,
        })
    }

    /// The open offer `appointment` stands for, if it can be claimed at `now`.
    fn claimable<'o>(
        appointment: &AppointmentRow,
        offer: Option<&'o OfferRow>,
        now: DateTime<Utc>,
    ) -> Result<&'o OfferRow, BookingError> {
        let offer = match (appointment.status, offer) {
            (Status::Offered, Some(offer)) if offer.status == OfferStatus::Open => offer,
            // Claimed already (a second click): the reservation stands as it is.
            (_, Some(offer)) if offer.status == OfferStatus::Claimed => {
                return Err(BookingError::WrongState(appointment.status));
            }
            // It lapsed, or was declined or withdrawn, before this claim.
            (_, Some(_)) => return Err(BookingError::OfferLapsed),
            _ => return Err(BookingError::WrongState(appointment.status)),
        };
        // Past its time, though the expiry job has not closed it yet.
        if appointment
            .hold_expires_at
            .is_none_or(|expires| expires <= now)
        {
            return Err(BookingError::OfferLapsed);
        }
        Ok(offer)
    }

    /// Works through the openings: each free slot in them goes, as an offer, to the first
    /// patient in line whose window it fits, who was not offered it before and is not busy
    /// then. One instance at a time. Returns how many offers were made.
    pub async fn offer_openings(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut offered = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            line::lock_matcher(&mut tx).await?;
            let openings = line::take_openings(&mut tx, OPENINGS).await?;
            if openings.is_empty() {
                tx.commit().await?;
                return Ok(offered);
            }
            let mut failed = 0;
            for opening in &openings {
                // Each opening in a savepoint: one that fails (its doctor's calendar cannot be
                // read, the directory is away) is put back for a later round, and the others
                // keep their offers.
                let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
                match self.offer_target(&mut attempt, opening, now).await {
                    Ok(count) => {
                        attempt.commit().await?;
                        offered += count;
                    }
                    Err(err) => {
                        attempt.rollback().await?;
                        tracing::warn!(opening = ?opening, error = %err, "an opening could not be offered; it is tried again later");
                        line::return_opening(&mut tx, opening).await?;
                        failed += 1;
                    }
                }
            }
            tx.commit().await?;
            // A short batch was the last; one that failed whole waits for the next round.
            if openings.len() < OPENINGS as usize || failed == openings.len() {
                return Ok(offered);
            }
        }
    }

    /// Offers an opening of one doctor, or of every doctor of a specialization.
    async fn offer_target(
        &self,
        conn: &mut PgConnection,
        opening: &Opening,
        now: DateTime<Utc>,
    ) -> Result<usize, BookingError> {
        if opening.doctor_id.is_some() {
            return self.offer_opening(conn, opening, now).await;
        }
        let Some(name) = &opening.specialization else {
            return Ok(0);
        };
        let doctors = self
            .peers
            .doctors_specialized_in(name, CallContext::default())
            .await
            .map_err(|err| unavailable("the identity service", err))?;
        let mut offered = 0;
        for doctor in doctors
            .iter()
            .filter(|doctor| doctor.specialization.trim().to_lowercase() == *name)
        {
            offered += self
                .offer_opening(conn, &opening.of_doctor(doctor.id), now)
                .await?;
        }
        Ok(offered)
    }

    async fn offer_opening(
        &self,
        tx: &mut PgConnection,
        opening: &Opening,
        now: DateTime<Utc>,
    ) -> Result<usize, BookingError> {
        let Some(doctor_id) = opening.doctor_id else {
            return Ok(0);
        };
        let Some(doctor) = self.directory_doctor(doctor_id).await? else {
            // Not (or no longer) a doctor of the directory: nothing to offer.
            return Ok(0);
        };
        let mut entries: Vec<EntryRow> =
            line::in_line_for(tx, doctor_id, Some(&doctor.specialization), None, LINE)
                .await?
                .into_iter()
                .filter(|entry| entry.status == EntryStatus::Waiting)
                .collect();
        let today = self.today(now);
        let first = entries.iter().map(|entry| entry.from_date).min();
        let last = entries.iter().map(|entry| entry.to_date).max();
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(0);
        };
        // The local dates both the opening and some entry cover, from today on.
        let from = first
            .max(today)
            .max(self.today(opening.starts_from) - Days::new(1));
        let to = last.min(self.today(opening.starts_until) + Days::new(1));
        if from > to {
            return Ok(0);
        }
        let slots = self.slots_at(doctor_id, from, to, now).await?;
        let mut offered = 0;
        for (slot, state) in slots {
            let (blocked_from, blocked_until) = slot.blocked();
            if state != SlotState::Free
                || blocked_until <= opening.starts_from
                || opening.starts_until <= blocked_from
            {
                continue;
            }
            let fitting: Vec<Uuid> = entries
                .iter()
                .filter(|entry| entry.window().fits(&slot))
                .map(|entry| entry.id)
                .collect();
            if fitting.is_empty() {
                continue;
            }
            let before = line::offered_before(tx, &fitting, doctor_id, slot.starts_at).await?;
            for entry_id in fitting.iter().filter(|id| !before.contains(id)) {
                let Some(entry) = entries.iter().find(|entry| entry.id == *entry_id).cloned()
                else {
                    continue;
                };
                if repo::patient_busy(tx, entry.patient_id, blocked_from, blocked_until).await? {
                    continue;
                }
                let new = NewAppointment {
                    patient_id: entry.patient_id,
                    doctor_id,
                    starts_at: slot.starts_at,
                    ends_at: slot.ends_at,
                    reason: String::new(),
                    notes: String::new(),
                    fee: doctor.consultation_fee.clone(),
                    hold_expires_at: now + self.waitlist.offer,
                    buffers: slot.buffers,
                    created_by: Uuid::nil(),
                };
                // A savepoint: a refused insert leaves the matcher's transaction usable.
                let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
                // The entry may have left the line (or ended) since it was read.
                let still_waiting = line::lock_entry(&mut attempt, entry.id)
                    .await?
                    .is_some_and(|locked| locked.status == EntryStatus::Waiting);
                if !still_waiting {
                    entries.retain(|waiting| waiting.id != entry.id);
                    continue;
                }
                let appointment = match repo::insert(&mut attempt, &new, Status::Offered).await {
                    Ok(appointment) => appointment,
                    // Taken meanwhile (a reservation won the race): on to the next slot.
                    Err(repo::WriteError::Overlap(_)) => break,
                    Err(err) => return Err(err.into()),
                };
                line::insert_offer(
                    &mut attempt,
                    entry.id,
                    appointment.id,
                    doctor_id,
                    slot.starts_at,
                    new.hold_expires_at,
                )
                .await?;
                line::set_entry_status(&mut attempt, entry.id, EntryStatus::Offered).await?;
                let event = AppointmentOfferedV1 {
                    appointment: appointment.reference(),
                    waitlist_entry_id: entry.id,
                    offer_expires_at: new.hold_expires_at,
                };
                announce(&mut attempt, &event, &EventContext::default()).await?;
                attempt.commit().await?;
                entries.retain(|waiting| waiting.id != entry.id);
                offered += 1;
                break;
            }
        }
        Ok(offered)
    }

    /// Closes every offer that lapsed by `now`: its slot passes to the next in line.
    /// Returns how many.
    pub async fn expire_offers(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due = repo::lock_due(&mut tx, Due::OfferExpired, now, BATCH).await?;
            for appointment in &due {
                close_offer(
                    &mut tx,
                    appointment,
                    Closing::Expired,
                    None,
                    (self.zone, now),
                    &EventContext::default(),
                )
                .await
                .map_err(|err| anyhow::anyhow!("closing the offer {}: {err}", appointment.id))?;
            }
            tx.commit().await?;
            total += due.len();
            if (due.len() as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Ends the entries whose range is over by `now` (clinic time). Returns how many.
    pub async fn end_lapsed_entries(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let mut conn = self.pool.acquire().await?;
        Ok(line::end_lapsed(&mut conn, self.today(now)).await?)
    }
}
