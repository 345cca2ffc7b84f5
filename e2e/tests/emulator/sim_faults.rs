//! Fault injection, observed through a kube client: injected 500/429/409 errors (deterministic for a
//! seed), latency, dropped watch streams, forced 410 Expired, and a restart that keeps the objects.

use std::time::{Duration, Instant};

use fieldwise_e2e::faults::{ErrorKind, ErrorRule, FaultConfig, Faults, LatencyRule};
use fieldwise_e2e::testkit::TestError;
use fieldwise_e2e::{Emulator, EmulatorHandle};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;

const WAIT: Duration = Duration::from_secs(10);

/// A client without kube's retry layer, so every injected error reaches the caller.
fn client(emu: &EmulatorHandle) -> Result<kube::Client, TestError> {
    let mut config = kube::Config::new(emu.url().parse()?);
    config.default_namespace = "default".into();
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

async fn setup() -> Result<(EmulatorHandle, Api<ConfigMap>), TestError> {
    let emu = Emulator::start(Default::default()).await?;
    let api = Api::default_namespaced(client(&emu)?);
    Ok((emu, api))
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn api_code(r: Result<impl Sized, kube::Error>) -> Option<u16> {
    match r {
        Err(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

#[tokio::test]
async fn errors_per_verb_with_500_429_and_409() -> Result<(), TestError> {
    let (emu, api) = setup().await?;
    api.create(&PostParams::default(), &config_map("a")).await?;
    let faults = Faults::install(&emu, FaultConfig::default());

    faults.add_error(ErrorRule::verbs(&["create"], 1.0, ErrorKind::Internal));
    assert_eq!(
        api_code(api.create(&PostParams::default(), &config_map("b")).await),
        Some(500)
    );
    assert!(
        api.get("a").await.is_ok(),
        "reads are not affected by a create rule"
    );

    faults.add_error(ErrorRule::verbs(
        &["get"],
        1.0,
        ErrorKind::TooManyRequests {
            retry_after_seconds: 3,
        },
    ));
    assert_eq!(api_code(api.get("a").await), Some(429));
    let req = http::Request::get("/api/v1/namespaces/default/configmaps/a")
        .body(kube::client::Body::empty())?;
    let resp = client(&emu)?.send(req).await?;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let body = resp.into_body().collect_bytes().await?;
    let status: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(status["details"]["retryAfterSeconds"], 3);

    faults.add_error(ErrorRule::verbs(&["update"], 1.0, ErrorKind::Conflict));
    let current = api.list(&ListParams::default()).await?.items.remove(0);
    let err = api.replace("a", &PostParams::default(), &current).await;
    match err {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => return Err(format!("expected a 409, got {other:?}").into()),
    }
    let stats = faults.stats();
    assert_eq!(
        (stats.internal, stats.too_many_requests, stats.conflict),
        (1, 2, 1)
    );

    faults.clear();
    api.create(&PostParams::default(), &config_map("b")).await?;
    Ok(())
}

/// Which of 200 gets of the same object fail with this seed and rate.
async fn failure_pattern(seed: u64) -> Result<Vec<bool>, TestError> {
    let (emu, api) = setup().await?;
    api.create(&PostParams::default(), &config_map("a")).await?;
    let _faults = Faults::install(
        &emu,
        FaultConfig {
            seed,
            errors: vec![ErrorRule::verbs(&["get"], 0.3, ErrorKind::Internal)],
            ..FaultConfig::default()
        },
    );
    let mut pattern = Vec::new();
    for _ in 0..200 {
        pattern.push(api.get("a").await.is_err());
    }
    Ok(pattern)
}

#[tokio::test]
async fn error_rates_are_deterministic_for_a_seed() -> Result<(), TestError> {
    let first = failure_pattern(42).await?;
    assert_eq!(first, failure_pattern(42).await?, "same seed, same faults");
    assert_ne!(
        first,
        failure_pattern(43).await?,
        "another seed, other faults"
    );
    let failed = first.iter().filter(|f| **f).count();
    assert!(
        (30..90).contains(&failed),
        "{failed} of 200 failed at a 30% rate"
    );
    Ok(())
}

#[tokio::test]
async fn added_latency_delays_matching_requests() -> Result<(), TestError> {
    let (emu, api) = setup().await?;
    api.create(&PostParams::default(), &config_map("a")).await?;
    let faults = Faults::install(
        &emu,
        FaultConfig {
            latency: vec![
                LatencyRule {
                    verbs: vec!["get".into()],
                    resource: None,
                    delay: Duration::from_millis(300),
                },
                LatencyRule {
                    verbs: vec!["list".into()],
                    resource: Some("secrets".into()),
                    delay: Duration::from_millis(300),
                },
            ],
            ..FaultConfig::default()
        },
    );
    let start = Instant::now();
    api.get("a").await?;
    // A lower bound only: the request cannot be answered before the injected delay.
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    api.list(&ListParams::default()).await?;
    assert_eq!(
        faults.stats().delayed,
        1,
        "only the get is delayed (not a list of configmaps)"
    );
    Ok(())
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin),
) -> Result<Option<WatchEvent<ConfigMap>>, TestError> {
    loop {
        match tokio::time::timeout(WAIT, stream.try_next()).await?? {
            Some(WatchEvent::Bookmark(_)) => continue,
            other => return Ok(other),
        }
    }
}

#[tokio::test]
async fn dropped_watch_streams_end_and_resume() -> Result<(), TestError> {
    let (emu, api) = setup().await?;
    let rv = api
        .create(&PostParams::default(), &config_map("a"))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let faults = Faults::install(&emu, FaultConfig::default());
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    api.create(&PostParams::default(), &config_map("b")).await?;
    assert!(matches!(
        next_event(&mut stream).await?,
        Some(WatchEvent::Added(_))
    ));
    faults.drop_watches();
    assert!(next_event(&mut stream).await?.is_none(), "the stream ends");

    // Resuming from the last resourceVersion misses nothing.
    let last = api
        .get("b")
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut resumed = api.watch(&WatchParams::default(), &last).await?.boxed();
    api.create(&PostParams::default(), &config_map("c")).await?;
    match next_event(&mut resumed).await? {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("c")),
        other => return Err(format!("expected c to be added, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn forced_410_expired_in_the_stream() -> Result<(), TestError> {
    let (emu, api) = setup().await?;
    let rv = api
        .create(&PostParams::default(), &config_map("a"))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let faults = Faults::install(&emu, FaultConfig::default());

    // Open streams get an ERROR 410 and end.
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    faults.expire_watches();
    match next_event(&mut stream).await? {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => return Err(format!("expected 410, got {other:?}").into()),
    }
    assert!(next_event(&mut stream).await?.is_none());

    // The next resuming watch is refused with 410 inside a 200 stream, as kube-apiserver does.
    faults.expire_next_watches(1);
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    match next_event(&mut stream).await? {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => return Err(format!("expected 410, got {other:?}").into()),
    }
    assert_eq!(faults.stats().expired_watches, 2);

    // kube's watcher answers 410 by listing again: a second initial listing appears.
    let mut w = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut inits = 0;
    let mut errors = 0;
    while inits < 2 {
        match tokio::time::timeout(WAIT, w.next()).await? {
            Some(Ok(watcher::Event::InitDone)) => {
                inits += 1;
                // The watcher starts its watch only when polled again, so this catches it.
                faults.expire_next_watches(1);
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => errors += 1,
            None => return Err("watcher ended".into()),
        }
    }
    assert_eq!(
        errors, 1,
        "the 410 surfaces once, then the watcher lists again"
    );
    Ok(())
}

#[tokio::test]
async fn restart_drops_watches_and_keeps_objects() -> Result<(), TestError> {
    let (emu, api) = setup().await?;
    let rv = api
        .create(&PostParams::default(), &config_map("a"))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let faults = Faults::install(&emu, FaultConfig::default());
    let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
    faults.restart();
    assert!(next_event(&mut stream).await?.is_none(), "the stream ends");
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    // kube-root-ca.crt was there before the restart too.
    assert_eq!(names, ["a", "kube-root-ca.crt"]);
    // Resuming from before the restart still works: history survives, like etcd's.
    let mut resumed = api.watch(&WatchParams::default(), &rv).await?.boxed();
    api.create(&PostParams::default(), &config_map("b")).await?;
    match next_event(&mut resumed).await? {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("b")),
        other => return Err(format!("expected b, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn periodic_watch_drops() -> Result<(), TestError> {
    let (emu, api) = setup().await?;
    let rv = api
        .create(&PostParams::default(), &config_map("a"))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let _faults = Faults::install(
        &emu,
        FaultConfig {
            drop_watches_every: Some(Duration::from_millis(200)),
            ..FaultConfig::default()
        },
    );
    for _ in 0..2 {
        let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
        assert!(
            next_event(&mut stream).await?.is_none(),
            "dropped by the periodic fault"
        );
    }
    Ok(())
}
