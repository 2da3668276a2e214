//! Scheduled work, safe with several instances running: every job locks the rows it works
//! on with `for update skip locked`, so instances share the rows instead of repeating them,
//! and each change is guarded by the row's status.
//!
//! - every minute: holds that ran out become EXPIRED (the slot is free at once; the payment
//!   is voided on the event), and reminders go out for visits 24 hours away;
//! - every night at 03:00 clinic time: visits that ended are COMPLETED, and terminal
//!   appointments (and waitlist entries) older than the retention period are purged;
//! - every few seconds ([`spawn_waitlist`]): lapsed waitlist offers pass on, freed slots are
//!   offered to the first patient in line, and entries whose range is over end.
//!
//! Each job takes `now`, so tests move the clock instead of waiting.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use polyclinic_contracts::appointments::{
    AppointmentCompletedV1, AppointmentExpiredV1, AppointmentRef, AppointmentReminderV1,
};
use polyclinic_events::{EventContext, outbox};
use polyclinic_http::CancellationToken;
use sqlx::PgPool;

use crate::domain::appointment::Status;
use crate::repo::appointments::{self as repo, Change, Due};

/// Rows one transaction works through.
const BATCH: i64 = 100;

/// The appointments service's jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    pool: PgPool,
    zone: Tz,
    retention: chrono::Duration,
}

impl Jobs {
    pub fn new(pool: PgPool, zone: Tz, retention: chrono::Duration) -> Self {
        Self {
            pool,
            zone,
            retention,
        }
    }

    /// Expires every hold that ran out by `now`. Returns how many.
    pub async fn expire_holds(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let reason = "the hold ran out before the payment was authorised";
        self.sweep(
            Due::HoldExpired,
            now,
            Status::Expired,
            Some(reason),
            |appointment| Event::Expired(AppointmentExpiredV1 { appointment }),
        )
        .await
    }

    /// Completes every scheduled visit that ended by `now`. Returns how many.
    pub async fn complete_ended(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        self.sweep(Due::Ended, now, Status::Completed, None, |appointment| {
            Event::Completed(AppointmentCompletedV1 { appointment })
        })
        .await
    }

    /// Announces the reminder of every scheduled visit starting within 24 hours of `now`,
    /// once per visit (again after a reschedule). Returns how many.
    pub async fn send_reminders(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due = repo::lock_due(&mut tx, Due::Reminder, now, BATCH).await?;
            for appointment in &due {
                repo::mark_reminded(&mut tx, appointment.id).await?;
                let reminder = AppointmentReminderV1 {
                    appointment: appointment.reference(),
                };
                outbox::enqueue(&mut tx, crate::SERVICE, &reminder, &EventContext::default())
                    .await?;
            }
            tx.commit().await?;
            total += due.len();
            if due.len() < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Deletes terminal appointments unchanged for the retention period, and waitlist
    /// entries out of line as long, with their offers. Returns how many appointments.
    pub async fn purge(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let before = now - self.retention;
        crate::repo::waitlist::purge_ended(&self.pool, before).await?;
        Ok(repo::purge_terminal(&self.pool, before).await?)
    }

    /// Moves every appointment that is `due` at `now` to `to`, announcing each.
    async fn sweep(
        &self,
        due: Due,
        now: DateTime<Utc>,
        to: Status,
        reason: Option<&str>,
        event: fn(AppointmentRef) -> Event,
    ) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows = repo::lock_due(&mut tx, due, now, BATCH).await?;
            for appointment in &rows {
                let change = Change {
                    reason,
                    ..Change::default()
                };
                let changed = repo::change_status(&mut tx, appointment, to, change).await?;
                event(changed.reference()).enqueue(&mut tx).await?;
            }
            tx.commit().await?;
            total += rows.len();
            if rows.len() < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Runs the jobs until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) {
        let minutely = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = Utc::now();
                report(
                    "expire-holds",
                    minutely.expire_holds(now).await.map(|n| n as u64),
                );
                report(
                    "reminders",
                    minutely.send_reminders(now).await.map(|n| n as u64),
                );
            }
        });
        tokio::spawn(async move {
            loop {
                let wait = until_next(Utc::now(), self.zone, NIGHTLY);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let now = Utc::now();
                report(
                    "complete-ended",
                    self.complete_ended(now).await.map(|n| n as u64),
                );
                report("purge", self.purge(now).await);
            }
        });
    }
}

/// How often the waitlist's work runs: a freed slot is offered within this long.
const WAITLIST_EVERY: Duration = Duration::from_secs(5);

/// Runs the waitlist's work until `shutdown`: lapsed offers close (their slots pass on),
/// openings become offers, and entries whose range is over end.
pub fn spawn_waitlist(
    booking: std::sync::Arc<crate::booking::Booking>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WAITLIST_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Utc::now();
            report(
                "waitlist-expire-offers",
                booking.expire_offers(now).await.map(|n| n as u64),
            );
            report(
                "waitlist-offers",
                booking.offer_openings(now).await.map(|n| n as u64),
            );
            report(
                "waitlist-end-entries",
                booking.end_lapsed_entries(now).await,
            );
        }
    });
}

/// The events the sweeping jobs write.
enum Event {
    Expired(AppointmentExpiredV1),
    Completed(AppointmentCompletedV1),
}

impl Event {
    async fn enqueue(&self, conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
        let context = EventContext::default();
        match self {
            Event::Expired(event) => outbox::enqueue(conn, crate::SERVICE, event, &context).await?,
            Event::Completed(event) => {
                outbox::enqueue(conn, crate::SERVICE, event, &context).await?
            }
        };
        Ok(())
    }
}

/// When the nightly jobs run, in clinic time.
const NIGHTLY: NaiveTime = match NaiveTime::from_hms_opt(3, 0, 0) {
    Some(time) => time,
    None => NaiveTime::MIN,
};

/// How long from `now` until the next `at` local time in `zone`.
fn until_next(now: DateTime<Utc>, zone: Tz, at: NaiveTime) -> Duration {
    let today = now.with_timezone(&zone).date_naive();
    let next = [
        today,
        today + chrono::Duration::days(1),
        today + chrono::Duration::days(2),
    ]
    .into_iter()
    .filter_map(|date| zone.from_local_datetime(&date.and_time(at)).earliest())
    .map(|local| local.with_timezone(&Utc))
    .find(|instant| *instant > now)
    .unwrap_or(now + chrono::Duration::hours(24));
    (next - now).to_std().unwrap_or(Duration::from_secs(3600))
}

fn report(job: &str, outcome: anyhow::Result<u64>) {
    match outcome {
        Ok(0) => {}
        Ok(count) => tracing::info!(%job, count, "job done"),
        Err(err) => {
            tracing::error!(%job, error = %format!("{err:#}"), "job failed; it runs again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nightly_run_is_the_next_three_oclock_in_the_clinics_zone() {
        let zone = chrono_tz::Europe::Berlin;
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        // 01:00 local in winter: two hours to go.
        assert_eq!(
            until_next(at("2027-01-10T00:00:00Z"), zone, NIGHTLY),
            Duration::from_secs(2 * 3600)
        );
        // Just after 03:00 local: nearly a day.
        assert_eq!(
            until_next(at("2027-01-10T02:00:01Z"), zone, NIGHTLY),
            Duration::from_secs(24 * 3600 - 1)
        );
    }
}
