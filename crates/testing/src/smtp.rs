//! An SMTP server on loopback that keeps what it receives, so tests read the emails a
//! service really sent over SMTP (the production client code, `lettre`, does the sending).
//!
//! It speaks enough of RFC 5321 for a client on loopback without TLS: `EHLO`/`HELO`,
//! `MAIL FROM`, `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP`, `QUIT`. Put a
//! [`crate::TcpProxy`] in front of it to take it away for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after `DATA`: headers and body, CRLF line ends.
    pub data: Vec<u8>,
}

/// A running SMTP server; dropping it stops it.
pub struct SmtpSink {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    sessions: Arc<Sessions>,
    accepting: JoinHandle<()>,
}

/// Connections the sink accepted, and how many were open at once at most.
#[derive(Debug, Default)]
struct Sessions {
    accepted: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

/// Counts one open session for as long as it lives.
struct Open(Arc<Sessions>);

impl Open {
    fn new(sessions: Arc<Sessions>) -> Self {
        sessions.accepted.fetch_add(1, Ordering::SeqCst);
        let open = sessions.open.fetch_add(1, Ordering::SeqCst) + 1;
        sessions.most_open.fetch_max(open, Ordering::SeqCst);
        Self(sessions)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(0).await.expect("binding the SMTP sink")
    }

    /// Listens on loopback `port` (0: any free one).
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let sessions = Arc::new(Sessions::default());
        let (store, counted) = (received.clone(), sessions.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let open = Open::new(counted.clone());
                let store = store.clone();
                tokio::spawn(async move {
                    session(stream, store).await;
                    drop(open);
                });
            }
        });
        Ok(Self {
            address,
            received,
            sessions,
            accepting,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.sessions.accepted.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn most_open_at_once(&self) -> usize {
        self.sessions.most_open.load(Ordering::SeqCst)
    }

    /// How many messages have been received so far.
    pub fn count(&self) -> usize {
        self.received.lock().expect("sink lock").len()
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("sink lock").clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

fn address_in(argument: &str) -> String {
    let inner = argument
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address)
        .unwrap_or(argument);
    inner.trim().to_owned()
}

async fn session(stream: TcpStream, store: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let say = async |write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str| {
        write.write_all(text.as_bytes()).await.is_ok()
    };
    if !say(&mut write, "220 polyclinic-test ESMTP ready\r\n").await {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => {
                "250-polyclinic-test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK\r\n".to_owned()
            }
            "HELO" | "NOOP" => "250 OK\r\n".to_owned(),
            "RSET" => {
                from.clear();
                to.clear();
                "250 OK\r\n".to_owned()
            }
            "MAIL" => {
                from = address_in(command.split_once(':').map_or("", |(_, rest)| rest));
                to.clear();
                "250 OK\r\n".to_owned()
            }
            "RCPT" => {
                to.push(address_in(
                    command.split_once(':').map_or("", |(_, rest)| rest),
                ));
                "250 OK\r\n".to_owned()
            }
            "DATA" => {
                if !say(&mut write, "354 end with <CRLF>.<CRLF>\r\n").await {
                    return;
                }
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    match lines.read_until(b'\n', &mut raw).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if raw == b".\r\n" || raw == b".\n" {
                        break;
                    }
                    let unstuffed = if raw.starts_with(b"..") {
                        &raw[1..]
                    } else {
                        &raw[..]
                    };
                    data.extend_from_slice(unstuffed);
                }
                store.lock().expect("sink lock").push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                "250 OK queued\r\n".to_owned()
            }
            "QUIT" => {
                say(&mut write, "221 bye\r\n").await;
                return;
            }
            _ => "502 command not implemented\r\n".to_owned(),
        };
        if !say(&mut write, &answer).await {
            return;
        }
    }
}
