//! Hardening every route shares: what an unauthenticated client can make the process keep
//! (metric labels), the headers that keep browsers from sniffing, caching or framing, the answers
//! for wrong methods on guarded routes, the characters and shapes input may have, and the modes
//! of the files the server creates.

use std::collections::BTreeSet;

use reqwest::Method;

use crate::helpers::TestApp;

/// The methods that keep their own label value; every other is `other`.
const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// The values a label takes on the request metrics.
fn label_values(metrics: &str, label: &str) -> BTreeSet<String> {
    let prefix = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("emporium_http_request"))
        .filter_map(|l| {
            let start = l.find(&prefix)? + prefix.len();
            let len = l[start..].find('"')?;
            Some(l[start..start + len].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_method_tokens_share_one_metric_label_and_raw_paths_none() {
    let app = TestApp::spawn().await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let paths = [
        format!("/v1/store/products/prod_{marker}"),
        format!("/nowhere/{marker}"),
        "/v1/auth/register".to_owned(),
    ];
    for i in 0..300 {
        let token = format!("M{}", uuid::Uuid::new_v4().simple()).to_ascii_uppercase();
        let method = Method::from_bytes(token.as_bytes()).unwrap();
        let path = &paths[i % paths.len()];
        app.client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
    }

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let methods = label_values(&metrics, "method");
    assert!(methods.contains("other"), "{methods:?}");
    let unexpected: Vec<_> = methods
        .iter()
        .filter(|m| *m != "other" && !STANDARD_METHODS.contains(&m.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "method labels {unexpected:?}");
    assert!(!metrics.contains(&marker), "a raw path became a label");
    for route in label_values(&metrics, "route") {
        assert!(
            route == "unmatched" || route.starts_with('/'),
            "route label {route}"
        );
    }
    for status in label_values(&metrics, "status") {
        assert!(
            status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
            "status label {status}"
        );
    }
}
