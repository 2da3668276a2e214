//! A TCP proxy that a test can cut and restore, to take a dependency away from a service
//! without stopping the shared server that other tests use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use polyclinic_http::CancellationToken;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Switch {
    open: AtomicBool,
    connections: Mutex<CancellationToken>,
}

/// Forwards connections from a loopback port to `upstream` while open.
pub struct TcpProxy {
    address: SocketAddr,
    switch: Arc<Switch>,
    accepting: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding from a fresh loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let address = listener.local_addr().expect("a bound address");
        let switch = Arc::new(Switch {
            open: AtomicBool::new(true),
            connections: Mutex::new(CancellationToken::new()),
        });
        let accepting = tokio::spawn(accept(listener, upstream, switch.clone()));
        Self {
            address,
            switch,
            accepting,
        }
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Drops every forwarded connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.switch.open.store(false, Ordering::SeqCst);
        let mut current = self.switch.connections.lock().expect("proxy lock");
        current.cancel();
        *current = CancellationToken::new();
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.switch.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, switch: Arc<Switch>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        if !switch.open.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let cancelled = switch.connections.lock().expect("proxy lock").clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                () = cancelled.cancelled() => {}
            }
        });
    }
}
