//! Handing what patients declare about their health (allergies, blood type) to their
//! medical record in the prescriptions service, which alone keeps clinical data.
//!
//! A declaration is queued in `clinical_handoffs` in the same transaction as the account or
//! profile change that carried it, so it is never lost and never half-written; this worker
//! posts it to the prescriptions service's internal route with the identity service's own
//! token (scope `records:declare`) and deletes it once the record has it. It travels only
//! there: never in an event, never in a log line.

use std::sync::Arc;
use std::time::Duration;

use polyclinic_client::{CallContext, ServiceClient, ServiceTokens};
use polyclinic_http::CancellationToken;
use serde_json::json;
use sqlx::PgPool;

use crate::repo::handoffs::{self, Handoff};

/// How often the queue is looked at.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Declarations delivered per round.
const BATCH: i64 = 20;

/// The worker's means: the identity database, and the way to the records.
#[derive(Clone)]
pub struct Handoffs {
    pub pool: PgPool,
    pub client: ServiceClient,
    pub tokens: Arc<ServiceTokens>,
    /// The prescriptions service's base URL.
    pub records: String,
}

impl Handoffs {
    /// Delivers queued declarations until `shutdown`; safe with several instances (rows are
    /// locked and skipped by the others).
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.deliver_due().await {
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "handing declarations to the records failed; tried again shortly")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Delivers what is due now; returns how many reached the records.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let due = handoffs::lock_due(&mut tx, BATCH).await?;
        let mut delivered = 0;
        for handoff in &due {
            match self.deliver(handoff).await {
                Ok(()) => {
                    handoffs::delete(&mut tx, handoff.id).await?;
                    delivered += 1;
                }
                Err(err) => {
                    let delay = backoff(handoff.attempts);
                    tracing::warn!(handoff_id = %handoff.id, attempts = handoff.attempts + 1, error = %err,
                        "a patient's declaration did not reach their record yet");
                    handoffs::retry_later(&mut tx, handoff.id, delay, &err.to_string()).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(delivered)
    }

    async fn deliver(&self, handoff: &Handoff) -> anyhow::Result<()> {
        let token = self.tokens.token().await?;
        let url = format!(
            "{}/internal/records/{}/declarations",
            self.records, handoff.patient_id
        );
        let body = json!({"allergies": handoff.allergies, "blood_type": handoff.blood_type});
        let context = CallContext {
            bearer: Some(&token),
            ..CallContext::default()
        };
        let sent = self
            .client
            .post_idempotent(&url, context, Some(&body), &handoff.id.to_string())
            .await;
        if let Err(err) = &sent
            && err.status() == Some(reqwest::StatusCode::UNAUTHORIZED)
        {
            self.tokens.forget().await;
        }
        sent?;
        Ok(())
    }
}

/// Two seconds, doubling with each failed attempt, up to an hour.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 11)).unwrap_or(11);
    Duration::from_secs(2u64.saturating_pow(exponent + 1)).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(16));
        assert_eq!(backoff(40), Duration::from_secs(3600));
    }
}
