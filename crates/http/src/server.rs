//! Serving a router (or any service made per connection) until shutdown, letting in-flight
//! requests finish.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and
/// waits up to `grace` for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    serve_connections(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
        shutdown,
        grace,
    )
    .await
}

/// [`serve`] for a service other than a router: `connections` makes the service that
/// answers each accepted connection.
pub async fn serve_connections<Connections, Answers>(
    listener: TcpListener,
    connections: Connections,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()>
where
    Connections: for<'a> Service<IncomingStream<'a, TcpListener>, Error = Infallible, Response = Answers>
        + Send
        + 'static,
    for<'a> <Connections as Service<IncomingStream<'a, TcpListener>>>::Future: Send,
    Answers: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    Answers::Future: Send,
{
    let server = axum::serve(listener, connections)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();

    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the shutdown grace period");
            Ok(())
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                interrupt.await.ok();
            }
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
}
