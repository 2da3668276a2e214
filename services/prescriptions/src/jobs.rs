//! The service's scheduled work: completing prescriptions that ran their course, and
//! checkpointing the audit trail.

use std::time::Duration;

use polyclinic_http::CancellationToken;
use sqlx::PgPool;

use crate::repo::audit::{self, Access, Outcome};
use crate::repo::prescriptions;

/// Marks ACTIVE prescriptions whose validity ended before `today` COMPLETED, each with its
/// row in the audit trail (a write by the platform itself). Safe with several instances: the
/// rows are locked and skipped by others. Returns how many.
pub async fn complete_expired(pool: &PgPool, today: chrono::NaiveDate) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let ended = prescriptions::complete_expired(&mut tx, today).await?;
    for prescription in &ended {
        audit::append(
            &mut tx,
            &Access {
                actor_id: "polyclinic-prescriptions",
                actor_role: "SYSTEM",
                action: "prescription.complete",
                patient_id: Some(prescription.patient_id),
                record_id: Some(prescription.record_id),
                entry_id: Some(prescription.id),
                request_id: None,
                outcome: Outcome::Allowed,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ended.len() as u64)
}

/// Runs [`complete_expired`] every hour until `shutdown`.
pub(crate) fn spawn_completion(pool: PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match complete_expired(&pool, chrono::Utc::now().date_naive()).await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::info!(count, "prescriptions that ran their course are completed")
                }
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "completing prescriptions failed; tried again in an hour")
                }
            }
        }
    });
}

/// Checkpoints the audit trail's head every [`audit::CHECKPOINT_EVERY`] until `shutdown`.
pub(crate) fn spawn_checkpoints(pool: PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(audit::CHECKPOINT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = audit::checkpoint(&pool).await {
                tracing::warn!(error = %format!("{err:#}"), "checkpointing the audit trail failed; tried again in a minute");
            }
        }
    });
}
