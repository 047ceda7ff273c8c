//! Gray release by version, and run-time changes of instances and configuration under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use emporium_gateway::{Balance, ReleaseConfig};

use crate::support::{Gateway, TestClient, Upstream, config, spread};

fn release(weights: &[(&str, u32)]) -> ReleaseConfig {
    ReleaseConfig {
        weights: weights.iter().map(|(v, w)| ((*v).to_owned(), *w)).collect(),
        header: "x-emporium-version".to_owned(),
        cookie: "emporium_version".to_owned(),
    }
}

#[tokio::test]
async fn weights_header_and_cookie_choose_the_version_and_a_reload_rolls_back_at_once() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let mut cfg = config("gray", Balance::RoundRobin, &[&v1, &v2]);
    cfg.upstreams.get_mut("gray").unwrap().instances[1].version = "2".to_owned();
    cfg.release
        .insert("gray".to_owned(), release(&[("1", 100), ("2", 0)]));
    let gw = Gateway::start(cfg.clone()).await;
    let client = TestClient::new();
    let url = format!("{}/v1/x", gw.base);

    assert_eq!(spread(&client, &url, 30, &[]).await.get("v1"), Some(&30));
    let by_header = spread(&client, &url, 10, &[("x-emporium-version", "2")]).await;
    assert_eq!(by_header.get("v2"), Some(&10));
    let by_cookie = spread(&client, &url, 10, &[("cookie", "emporium_version=2")]).await;
    assert_eq!(by_cookie.get("v2"), Some(&10));

    cfg.release
        .insert("gray".to_owned(), release(&[("1", 0), ("2", 100)]));
    gw.running.reload(cfg.clone()).await.unwrap();
    assert_eq!(spread(&client, &url, 20, &[]).await.get("v2"), Some(&20));

    cfg.release
        .insert("gray".to_owned(), release(&[("1", 50), ("2", 50)]));
    gw.running.reload(cfg).await.unwrap();
    let split = spread(&client, &url, 200, &[]).await;
    assert!(split["v1"] > 40 && split["v2"] > 40, "{split:?}");
}

#[tokio::test]
async fn changing_instances_and_reloading_under_load_loses_no_request() {
    let ups = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let cfg = config("live", Balance::LeastOutstanding, &[&ups[0], &ups[1]]);
    let gw = Arc::new(Gateway::start(cfg.clone()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (gw, stop, sent) = (gw.clone(), stop.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let client = TestClient::new();
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let answer = client.get(&format!("{}/v1/x", gw.base)).await;
                sent.fetch_add(1, Ordering::SeqCst);
                if answer.status != 200 {
                    failures.push(answer);
                }
            }
            failures
        }));
    }
    let sets: [&[usize]; 5] = [&[1, 2], &[2], &[0, 2], &[0], &[0, 1, 2]];
    for (round, set) in sets.iter().enumerate() {
        let before = sent.load(Ordering::SeqCst);
        crate::support::wait_until("some requests went through", || async {
            sent.load(Ordering::SeqCst) >= before + 20
        })
        .await;
        let instances = set.iter().map(|i| ups[*i].instance()).collect();
        gw.running.set_instances("live", instances).await.unwrap();
        if round % 2 == 0 {
            let mut reloaded = cfg.clone();
            reloaded.upstreams.get_mut("live").unwrap().instances =
                set.iter().map(|i| ups[*i].instance()).collect();
            gw.running.reload(reloaded).await.unwrap();
        }
    }
    let before = sent.load(Ordering::SeqCst);
    crate::support::wait_until("the last set served requests", || async {
        sent.load(Ordering::SeqCst) >= before + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }

    assert!(failures.is_empty(), "{failures:?}");
    let served: usize = ups.iter().map(Upstream::hits).sum();
    assert_eq!(served, sent.load(Ordering::SeqCst));
    assert!(ups.iter().all(|u| u.hits() > 0));
}

#[tokio::test]
async fn set_instances_refuses_a_bad_url_and_keeps_the_old_set() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(config("bad-set", Balance::RoundRobin, &[&a])).await;
    let err = gw
        .running
        .set_instances("bad-set", vec![emporium_gateway::Instance::new("ftp://x")])
        .await
        .unwrap_err();
    assert_eq!(err.key, "instances[0].url");
    assert_eq!(gw.running.upstream_status("bad-set").len(), 1);
    assert_eq!(
        TestClient::new()
            .get(&format!("{}/v1/x", gw.base))
            .await
            .status,
        200
    );
}
