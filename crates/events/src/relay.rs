//! The relay: publishes a service's pending outbox rows in order.
//!
//! One relay per service schema leads at a time (a session advisory lock); others wait as
//! stand-bys, so several instances are safe and per-aggregate order holds. On the `postgres`
//! bus, appending to the log and marking the rows published happen in one transaction, so
//! a crash between the two cannot exist.

use std::time::{Duration, Instant};

use polyclinic_http::{CancellationToken, Check};
use polyclinic_locks::{LockGuard, Locks};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use crate::EventMetrics;
use crate::kafka::{Bus, Publisher};
use crate::log::{self, LoggedEvent};

/// Test hooks that make the relay fail on purpose.
#[derive(Debug, Clone, Default)]
pub struct RelayFaults {
    /// Test hook: return after publishing a batch and before marking it published, as a
    /// relay killed at that moment would.
    pub crash_after_publish: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How the relay works.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows published per transaction.
    pub batch_size: i64,
    /// How often to look even without a notification.
    pub poll_interval: Duration,
    /// How long published rows stay in the outbox, and entries in the log.
    pub retention: Duration,
    pub faults: RelayFaults,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            faults: RelayFaults::default(),
        }
    }
}

/// Publishes the outbox of one service schema.
pub struct Relay {
    pool: PgPool,
    schema: String,
    settings: RelaySettings,
    metrics: EventMetrics,
    /// The Kafka producer; `None` on the `postgres` bus.
    publisher: Option<Publisher>,
}

const PURGE_EVERY: Duration = Duration::from_secs(3600);

impl Relay {
    pub fn new(
        pool: PgPool,
        schema: &str,
        bus: &Bus,
        settings: RelaySettings,
        metrics: EventMetrics,
    ) -> anyhow::Result<Self> {
        let publisher = match bus {
            Bus::Postgres => None,
            Bus::Kafka(kafka) => Some(Publisher::new(kafka)?),
        };
        Ok(Self {
            pool,
            schema: schema.to_owned(),
            settings,
            metrics,
            publisher,
        })
    }

    /// Runs the relay until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(self, shutdown: CancellationToken) {
        let channel = format!("polyclinic_outbox_{}", self.schema);
        let mut listener: Option<PgListener> = None;
        let mut leader: Option<LockGuard> = None;
        let mut last_purge: Option<Instant> = None;
        loop {
            if listener.is_none() {
                listener = self.listen(&channel).await;
            }
            if leader.is_none() {
                leader = self.try_lead().await;
            }
            if leader.is_some() {
                if let Err(err) = self.drain().await {
                    tracing::warn!(schema = %self.schema, error = %format!("{err:#}"), "relaying failed; retrying");
                    // The leader connection may be the broken part; lead afresh.
                    leader = None;
                }
                if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                    // Tried again in an hour either way: a failing purge must not run (and
                    // log) on every turn of the loop.
                    last_purge = Some(Instant::now());
                    if let Err(err) = self.purge().await {
                        tracing::warn!(error = %format!("{err:#}"), "purging published events failed; tried again in an hour");
                    }
                }
            }
            if let Ok(Some(lag)) = self.lag().await {
                self.metrics.relay_lag.set(lag.as_secs_f64());
            } else {
                self.metrics.relay_lag.set(0.0);
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listening) => listening.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = notified => {
                    if received.is_err() {
                        listener = None;
                    }
                }
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    async fn listen(&self, channel: &str) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(channel).await.ok()?;
        Some(listener)
    }

    /// Becomes the schema's relay leader if nobody else is. The lead is a session advisory
    /// lock held for as long as the guard lives; dropping the guard (after a failure, or at
    /// shutdown) closes its connection rather than handing it back to the pool, where an
    /// idle connection would go on holding the lead that no relay could then take.
    async fn try_lead(&self) -> Option<LockGuard> {
        let key = format!("polyclinic-relay:{}", self.schema);
        // The TTL bounds Redis locks only; an advisory lock ends with its connection.
        let lead = Locks::postgres(self.pool.clone())
            .try_acquire(&key, Duration::ZERO)
            .await
            .ok()??;
        tracing::debug!(schema = %self.schema, "leading the outbox relay");
        Some(lead)
    }

    async fn drain(&self) -> anyhow::Result<()> {
        while self.publish_pending().await? > 0 {}
        Ok(())
    }

    /// Publishes one batch of pending rows; returns how many.
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let pending: Vec<(i64, LoggedEvent)> =
            sqlx::query_as::<_, (i64, uuid::Uuid, String, String, String, serde_json::Value)>(
                "select seq, event_id, topic, key, event_type, envelope from outbox
             where published_at is null and next_attempt_at <= now()
             order by seq limit $1 for update skip locked",
            )
            .bind(self.settings.batch_size)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(seq, event_id, topic, key, event_type, envelope)| {
                (
                    seq,
                    LoggedEvent {
                        position: 0,
                        event_id,
                        topic,
                        key,
                        event_type,
                        envelope,
                    },
                )
            })
            .collect();
        if pending.is_empty() {
            return Ok(0);
        }
        let events: Vec<LoggedEvent> = pending.iter().map(|(_, event)| event.clone()).collect();
        // Closed when this function returns, whichever way.
        let _spans: Vec<tracing::Span> = events
            .iter()
            .map(|event| publish_span(&self.schema, event))
            .collect();
        let (published, failure) = match &self.publisher {
            None => {
                log::append(&mut tx, &events).await?;
                (events.len(), None)
            }
            Some(publisher) => match publisher.ensure_topics().await {
                Ok(()) => publisher.publish(&events).await,
                Err(err) => (0, Some(err)),
            },
        };
        if self
            .settings
            .faults
            .crash_after_publish
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            anyhow::bail!("fault injected: the relay died after publishing");
        }
        if let Some(failure) = failure {
            // The acknowledged prefix is marked; the first refused row waits for a retry, and
            // everything behind it with it, so that each aggregate stays in order.
            if let Some((seq, _)) = pending.get(published) {
                sqlx::query(
                    "update outbox set attempts = attempts + 1, last_error = $2,
                            next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '1 minute'),
                            updated_at = now()
                     where seq = $1",
                )
                .bind(seq)
                .bind(format!("{failure:#}"))
                .execute(&mut *tx)
                .await?;
            }
            let seqs: Vec<i64> = pending[..published].iter().map(|(seq, _)| *seq).collect();
            mark_published(&mut tx, &seqs).await?;
            tx.commit().await?;
            self.metrics.published.inc_by(seqs.len() as u64);
            return Err(failure);
        }
        let seqs: Vec<i64> = pending.iter().map(|(seq, _)| *seq).collect();
        mark_published(&mut tx, &seqs).await?;
        tx.commit().await?;
        self.metrics.published.inc_by(seqs.len() as u64);
        Ok(seqs.len())
    }

    /// How old the oldest unpublished row is.
    pub async fn lag(&self) -> anyhow::Result<Option<Duration>> {
        oldest_unpublished(&self.pool).await
    }

    async fn purge(&self) -> anyhow::Result<()> {
        let retention = format!("{} seconds", self.settings.retention.as_secs());
        sqlx::query("delete from outbox where published_at < now() - $1::interval")
            .bind(&retention)
            .execute(&self.pool)
            .await?;
        // The shared log exists on the postgres bus only; Kafka keeps its own retention.
        if self.publisher.is_none() {
            let mut conn = self.pool.acquire().await?;
            log::purge(&mut conn, self.settings.retention * 4).await?;
        }
        Ok(())
    }
}

async fn mark_published(conn: &mut sqlx::PgConnection, seqs: &[i64]) -> anyhow::Result<()> {
    sqlx::query(
        "update outbox set published_at = now(), attempts = attempts + 1, updated_at = now()
         where seq = any($1)",
    )
    .bind(seqs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn oldest_unpublished(pool: &PgPool) -> anyhow::Result<Option<Duration>> {
    let age: Option<f64> = sqlx::query_scalar(
        "select extract(epoch from now() - min(created_at))::float8 from outbox where published_at is null",
    )
    .fetch_one(pool)
    .await?;
    Ok(age.map(|secs| Duration::from_secs_f64(secs.max(0.0))))
}

/// Readiness detail: the age of the oldest unpublished event. The service stays ready while
/// the bus is away (events wait in the outbox), so this informs and never fails.
pub fn readiness_check(pool: &PgPool) -> Check {
    let pool = pool.clone();
    Check::new("outbox", move || {
        let pool = pool.clone();
        async move {
            match oldest_unpublished(&pool).await {
                Ok(Some(lag)) => Ok(Some(format!(
                    "oldest unpublished event is {:.1} s old",
                    lag.as_secs_f64()
                ))),
                Ok(None) => Ok(Some("nothing waiting".to_owned())),
                Err(err) => Err(err.to_string()),
            }
        }
    })
}

/// A producer span for one event, a child of the span that wrote it to the outbox.
fn publish_span(schema: &str, event: &LoggedEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("publish {}", event.event_type),
        otel.kind = "producer",
        topic = %event.topic,
        event_type = %event.event_type,
        event_id = %event.event_id,
    );
    polyclinic_telemetry::continue_trace(
        &span,
        schema,
        crate::envelope::trace_headers_of(&event.envelope),
    );
    span
}
