//! `niji serve`: the HTTP JSON API (axum) and the Arrow Flight SQL endpoint, both on loopback
//! by default, both authenticated with per-user tokens, both calling the sandbox chokepoint
//! ([`niji_sandbox::Visiting::query`]) and nothing else to read data.

mod applications;
mod consent;
mod datasets;
mod flight;
mod http;
mod scripts;
mod sessions;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use niji_sandbox::Visiting;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use sessions::Sessions;
pub use status::{ServerError, statuses};

/// Shared by both interfaces.
#[derive(Debug)]
pub struct AppState {
    pub visiting: Arc<Visiting>,
    pub sessions: Sessions,
}

impl AppState {
    /// The user of a live session whose account is still active: a user suspended (by an
    /// alert rule or a custodian) since signing in loses every session at their next request.
    pub async fn signed_in(&self, token: &str) -> Result<String, ServerError> {
        let user = self
            .sessions
            .user(token)
            .ok_or(ServerError::Unauthenticated)?;
        if self.visiting.platform().db().user(&user).await?.is_none() {
            self.sessions.end_all_of(&user);
            return Err(ServerError::Unauthenticated);
        }
        Ok(user)
    }
}

/// A running server; dropping it (or calling [`Running::shutdown`]) stops both listeners.
#[derive(Debug)]
pub struct Running {
    pub http: SocketAddr,
    pub flight: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// Binds both listeners (port 0 picks free ports) and serves until shut down.
pub async fn serve(
    visiting: Arc<Visiting>,
    http_addr: SocketAddr,
    flight_addr: SocketAddr,
) -> Result<Running, ServerError> {
    serve_with(
        visiting,
        http_addr,
        flight_addr,
        niji_portal::PortalSettings::default(),
    )
    .await
}

/// As [`serve`], with the portal's settings (behind TLS: secure cookies and HSTS).
pub async fn serve_with(
    visiting: Arc<Visiting>,
    http_addr: SocketAddr,
    flight_addr: SocketAddr,
    portal: niji_portal::PortalSettings,
) -> Result<Running, ServerError> {
    let pages = niji_portal::router(visiting.clone(), portal);
    let state = Arc::new(AppState {
        visiting,
        sessions: Sessions::default(),
    });
    let (stop, stopped) = watch::channel(false);
    let http_listener = TcpListener::bind(http_addr)
        .await
        .map_err(ServerError::Bind)?;
    let flight_listener = TcpListener::bind(flight_addr)
        .await
        .map_err(ServerError::Bind)?;
    let http = http_listener.local_addr().map_err(ServerError::Bind)?;
    let flight = flight_listener.local_addr().map_err(ServerError::Bind)?;
    let shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // The portal's pages beside the API, each with its own middleware; the peer address is
    // kept for the sign-in limiter.
    let app = http::router(state.clone())
        .merge(pages)
        .into_make_service_with_connect_info::<SocketAddr>();
    let http_task = tokio::spawn({
        let rx = stopped.clone();
        async move {
            if let Err(e) = axum::serve(http_listener, app)
                .with_graceful_shutdown(shutdown(rx))
                .await
            {
                tracing::error!(error = %e, "http server stopped");
            }
        }
    });
    let flight_task = tokio::spawn({
        let rx = stopped;
        async move {
            let incoming = tonic::transport::server::TcpIncoming::from(flight_listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(flight::service(state))
                .serve_with_incoming_shutdown(incoming, shutdown(rx))
                .await
            {
                tracing::error!(error = %e, "flight sql server stopped");
            }
        }
    });
    tracing::info!(%http, %flight, "serving");
    Ok(Running {
        http,
        flight,
        stop,
        tasks: vec![http_task, flight_task],
    })
}
