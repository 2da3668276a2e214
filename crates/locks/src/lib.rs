//! Short-lived distributed locks.
//!
//! A lock only spares the database contention; correctness always comes from constraints
//! in PostgreSQL. Two backends, chosen by `locks` in the configuration:
//!
//! - `postgres`: a session advisory lock (`pg_try_advisory_lock(hashtextextended(key, 0))`)
//!   held on a connection taken from the pool for as long as the guard lives. It ends when
//!   the guard is released or dropped, or when the connection dies; it has no TTL.
//! - `redis`: `SET <prefix><key> <random token> NX PX <ttl>`; release and extend run a
//!   script that acts only if the key still holds our token, so a holder whose lock expired
//!   can never release or extend someone else's.
//! - `none`: every lock is granted at once; the constraints alone decide.

use std::time::{Duration, Instant};

use anyhow::Context;
use polyclinic_config::{Config, LockBackend};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

const RELEASE: &str = r#"
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"#;

const EXTEND: &str = r#"
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"#;

/// A handle to the configured lock backend; cheap to clone.
#[derive(Clone)]
pub struct Locks {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Postgres(PgPool),
    Redis {
        connection: ConnectionManager,
        prefix: String,
    },
    None,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Redis { .. } => "redis",
            Backend::None => "none",
        };
        f.debug_struct("Locks").field("backend", &backend).finish()
    }
}

impl Locks {
    /// The backend that `config.locks` names; `pool` serves the `postgres` backend.
    pub async fn from_config(config: &Config, pool: &PgPool) -> anyhow::Result<Self> {
        match config.locks {
            LockBackend::Postgres => Ok(Self::postgres(pool.clone())),
            LockBackend::Redis => Self::redis(&config.redis_url, &config.redis_key_prefix).await,
            LockBackend::None => Ok(Self::none()),
        }
    }

    /// Advisory locks on `pool`'s database.
    pub fn postgres(pool: PgPool) -> Self {
        Self {
            backend: Backend::Postgres(pool),
        }
    }

    /// No locks: every one is granted at once.
    pub fn none() -> Self {
        Self {
            backend: Backend::None,
        }
    }

    /// Locks in Redis at `url`, every key starting with `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parsing `redis_url`")?;
        // Without timeouts a command waits forever on a Redis that went away mid-request
        // or is still coming back; a lock that cannot be had quickly is an error, and the
        // caller falls back to the database's own guarantees.
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(2)
            .set_max_delay(1000);
        let connection = ConnectionManager::new_with_config(client, settings)
            .await
            .context("connecting to Redis")?;
        Ok(Self {
            backend: Backend::Redis {
                connection,
                prefix: prefix.to_owned(),
            },
        })
    }

    /// Takes the lock on `key` if it is free. `ttl` bounds how long a Redis lock outlives a
    /// holder that vanished; advisory locks end with their connection instead.
    pub async fn try_acquire(&self, key: &str, ttl: Duration) -> anyhow::Result<Option<LockGuard>> {
        match &self.backend {
            Backend::None => Ok(Some(LockGuard {
                key: key.to_owned(),
                held: Held::Nothing,
            })),
            Backend::Postgres(pool) => {
                let mut connection = pool
                    .acquire()
                    .await
                    .context("taking a connection for a lock")?;
                let taken: bool =
                    sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1, 0))")
                        .bind(key)
                        .fetch_one(&mut *connection)
                        .await
                        .context("taking an advisory lock")?;
                Ok(taken.then(|| LockGuard {
                    key: key.to_owned(),
                    held: Held::Postgres(Some(connection)),
                }))
            }
            Backend::Redis { connection, prefix } => {
                let full_key = format!("{prefix}lock:{key}");
                let token = uuid::Uuid::new_v4().to_string();
                let mut connection = connection.clone();
                let set: Option<String> = redis::cmd("SET")
                    .arg(&full_key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut connection)
                    .await
                    .context("taking a Redis lock")?;
                Ok(set.map(|_| LockGuard {
                    key: key.to_owned(),
                    held: Held::Redis {
                        connection,
                        full_key,
                        token,
                    },
                }))
            }
        }
    }

    /// Like [`Locks::try_acquire`], retrying with a short backoff for up to `wait`.
    pub async fn acquire(
        &self,
        key: &str,
        ttl: Duration,
        wait: Duration,
    ) -> anyhow::Result<Option<LockGuard>> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(guard) = self.try_acquire(key, ttl).await? {
                return Ok(Some(guard));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// A readiness check for the backend (Redis `PING`; the advisory backend is covered by
    /// the service's own PostgreSQL check).
    pub fn readiness_check(&self) -> Option<polyclinic_http::Check> {
        let Backend::Redis { connection, .. } = &self.backend else {
            return None;
        };
        let connection = connection.clone();
        Some(polyclinic_http::Check::new("redis", move || {
            let mut connection = connection.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .map(|_| None)
                    .map_err(|err| err.to_string())
            }
        }))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it also lets go (the
/// advisory lock's connection is closed, the Redis key expires with its TTL).
#[must_use = "a lock is released as soon as its guard is dropped"]
pub struct LockGuard {
    key: String,
    held: Held,
}

enum Held {
    Nothing,
    Postgres(Option<PoolConnection<Postgres>>),
    Redis {
        connection: ConnectionManager,
        full_key: String,
        token: String,
    },
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("key", &self.key).finish()
    }
}

impl LockGuard {
    /// The key this guard holds.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Pushes the expiry `ttl` into the future. Returns false if the lock was lost (a Redis
    /// lock that expired and was taken by someone else).
    pub async fn extend(&mut self, ttl: Duration) -> anyhow::Result<bool> {
        match &mut self.held {
            Held::Nothing => Ok(true),
            Held::Postgres(connection) => Ok(connection.is_some()),
            Held::Redis {
                connection,
                full_key,
                token,
            } => {
                let extended: i64 = redis::Script::new(EXTEND)
                    .key(&*full_key)
                    .arg(&*token)
                    .arg(millis(ttl))
                    .invoke_async(connection)
                    .await
                    .context("extending a Redis lock")?;
                Ok(extended == 1)
            }
        }
    }

    /// Lets go of the lock. Returns false if it had already been lost.
    pub async fn release(mut self) -> anyhow::Result<bool> {
        match &mut self.held {
            Held::Nothing => Ok(true),
            Held::Postgres(connection) => {
                let Some(mut connection) = connection.take() else {
                    return Ok(false);
                };
                let released: bool =
                    sqlx::query_scalar("select pg_advisory_unlock(hashtextextended($1, 0))")
                        .bind(&self.key)
                        .fetch_one(&mut *connection)
                        .await
                        .context("releasing an advisory lock")?;
                Ok(released)
            }
            Held::Redis {
                connection,
                full_key,
                token,
            } => {
                let deleted: i64 = redis::Script::new(RELEASE)
                    .key(&*full_key)
                    .arg(&*token)
                    .invoke_async(connection)
                    .await
                    .context("releasing a Redis lock")?;
                Ok(deleted == 1)
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Held::Postgres(connection) = &mut self.held
            && let Some(connection) = connection.take()
        {
            // Never hand a connection that still holds a session lock back to the pool:
            // closing it makes the server drop the lock.
            tracing::debug!(key = %self.key, "advisory lock dropped without release; closing its connection");
            drop(connection.detach());
        }
    }
}
