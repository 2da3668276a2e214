//! The gateway's workers: one single-threaded Tokio runtime per core, each accepting from
//! the same listening socket and keeping its own pool of upstream connections, the model
//! nginx and Envoy use. A request is served start to finish on one thread: no task moves
//! between threads, no worker wakes another, and an upstream connection is only used by the
//! thread that opened it. The services behind the gateway keep Tokio's work-stealing
//! runtime; their requests wait on the database, not on the CPU.

use std::time::Duration;

use anyhow::Context;
use polyclinic_http::CancellationToken;
use polyclinic_http::axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// How many workers serve: one per core this process may use (its CPU affinity and
/// cgroup quota included).
pub(crate) fn count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Serves `app` on `listener` with `workers` threads until `shutdown` is cancelled, each
/// letting its in-flight requests finish within `grace`. A worker that fails stops the
/// others, and its error is returned.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
    workers: usize,
) -> anyhow::Result<()> {
    let listener = listener
        .into_std()
        .context("taking the listening socket from the runtime")?;
    let stop = shutdown.child_token();
    let mut finished = JoinSet::new();
    for index in 0..workers.max(1) {
        let listener = listener
            .try_clone()
            .context("sharing the listening socket with a worker")?;
        let (app, worker_stop) = (app.clone(), stop.clone());
        let (done, outcome) = oneshot::channel();
        let started = std::thread::Builder::new()
            .name(format!("gateway-{index}"))
            .spawn(move || {
                // The receiver only goes away when `serve` itself has been dropped.
                let _ = done.send(work(listener, app, worker_stop, grace));
            });
        if let Err(err) = started {
            stop.cancel();
            return Err(err).context("starting a gateway worker");
        }
        finished.spawn(outcome);
    }
    let mut first_error = None;
    while let Some(outcome) = finished.join_next().await {
        let failure = match outcome {
            Ok(Ok(Ok(()))) => continue,
            Ok(Ok(Err(err))) => err,
            Ok(Err(_)) | Err(_) => anyhow::anyhow!("a gateway worker panicked"),
        };
        stop.cancel();
        first_error.get_or_insert(failure);
    }
    first_error.map_or(Ok(()), Err)
}

/// One worker: its own runtime, serving until `stop`.
fn work(
    listener: std::net::TcpListener,
    app: Router,
    stop: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a gateway worker's runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).context("listening in a worker")?;
        polyclinic_http::serve(listener, app, stop, grace)
            .await
            .context("serving")
    })
}
