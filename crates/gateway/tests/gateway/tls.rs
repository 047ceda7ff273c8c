//! TLS termination with a certificate made in the test, HTTP/2 by ALPN, and certificate reload.

use std::sync::Arc;

use bytes::Bytes;
use emporium_gateway::{Balance, TlsConfig};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;

use crate::support::{Gateway, Upstream, config, wait_until};

fn certificate(dir: &std::path::Path, name: &str) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join(format!("{name}.cert.tmp")), made.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key.tmp")),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    // Renamed into place, so the gateway never reads half a file.
    std::fs::rename(dir.join(format!("{name}.cert.tmp")), dir.join("cert.pem")).unwrap();
    std::fs::rename(dir.join(format!("{name}.key.tmp")), dir.join("key.pem")).unwrap();
    made.cert.der().clone()
}

fn h2_client(
    trusted: CertificateDer<'static>,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector)
}

async fn get(
    client: &Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
    url: &str,
) -> Result<(Version, u16, String), String> {
    let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (version, status) = (response.version(), response.status().as_u16());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((version, status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn https_with_http2_reaches_the_upstream_and_a_new_certificate_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let first = certificate(dir.path(), "first");
    let a = Upstream::start("a").await;
    let mut cfg = config("tls", Balance::RoundRobin, &[&a]);
    cfg.tls = Some(TlsConfig {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        reload_interval_ms: 50,
    });
    let gw = Gateway::start(cfg).await;
    let url = format!("https://localhost:{}/v1/x", gw.running.local_addr().port());

    let (version, status, body) = get(&h2_client(first.clone()), &url).await.unwrap();
    assert_eq!(
        (version, status, body.as_str()),
        (Version::HTTP_2, 200, "a")
    );
    let seen = a.last_headers.lock().unwrap().clone();
    assert_eq!(seen["x-forwarded-proto"], "https");
    let authority = format!("localhost:{}", gw.running.local_addr().port());
    assert_eq!(seen["x-forwarded-host"], authority.as_str());

    let second = certificate(dir.path(), "second");
    wait_until("new connections get the new certificate", || async {
        get(&h2_client(second.clone()), &url).await.is_ok()
    })
    .await;
    assert!(
        get(&h2_client(first), &url).await.is_err(),
        "the old certificate is gone"
    );
}

#[tokio::test]
async fn a_missing_certificate_file_stops_the_start_with_a_clear_error() {
    let a = Upstream::start("a").await;
    let mut cfg = config("tls-missing", Balance::RoundRobin, &[&a]);
    cfg.tls = Some(TlsConfig {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
        reload_interval_ms: 50,
    });
    let err = emporium_gateway::run(cfg, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/cert.pem"),
        "{err:#}"
    );
}
