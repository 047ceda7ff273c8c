//! The proxy: an accept loop that follows the current fault, and one task per connection that
//! copies bytes both ways under it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the traffic; see the crate documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes go through unchanged.
    Pass,
    /// Each chunk read waits this long before it is written on, in each direction.
    Latency(Duration),
    /// Open and new connections are closed with a TCP reset (`SO_LINGER` 0, then closed).
    Reset,
    /// Connections are accepted, what they send is read and dropped, nothing comes back.
    Blackhole,
    /// The listening socket is closed, so new connections are refused; open ones pass (those
    /// the kernel had queued but the proxy not yet accepted are reset with the socket).
    Refuse,
}

/// Counts since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    /// Connections accepted from clients.
    pub accepted: u64,
    /// Bytes written to the upstream.
    pub to_upstream: u64,
    /// Bytes written back to clients.
    pub to_client: u64,
}

/// How long [`FaultProxy::set`] waits for the listening socket to follow a change.
const LISTEN_CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running proxy from a loopback port to one upstream. Dropping it closes the listening
/// socket and every connection through it.
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    fault: watch::Sender<Fault>,
    listening: watch::Receiver<bool>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
}

/// Why a copy loop stopped early.
enum Stop {
    /// The fault turned to `Reset`: both sockets are to be reset.
    Reset,
    /// A socket failed or the proxy was dropped: both sockets are closed.
    Closed,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks a free one) and forwards to `upstream`, passing bytes
    /// until [`set`](Self::set) says otherwise. Fails when `listen` cannot be bound.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let listener = bind(listen)?;
        let local_addr = listener.local_addr()?;
        let (fault, fault_rx) = watch::channel(Fault::Pass);
        let (listening_tx, listening) = watch::channel(true);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(serve(
            listener,
            local_addr,
            upstream,
            fault_rx,
            listening_tx,
            Arc::clone(&counters),
        ));
        Ok(Self {
            local_addr,
            fault,
            listening,
            counters,
            accept,
        })
    }

    /// The address clients connect to (the same across `Refuse` and back).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Switches to `fault` for open and new connections. Returns once the listening socket
    /// follows (closed for `Refuse`, open otherwise); fails if it cannot be opened again (the
    /// port was taken meanwhile) within ten seconds.
    pub async fn set(&self, fault: Fault) -> io::Result<()> {
        self.fault.send_replace(fault);
        let listen = fault != Fault::Refuse;
        let mut listening = self.listening.clone();
        match tokio::time::timeout(
            LISTEN_CHANGE_TIMEOUT,
            listening.wait_for(|now| *now == listen),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(io::Error::other("the proxy's accept loop has stopped")),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("cannot listen on {} again", self.local_addr),
            )),
        }
    }

    /// The counts so far.
    pub fn counters(&self) -> ProxyCounters {
        ProxyCounters {
            accepted: self.counters.accepted.load(Ordering::Relaxed),
            to_upstream: self.counters.to_upstream.load(Ordering::Relaxed),
            to_client: self.counters.to_client.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connections end on their own when the fault sender goes.
        self.accept.abort();
    }
}

/// A listening socket that can be bound again on the same port right after it was closed.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections while the fault allows, closing and reopening the listening socket as
/// the fault turns to and from `Refuse`.
async fn serve(
    first: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    listening: watch::Sender<bool>,
    counters: Arc<Counters>,
) {
    let mut listener = Some(first);
    loop {
        let refuse = *fault.borrow_and_update() == Fault::Refuse;
        if refuse && listener.take().is_some() {
            listening.send_replace(false);
        }
        if !refuse && listener.is_none() {
            match bind(addr) {
                Ok(bound) => {
                    listener = Some(bound);
                    listening.send_replace(true);
                }
                Err(error) => {
                    // The port may be held a moment longer; `set` gives up after its timeout.
                    tracing::warn!(%error, %addr, "fault proxy cannot listen again, retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(bound) = &listener else {
            if fault.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = bound.accept() => match accepted {
                Ok((client, _)) => {
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(client, upstream, fault.clone(), Arc::clone(&counters)));
                }
                Err(error) => tracing::debug!(%error, "fault proxy accept failed"),
            },
            changed = fault.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

/// One client connection, from accept to close.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    let at_accept = *fault.borrow_and_update();
    match at_accept {
        Fault::Reset => return reset(&client),
        Fault::Blackhole => {
            if let Err(Stop::Reset) = swallow(&mut client, &mut fault).await {
                reset(&client);
            }
            return;
        }
        Fault::Pass | Fault::Latency(_) | Fault::Refuse => {}
    }
    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%error, %upstream, "fault proxy cannot reach its upstream");
            return reset(&client);
        }
    };
    // Chunks pass as they come: a delay here would be one the test did not ask for.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let outcome = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::try_join!(
            copy(
                client_read,
                server_write,
                fault.clone(),
                &counters.to_upstream
            ),
            copy(server_read, client_write, fault, &counters.to_client),
        )
    };
    if let Err(Stop::Reset) = outcome {
        reset(&client);
        reset(&server);
    }
}

/// Copies `from` to `to` under the current fault until `from` ends (then half-closes `to`).
async fn copy(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut fault: watch::Receiver<Fault>,
    written: &AtomicU64,
) -> Result<(), Stop> {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = fault.changed() => {
                changed.map_err(|_| Stop::Closed)?;
                if *fault.borrow_and_update() == Fault::Reset {
                    return Err(Stop::Reset);
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) => {
                let _ = to.shutdown().await;
                return Ok(());
            }
            Ok(n) => n,
            Err(_) => return Err(Stop::Closed),
        };
        let now = *fault.borrow();
        match now {
            Fault::Reset => return Err(Stop::Reset),
            Fault::Blackhole => continue,
            Fault::Latency(delay) => pause(delay, &mut fault).await?,
            Fault::Pass | Fault::Refuse => {}
        }
        to.write_all(&buffer[..n]).await.map_err(|_| Stop::Closed)?;
        written.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Waits `delay`, unless the fault turns to `Reset` meanwhile.
async fn pause(delay: Duration, fault: &mut watch::Receiver<Fault>) -> Result<(), Stop> {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return Ok(()),
            changed = fault.changed() => {
                changed.map_err(|_| Stop::Closed)?;
                if *fault.borrow_and_update() == Fault::Reset {
                    return Err(Stop::Reset);
                }
            }
        }
    }
}

/// Reads and drops what a black-holed client sends until it closes or is reset.
async fn swallow(client: &mut TcpStream, fault: &mut watch::Receiver<Fault>) -> Result<(), Stop> {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut buffer) => match read {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(Stop::Closed),
            },
            changed = fault.changed() => {
                changed.map_err(|_| Stop::Closed)?;
                if *fault.borrow_and_update() == Fault::Reset {
                    return Err(Stop::Reset);
                }
            }
        }
    }
}

/// Closes `stream` with a reset rather than a FIN: `SO_LINGER` 0, then the caller drops it.
fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "fault proxy cannot set SO_LINGER 0");
    }
}
