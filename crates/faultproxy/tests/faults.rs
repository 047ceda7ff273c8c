//! The proxy between a client and a real echo server, through every fault and back to `Pass`.
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use emporium_faultproxy::{Fault, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a client waits for an answer before it calls the upstream unresponsive.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);

/// An echo server on a free loopback port: every byte read is written back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn proxy() -> FaultProxy {
    let upstream = echo_server().await;
    FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
        .await
        .unwrap()
}

/// Sends `message` and reads as many bytes back, within the client timeout.
async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut answer = vec![0; message.len()];
    tokio::time::timeout(CLIENT_TIMEOUT * 10, stream.read_exact(&mut answer))
        .await
        .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))??;
    Ok(answer)
}

#[tokio::test]
async fn pass_lets_every_byte_through_both_ways_and_counts_them() {
    let proxy = proxy().await;
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let answer = round_trip(&mut client, &message).await.unwrap();

    assert_eq!(answer, message);
    let counters = proxy.counters();
    assert_eq!(counters.accepted, 1);
    assert_eq!(counters.to_upstream, message.len() as u64);
    assert_eq!(counters.to_client, message.len() as u64);
}

#[tokio::test]
async fn latency_delays_a_round_trip_by_at_least_the_latency_each_way() {
    let proxy = proxy().await;
    let latency = Duration::from_millis(150);
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    round_trip(&mut client, b"warm").await.unwrap();

    proxy.set(Fault::Latency(latency)).await.unwrap();
    let started = Instant::now();
    let answer = round_trip(&mut client, b"ping").await.unwrap();

    assert_eq!(answer, b"ping");
    assert!(started.elapsed() >= latency * 2, "{:?}", started.elapsed());
}

#[tokio::test]
async fn reset_resets_open_and_new_connections() {
    let proxy = proxy().await;
    let mut open = TcpStream::connect(proxy.local_addr()).await.unwrap();
    round_trip(&mut open, b"hello").await.unwrap();

    proxy.set(Fault::Reset).await.unwrap();

    let mut buffer = [0; 16];
    let error = open.read(&mut buffer).await.expect_err("reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    let mut new = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let error = new.read(&mut buffer).await.expect_err("reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn blackhole_swallows_requests_until_pass_again() {
    let proxy = proxy().await;
    let mut open = TcpStream::connect(proxy.local_addr()).await.unwrap();
    round_trip(&mut open, b"before").await.unwrap();
    let before = proxy.counters();

    proxy.set(Fault::Blackhole).await.unwrap();

    let mut buffer = [0; 16];
    for stream in [
        &mut open,
        &mut TcpStream::connect(proxy.local_addr()).await.unwrap(),
    ] {
        stream.write_all(b"anyone?").await.unwrap();
        let waited = tokio::time::timeout(CLIENT_TIMEOUT, stream.read(&mut buffer)).await;
        assert!(waited.is_err(), "an answer came out of the black hole");
    }
    assert_eq!(proxy.counters().to_client, before.to_client);

    proxy.set(Fault::Pass).await.unwrap();
    let mut after = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut after, b"back").await.unwrap(), b"back");
}

#[tokio::test]
async fn refuse_closes_the_port_and_pass_opens_it_again() {
    let proxy = proxy().await;
    let mut open = TcpStream::connect(proxy.local_addr()).await.unwrap();
    // Accepted by now: one still in the backlog would be reset with the listening socket.
    round_trip(&mut open, b"open").await.unwrap();

    proxy.set(Fault::Refuse).await.unwrap();

    let error = TcpStream::connect(proxy.local_addr())
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    // A connection made before still passes bytes.
    assert_eq!(round_trip(&mut open, b"still").await.unwrap(), b"still");

    proxy.set(Fault::Pass).await.unwrap();
    let mut again = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"open").await.unwrap(), b"open");
    assert_eq!(proxy.fault(), Fault::Pass);
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_the_client_reset() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    // Nothing listens on `port` any more once the listener above is dropped.
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), port)
        .await
        .unwrap();

    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buffer = [0; 16];
    let error = client.read(&mut buffer).await.expect_err("reset");

    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
}
