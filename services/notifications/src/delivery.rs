//! Sending: transports (`smtp` with `lettre`, or `log`), and the sender that works through
//! PENDING messages. A sender claims due messages with `for update skip locked` and leases
//! them (their next attempt moved two minutes ahead), so two instances never send the same
//! message and one that died mid-send is taken over. It keeps `email.concurrency` sends in
//! flight over as many pooled SMTP connections, without holding a database connection, and
//! records the sent ones together. A failure is retried with exponential backoff until
//! `email.max_attempts`, then the message is FAILED for an admin to resend. A permanent SMTP
//! refusal (a 5xx answer) fails at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use polyclinic_config::{EmailConfig, EmailTransport};
use polyclinic_http::CancellationToken;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::repo::notifications::{self, CHANNEL, Outbound};

/// How the TLS of an SMTP connection is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS: only for a relay on loopback or a trusted network.
    None,
}

/// An SMTP server as `email.smtp_url` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<(String, String)>,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(value) = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(value);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SmtpSettings {
    /// Reads `smtp://user:pass@host:587?tls=starttls` (`tls` is `starttls`, `tls` or
    /// `none`; `smtps://` means implicit TLS; the port defaults to 587, or 465 with TLS).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
        let implicit = match scheme {
            "smtp" => false,
            "smtps" => true,
            other => return Err(format!("`{other}` is not smtp or smtps")),
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let mut tls = if implicit {
            TlsMode::Implicit
        } else {
            TlsMode::StartTls
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", "starttls")) => tls = TlsMode::StartTls,
                Some(("tls", "tls")) => tls = TlsMode::Implicit,
                Some(("tls", "none")) => tls = TlsMode::None,
                _ => {
                    return Err(format!(
                        "unknown parameter `{pair}` (tls=starttls, tls or none)"
                    ));
                }
            }
        }
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("`{port}` is not a port"))?,
            ),
            None => (host_port, if tls == TlsMode::Implicit { 465 } else { 587 }),
        };
        if host.is_empty() {
            return Err("no host".to_owned());
        }
        let credentials = userinfo.map(|userinfo| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (percent_decode(user), percent_decode(password))
        });
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
            credentials,
        })
    }
}

/// Why a message was not sent.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    /// Trying again will not help (the server refused for good, or the address is bad).
    pub permanent: bool,
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(err: lettre::transport::smtp::Error) -> Self {
        SendError {
            permanent: err.is_permanent(),
            message: err.to_string(),
        }
    }
}

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// Recorded and listed, not sent; the log shows the subject and recipient only.
    Log,
    Smtp {
        mailer: Mailer,
        from: Mailbox,
    },
}

/// The SMTP client: connections of our own for plain and STARTTLS servers, lettre's pooled
/// transport for SMTPS.
#[derive(Clone)]
pub enum Mailer {
    Direct(Arc<Connections>),
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
}

/// SMTP connections kept open between messages, each with `TCP_NODELAY`.
///
/// Why not lettre's own pool for these: lettre 0.11 leaves Nagle's algorithm on and writes a
/// message's body and its closing `.` in two writes, so every message waits for the server's
/// delayed acknowledgement (40 ms on Linux): 25 messages a second per connection at most
/// (fixed upstream in lettre/lettre#1159, not released as of 0.11.23). The protocol is still
/// lettre's (`AsyncSmtpConnection`: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA); only the socket
/// is made here. SMTPS (TLS from the first byte) keeps lettre's transport, as lettre takes a
/// ready socket only before any TLS.
pub struct Connections {
    host: String,
    port: u16,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    keep: usize,
}

impl Connections {
    /// A connection from the idle ones (checked with `NOOP`, as lettre's pool does), or a new
    /// one.
    async fn take(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match idle {
                Some(mut connection) => {
                    if connection.test_connected().await {
                        return Ok(connection);
                    }
                    connection.abort().await;
                }
                None => return self.connect().await,
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let unreachable = |err: std::io::Error| SendError {
            message: format!("the SMTP server cannot be reached: {err}"),
            permanent: false,
        };
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                .await
                .map_err(SendError::from)?;
        if let Some(tls) = &self.starttls {
            connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(SendError::from)?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(SendError::from)?;
        }
        Ok(connection)
    }

    /// Sends `email` on a kept connection, which is kept again unless it broke.
    async fn send(&self, email: &Message) -> Result<(), SendError> {
        let sending = async {
            let mut connection = self.take().await?;
            let sent = connection
                .send(email.envelope(), &email.formatted())
                .await
                .map_err(SendError::from);
            // Kept for the next message unless it broke (or enough are kept already);
            // otherwise dropped, which closes its socket.
            if !connection.has_broken()
                && let Ok(mut idle) = self.idle.lock()
                && idle.len() < self.keep
            {
                idle.push(connection);
            }
            sent.map(|_| ())
        };
        match tokio::time::timeout(self.timeout, sending).await {
            Ok(sent) => sent,
            Err(_) => Err(SendError {
                message: format!(
                    "the SMTP server did not answer within {} s",
                    self.timeout.as_secs()
                ),
                permanent: false,
            }),
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Transport {
    pub fn from_config(config: &EmailConfig) -> anyhow::Result<Self> {
        match config.transport {
            EmailTransport::Log => Ok(Transport::Log),
            EmailTransport::Smtp => {
                let url = config
                    .smtp_url
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("`email.smtp_url` is required with smtp"))?;
                let settings = SmtpSettings::parse(url).map_err(|err| {
                    anyhow::anyhow!("invalid configuration value for `email.smtp_url`: {err}")
                })?;
                let from: Mailbox = config.from.parse().map_err(|err| {
                    anyhow::anyhow!("invalid configuration value for `email.from`: {err}")
                })?;
                let timeout = Duration::from_secs(15);
                let credentials = settings
                    .credentials
                    .map(|(user, password)| Credentials::new(user, password));
                let mailer = match settings.tls {
                    TlsMode::Implicit => {
                        let mut builder =
                            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
                                .port(settings.port)
                                .tls(Tls::Wrapper(TlsParameters::new(settings.host.clone())?))
                                .timeout(Some(timeout))
                                // One connection per send in flight, kept open between messages.
                                .pool_config(PoolConfig::new().max_size(config.concurrency.max(1)));
                        if let Some(credentials) = credentials {
                            builder = builder.credentials(credentials);
                        }
                        Mailer::Pooled(builder.build())
                    }
                    mode => Mailer::Direct(Arc::new(Connections {
                        starttls: match mode {
                            TlsMode::StartTls => Some(TlsParameters::new(settings.host.clone())?),
                            _ => None,
                        },
                        host: settings.host,
                        port: settings.port,
                        credentials,
                        hello: ClientId::default(),
                        timeout,
                        idle: Mutex::new(Vec::new()),
                        keep: usize::try_from(config.concurrency.max(1)).unwrap_or(1),
                    })),
                };
                Ok(Transport::Smtp { mailer, from })
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Transport::Log => "log",
            Transport::Smtp { .. } => "smtp",
        }
    }

    /// Sends one message.
    pub async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        match self {
            Transport::Log => {
                tracing::info!(notification = %message.id, to = %message.recipient_email, subject = %message.subject, "email recorded, not sent (log transport)");
                Ok(())
            }
            Transport::Smtp { mailer, from } => {
                let to: Mailbox = message.recipient_email.parse().map_err(|err| SendError {
                    message: format!("the recipient address is not valid: {err}"),
                    permanent: true,
                })?;
                // One Message-ID per notification, the same on every attempt: a message
                // that is sent again (a retry after a lost reply, a resend) is recognisably
                // the same message to the recipient's mail system.
                let unbuildable = |err: String| SendError {
                    message: format!("the message could not be built: {err}"),
                    permanent: true,
                };
                let email = Message::builder()
                    .message_id(Some(format!("<{}@{}>", message.id, from.email.domain())))
                    .from(from.clone())
                    .to(to)
                    .subject(message.subject.clone())
                    .multipart(body(message).map_err(unbuildable)?)
                    .map_err(|err| unbuildable(err.to_string()))?;
                match mailer {
                    Mailer::Direct(connections) => connections.send(&email).await,
                    Mailer::Pooled(transport) => transport
                        .send(email)
                        .await
                        .map(|_| ())
                        .map_err(SendError::from),
                }
            }
        }
    }
}

/// The body of `message`: its text and HTML as alternatives, and, when it is about an
/// appointment's time, the iCalendar part as a third alternative (`text/calendar` with its
/// `method`, which is how mail clients offer to add, update or remove the event) and as an
/// `invite.ics` attachment for those that only look at attachments.
fn body(message: &Outbound) -> Result<MultiPart, String> {
    let alternatives = MultiPart::alternative()
        .singlepart(SinglePart::plain(message.body_text.clone()))
        .singlepart(SinglePart::html(message.body_html.clone()));
    let (Some(calendar), Some(method)) = (&message.calendar, &message.calendar_method) else {
        return Ok(alternatives);
    };
    let inline = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
        .map_err(|err| err.to_string())?;
    let attached = ContentType::parse(&format!("application/ics; method={method}"))
        .map_err(|err| err.to_string())?;
    Ok(MultiPart::mixed()
        .multipart(
            alternatives.singlepart(SinglePart::builder().header(inline).body(calendar.clone())),
        )
        .singlepart(Attachment::new("invite.ics".to_owned()).body(calendar.clone(), attached)))
}

/// Runs `write` until it succeeds, for up to about 20 s while the database is away, then
/// gives up with its error.
async fn persistently<F, Fut>(what: &str, write: F) -> sqlx::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<()>>,
{
    let mut pause = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match write().await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 8 => {
                tracing::warn!(error = %err, attempt, "{what} failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Works through due messages.
#[derive(Debug, Clone)]
pub struct Sender {
    pool: PgPool,
    transport: Arc<Transport>,
    max_attempts: i32,
    retry_base: Duration,
    concurrency: usize,
}

/// How long a claimed message is left to its sender before another may take it over (a
/// sender that died mid-send).
const LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// Sent messages are recorded together: when this many are waiting, or this long after the
/// first of them was sent.
const RECORD_BATCH: usize = 64;
const RECORD_WITHIN: Duration = Duration::from_millis(50);

/// How often an idle sender looks for retries that came due.
const IDLE_LOOK: Duration = Duration::from_secs(1);

impl Sender {
    pub fn new(pool: PgPool, transport: Transport, config: &EmailConfig) -> Self {
        Self {
            pool,
            transport: Arc::new(transport),
            max_attempts: i32::try_from(config.max_attempts).unwrap_or(6),
            retry_base: Duration::from_millis(config.retry_base_ms.into()),
            concurrency: usize::try_from(config.concurrency.max(1)).unwrap_or(1),
        }
    }

    /// The delay before attempt `attempts + 1`, doubling up to an hour.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(20);
        (self.retry_base * 2u32.pow(exponent)).min(Duration::from_secs(3600))
    }

    /// Starts sending `message` on its own task, in its trace.
    fn start(&self, sending: &mut JoinSet<(Outbound, Result<(), SendError>)>, message: Outbound) {
        let transport = self.transport.clone();
        let span = tracing::info_span!(
            "send email",
            otel.name = %format!("send email ({})", transport.name()),
            otel.kind = "client",
            notification = %message.id,
            transport = transport.name(),
            error = tracing::field::Empty,
        );
        polyclinic_telemetry::continue_trace(
            &span,
            "notifications",
            polyclinic_telemetry::TraceHeaders {
                traceparent: message.traceparent.as_deref(),
                ..Default::default()
            },
        );
        sending.spawn(
            async move {
                let outcome = transport.send(&message).await;
                if let Err(err) = &outcome {
                    tracing::Span::current().record("error", err.message.as_str());
                }
                (message, outcome)
            }
            .instrument(span),
        );
    }

    /// Records a failed attempt: a later retry, or FAILED.
    async fn record_failure(&self, message: &Outbound, err: &SendError) {
        let attempts = message.attempts + 1;
        let retry_at = (!err.permanent && attempts < self.max_attempts).then(|| {
            Utc::now() + chrono::Duration::from_std(self.backoff(attempts)).unwrap_or_default()
        });
        tracing::warn!(notification = %message.id, attempts, permanent = err.permanent, error = %err.message, "sending an email failed");
        let recorded = persistently("recording a failed email", || {
            notifications::mark_failed_attempt(&self.pool, message.id, &err.message, retry_at)
        })
        .await;
        if let Err(err) = recorded {
            // Its lease ends and it is tried again: the attempt goes uncounted, nothing else.
            tracing::warn!(notification = %message.id, error = %err, "a failed email could not be recorded");
        }
    }

    /// Records the messages in `sent` as SENT in one statement; kept for the next try when
    /// the database is away (a message sent and not recorded would go again when its lease
    /// ends).
    async fn record_sent(&self, sent: &mut Vec<Uuid>) {
        if sent.is_empty() {
            return;
        }
        let ids: &[Uuid] = sent;
        let recorded = persistently("recording sent emails", || {
            notifications::mark_sent_all(&self.pool, ids, self.transport.name())
        })
        .await;
        match recorded {
            Ok(()) => sent.clear(),
            Err(err) => {
                tracing::warn!(error = %err, waiting = sent.len(), "sent emails could not be recorded yet")
            }
        }
    }

    /// Sends until `shutdown`, keeping `email.concurrency` messages in flight while any are
    /// due: each finished send makes room for the next at once, rather than a batch waiting
    /// for its slowest message. Due messages are claimed a little ahead (leased, so no other
    /// sender takes them); sent ones are recorded together. Woken when messages are written
    /// (one `LISTEN` connection), and looking every second anyway for retries that came due.
    pub fn spawn(self, shutdown: CancellationToken) {
        let written = Arc::new(Notify::new());
        tokio::spawn(listen(self.pool.clone(), written.clone(), shutdown.clone()));
        tokio::spawn(async move { self.run(written, shutdown).await });
    }

    async fn run(self, written: Arc<Notify>, shutdown: CancellationToken) {
        let mut sending = JoinSet::new();
        let mut claimed: VecDeque<Outbound> = VecDeque::new();
        let mut sent: Vec<Uuid> = Vec::new();
        let mut first_unrecorded: Option<tokio::time::Instant> = None;
        // Whether the last claim found fewer messages than it asked for: then the sender
        // waits to be woken before it asks again.
        let mut drained = false;
        while !shutdown.is_cancelled() {
            let ahead = 2 * self.concurrency;
            if !drained && claimed.len() < self.concurrency {
                let want = ahead.saturating_sub(claimed.len() + sending.len());
                if want > 0 {
                    match notifications::claim_due(&self.pool, Utc::now(), LEASE, want as i64).await
                    {
                        Ok(due) => {
                            drained = due.len() < want;
                            claimed.extend(due);
                        }
                        Err(err) => {
                            drained = true;
                            tracing::warn!(error = %err, "claiming due emails failed; retrying");
                        }
                    }
                }
            }
            while sending.len() < self.concurrency
                && let Some(message) = claimed.pop_front()
            {
                self.start(&mut sending, message);
            }
            let record_by = first_unrecorded
                .map_or(tokio::time::Instant::now() + IDLE_LOOK, |first| {
                    first + RECORD_WITHIN
                });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(joined) = sending.join_next(), if !sending.is_empty() => {
                    let Ok((message, outcome)) = joined else {
                        tracing::warn!("a send task ended without an outcome");
                        continue;
                    };
                    match outcome {
                        Ok(()) => {
                            sent.push(message.id);
                            first_unrecorded.get_or_insert_with(tokio::time::Instant::now);
                            if sent.len() >= RECORD_BATCH || sending.is_empty() {
                                self.record_sent(&mut sent).await;
                                first_unrecorded = None;
                            }
                        }
                        Err(err) => self.record_failure(&message, &err).await,
                    }
                }
                _ = written.notified() => drained = false,
                _ = tokio::time::sleep_until(record_by) => {
                    self.record_sent(&mut sent).await;
                    first_unrecorded = None;
                    drained = false;
                }
            }
        }
        // Shutting down: messages claimed but not started are handed back at once (rather
        // than when their lease ends), and the sends under way finish and are recorded.
        let unstarted: Vec<Uuid> = claimed.iter().map(|message| message.id).collect();
        if let Err(err) = notifications::release(&self.pool, &unstarted).await {
            tracing::warn!(error = %err, "claimed emails could not be handed back; they go when their lease ends");
        }
        while let Some(joined) = sending.join_next().await {
            match joined {
                Ok((message, Ok(()))) => sent.push(message.id),
                Ok((message, Err(err))) => self.record_failure(&message, &err).await,
                Err(_) => {}
            }
        }
        self.record_sent(&mut sent).await;
    }
}

/// Wakes the sender whenever messages are written (`NOTIFY` on [`CHANNEL`]), until
/// `shutdown`; reconnects after a lost connection, while the sender looks every second.
async fn listen(pool: PgPool, written: Arc<Notify>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            loop {
                listener.recv().await?;
                written.notify_one();
            }
        };
        let ended: sqlx::Result<()> = tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = listening => ended,
        };
        if let Err(err) = ended {
            tracing::debug!(error = %err, "listening for written emails stopped; listening again");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(IDLE_LOOK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_the_server_tls_and_credentials() {
        assert_eq!(
            SmtpSettings::parse("smtp://mailer:s%40cret@mail.clinic.example:2525?tls=starttls")
                .unwrap(),
            SmtpSettings {
                host: "mail.clinic.example".into(),
                port: 2525,
                tls: TlsMode::StartTls,
                credentials: Some(("mailer".into(), "s@cret".into())),
            }
        );
        let implicit = SmtpSettings::parse("smtps://mail.clinic.example").unwrap();
        assert_eq!(
            (implicit.port, implicit.tls, implicit.credentials),
            (465, TlsMode::Implicit, None)
        );
        assert_eq!(
            SmtpSettings::parse("smtp://127.0.0.1:25?tls=none")
                .unwrap()
                .tls,
            TlsMode::None
        );
        assert_eq!(SmtpSettings::parse("smtp://relay").unwrap().port, 587);
        for bad in [
            "http://mail",
            "smtp://:25",
            "smtp://mail:port",
            "smtp://mail?tls=maybe",
            "mail",
        ] {
            assert!(SmtpSettings::parse(bad).is_err(), "{bad}");
        }
    }
}
