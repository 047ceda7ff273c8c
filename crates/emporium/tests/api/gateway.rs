//! `emporium gateway` as a process: it loads its TOML file, proxies to a real upstream, refuses
//! `/internal`, applies a changed file on SIGHUP and stops cleanly on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;

use crate::events::{free_port, wait_exit};
use crate::helpers::eventually;

fn gateway_file(port: u16, upstream: &str, prefixes: &[&str]) -> String {
    let mut text = format!(
        "listen = \"127.0.0.1:{port}\"\n[upstreams.catalog]\ninstances = [{{ url = \"{upstream}\" }}]\n"
    );
    for prefix in prefixes {
        text.push_str(&format!(
            "[[routes]]\nprefix = \"{prefix}\"\ngroup = \"catalog\"\n"
        ));
    }
    text
}

fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_gateway_command_proxies_refuses_internal_reloads_on_sighup_and_stops() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .route("/v1/store/products", get(|| async { "products" }))
        .route("/v2/store/products", get(|| async { "v2 products" }))
        .route("/internal/stock", get(|| async { "secret" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let port = free_port();
    std::fs::write(&file, gateway_file(port, &upstream, &["/v1", "/"])).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .arg("gateway")
        .arg("--config")
        .arg(&file)
        .env_remove("EMPORIUM_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("emporium gateway starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(Duration::from_secs(30), || async {
        client
            .get(format!("{base}/gateway/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "the gateway became ready");

    let products = client
        .get(format!("{base}/v1/store/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(products.status(), StatusCode::OK);
    assert_eq!(products.text().await.unwrap(), "products");
    let internal = client
        .get(format!("{base}/internal/stock"))
        .send()
        .await
        .unwrap();
    assert_eq!(internal.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        internal.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = internal.json().await.unwrap();
    assert_eq!(body["code"], "not_found");

    // Only `/v2` is routed after the reload.
    std::fs::write(&file, gateway_file(port, &upstream, &["/v2"])).unwrap();
    signal(&child, "HUP");
    let reloaded = eventually(Duration::from_secs(10), || async {
        client
            .get(format!("{base}/v1/store/products"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::NOT_FOUND)
    })
    .await;
    assert!(reloaded, "the reload took effect");
    let v2 = client
        .get(format!("{base}/v2/store/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(v2.text().await.unwrap(), "v2 products");

    signal(&child, "TERM");
    assert!(wait_exit(&mut child).await.success());
    server.abort();
}

#[tokio::test]
async fn the_gateway_command_refuses_a_bad_file_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        "[[routes]]\nprefix = \"/v1\"\ngroup = \"catalog\"\nbalance = \"hash\"\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .arg("gateway")
        .arg("--config")
        .arg(&file)
        .env_remove("EMPORIUM_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("routes[0].hash_on"), "{stderr}");
}
