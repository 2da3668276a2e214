//! Sending: transports (`smtp` with `lettre`, or `log`), and the sender that works through
//! PENDING messages. A sender claims a batch with `for update skip locked` and leases it (its
//! next attempt moved two minutes ahead), so two instances never send the same message and
//! one that died mid-send is taken over; the sends then run side by side without holding a
//! database connection. A failure is retried with exponential backoff until
//! `email.max_attempts`, then the message is FAILED for an admin to resend. A permanent SMTP
//! refusal (a 5xx answer) fails at once.

use std::time::Duration;

use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use polyclinic_config::{EmailConfig, EmailTransport};
use polyclinic_http::CancellationToken;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tracing::Instrument;

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

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// Recorded and listed, not sent; the log shows the subject and recipient only.
    Log,
    Smtp {
        mailer: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
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
                let tls = match settings.tls {
                    TlsMode::None => Tls::None,
                    TlsMode::StartTls => Tls::Required(TlsParameters::new(settings.host.clone())?),
                    TlsMode::Implicit => Tls::Wrapper(TlsParameters::new(settings.host.clone())?),
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
                        .port(settings.port)
                        .tls(tls)
                        .timeout(Some(Duration::from_secs(15)));
                if let Some((user, password)) = settings.credentials {
                    builder = builder.credentials(Credentials::new(user, password));
                }
                Ok(Transport::Smtp {
                    mailer: builder.build(),
                    from,
                })
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
                mailer
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|err| SendError {
                        permanent: err.is_permanent(),
                        message: err.to_string(),
                    })
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
    transport: std::sync::Arc<Transport>,
    max_attempts: i32,
    retry_base: Duration,
}

/// Messages claimed and sent side by side at once.
const BATCH: i64 = 32;

/// How long a claimed message is left to its sender before another may take it over (a
/// sender that died mid-send).
const LEASE: chrono::Duration = chrono::Duration::minutes(2);

impl Sender {
    pub fn new(pool: PgPool, transport: Transport, config: &EmailConfig) -> Self {
        Self {
            pool,
            transport: std::sync::Arc::new(transport),
            max_attempts: i32::try_from(config.max_attempts).unwrap_or(6),
            retry_base: Duration::from_millis(config.retry_base_ms.into()),
        }
    }

    /// The delay before attempt `attempts + 1`, doubling up to an hour.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(20);
        (self.retry_base * 2u32.pow(exponent)).min(Duration::from_secs(3600))
    }

    /// Claims a batch of due messages (leased, so no other sender takes them), sends them
    /// side by side without holding a database connection, and records each outcome.
    /// Returns how many were tried.
    pub async fn send_due(&self) -> anyhow::Result<usize> {
        let due = notifications::claim_due(&self.pool, Utc::now(), LEASE, BATCH).await?;
        let mut sending = tokio::task::JoinSet::new();
        for message in due.iter().cloned() {
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
        while let Some(joined) = sending.join_next().await {
            let (message, outcome) = joined?;
            match outcome {
                Ok(()) => {
                    // A message sent and not recorded would go again when its lease ends.
                    persistently("recording a sent email", || {
                        notifications::mark_sent(&self.pool, message.id, self.transport.name())
                    })
                    .await?
                }
                Err(err) => {
                    let attempts = message.attempts + 1;
                    let retry_at = (!err.permanent && attempts < self.max_attempts).then(|| {
                        Utc::now()
                            + chrono::Duration::from_std(self.backoff(attempts)).unwrap_or_default()
                    });
                    tracing::warn!(notification = %message.id, attempts, permanent = err.permanent, error = %err.message, "sending an email failed");
                    notifications::mark_failed_attempt(
                        &self.pool,
                        message.id,
                        &err.message,
                        retry_at,
                    )
                    .await?;
                }
            }
        }
        Ok(due.len())
    }

    /// Sends until `shutdown`: woken when messages are written (one `LISTEN` connection),
    /// and looking every second anyway for retries that came due.
    pub fn spawn(self, shutdown: CancellationToken) {
        tokio::spawn(async move { self.run(shutdown).await });
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.send_due().await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "the sender failed; retrying")
                }
            }
            if listener.is_none() {
                listener = async {
                    let mut listening = PgListener::connect_with(&self.pool).await.ok()?;
                    listening.listen(CHANNEL).await.ok()?;
                    Some(listening)
                }
                .await;
            }
            let wait = async {
                match listener.as_mut() {
                    Some(listening) => listening.recv().await.map(|_| ()).map_err(|_| ()),
                    None => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(())
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                woken = tokio::time::timeout(Duration::from_secs(1), wait) => {
                    if matches!(woken, Ok(Err(()))) {
                        listener = None;
                    }
                }
            }
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
