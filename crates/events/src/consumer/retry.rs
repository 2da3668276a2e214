//! The consumer's second chances: parked events retried with backoff, and dead letters
//! replayed on an admin's request. The tables are `parked`'s.

use uuid::Uuid;

use super::{Consumer, Handled};
use crate::parked::{self, Due};

/// Retries one due parked event; returns how many it tried (0 or 1).
pub(crate) async fn retry_due<S: Send + Sync + 'static>(
    consumer: &Consumer<S>,
) -> anyhow::Result<usize> {
    let name = consumer.settings.name.as_str();
    let mut tx = consumer.pool.begin().await?;
    let Some(Due {
        id,
        attempts,
        event,
    }) = parked::claim_due(&mut tx, name).await?
    else {
        return Ok(0);
    };
    match consumer.run_handler(&mut tx, &event).await? {
        Ok(outcome) => {
            consumer.record(&mut tx, &event, outcome).await?;
            parked::unpark(&mut tx, id).await?;
            parked::release_next(&mut tx, name, &event.key).await?;
        }
        Err(error) => {
            let attempts = attempts + 1;
            if attempts >= consumer.settings.max_attempts {
                parked::dead_letter(&mut tx, name, &event, &error, attempts).await?;
                parked::unpark(&mut tx, id).await?;
                parked::release_next(&mut tx, name, &event.key).await?;
                consumer.metrics.count(name, "dead_lettered");
                tracing::warn!(consumer = name, event_id = %event.event_id, event_type = %event.event_type, %error, "event dead-lettered");
            } else {
                let delay = consumer.settings.backoff(attempts);
                parked::retry_later(&mut tx, id, attempts, &error, delay).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(1)
}

/// Runs a dead letter's handler again. `Ok(None)`: no such dead letter for this consumer;
/// `Ok(Some(Err))`: the handler failed again (recorded).
pub async fn replay_dead_letter<S: Send + Sync + 'static>(
    consumer: &Consumer<S>,
    id: Uuid,
) -> anyhow::Result<Option<Result<(), String>>> {
    let name = consumer.settings.name.as_str();
    let mut tx = consumer.pool.begin().await?;
    let Some(event) = parked::lock_dead_letter(&mut tx, name, id).await? else {
        return Ok(None);
    };
    let outcome = consumer.run_handler(&mut tx, &event).await?;
    match &outcome {
        Ok(handled) => {
            let detail = match handled {
                Handled::Done => None,
                Handled::Skipped(reason) => Some(reason.as_str()),
            };
            parked::mark_replayed(&mut tx, name, id, event.event_id, detail).await?;
        }
        Err(error) => parked::mark_replay_failed(&mut tx, id, error).await?,
    }
    tx.commit().await?;
    Ok(Some(outcome.map(|_| ())))
}
