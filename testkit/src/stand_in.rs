//! The handle a test holds: it starts the server on its own runtime thread,
//! changes its answers, reads what it was sent, and stops it when dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::routes::{Shared, router};
use crate::{Recorded, State};

/// A running stand-in service on 127.0.0.1. Dropping it stops the server
/// and frees the port.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts a stand-in with the default (healthy) [`State`] on a free port.
    ///
    /// # Panics
    ///
    /// When it cannot listen on 127.0.0.1 (see [`StandIn::bind`] to handle
    /// that).
    pub fn start() -> Self {
        Self::start_with(State::default())
    }

    /// Starts a stand-in with the given state on a free port.
    ///
    /// # Panics
    ///
    /// When it cannot listen on 127.0.0.1.
    pub fn start_with(state: State) -> Self {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), state)
            .unwrap_or_else(|e| panic!("cannot start the stand-in service on 127.0.0.1: {e}"))
    }

    /// Starts a stand-in on `addr` (port 0 picks a free one).
    pub fn bind(addr: SocketAddr, state: State) -> io::Result<Self> {
        // Bound here rather than on the server thread, so that the port is
        // known and a bind error is returned before `bind` does.
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared::new(state, format!("http://{addr}")));
        let app = router(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("standin-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here cancels the connections still
                // open (keep-alive, a slow health answer), so a drop of the
                // handle does not wait for clients to hang up.
            })?;
        Ok(Self {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.shared.base_url
    }

    /// The URL of `path` on this stand-in, e.g. `url_for("/dns-query")`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base_url)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Changes the answers; takes effect for the next request.
    pub fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.shared.state());
    }

    /// A copy of the state, including what the service wrote into it.
    pub fn state(&self) -> State {
        self.shared.state().clone()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests().clone()
    }

    /// The requests received so far whose path is exactly `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the server already stopped, which is the goal.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
