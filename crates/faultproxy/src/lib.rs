//! A TCP proxy that injects network faults between a client and one upstream, for fault tests on
//! machines without `netem`.
//!
//! [`FaultProxy`] listens on a loopback port and forwards every connection to its upstream.
//! [`FaultProxy::set`] changes what it does at run time, for connections already open as well
//! as new ones:
//!
//! - [`Fault::Pass`]: bytes go through unchanged.
//! - [`Fault::Latency`]: each chunk waits the given time before it is passed on, both ways.
//! - [`Fault::Reset`]: every connection, open or new, is closed with a TCP reset.
//! - [`Fault::Blackhole`]: connections are accepted and what they send is read and dropped;
//!   nothing ever comes back.
//! - [`Fault::Refuse`]: the listening socket is closed, so connecting fails at once; connections
//!   already open pass bytes as under `Pass`.
//!
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) -> std::io::Result<()> {
//! use emporium_faultproxy::{Fault, FaultProxy};
//! let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream).await?;
//! // Point the client at proxy.local_addr(), then:
//! proxy.set(Fault::Reset).await?;
//! # Ok(())
//! # }
//! ```

mod proxy;

pub use proxy::{Fault, FaultProxy, ProxyCounters};
