//! Watch history as kube-apiserver's watch cache keeps it (spec §6): per resource type, at least
//! `history_min` events, every event younger than `history_fresh`, at most `history_limit`; a watch
//! from a resourceVersion older than that, or older than the server's start, gets 410 Expired
//! inside the stream.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};
use serde_json::{Value, json};

use crate::target::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const WAIT: Duration = Duration::from_secs(5);

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
}

fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The first event of a watch from `rv`.
async fn first_event(c: &RawClient, path: &str, rv: u64) -> Result<Value, TestError> {
    let mut watch = c
        .watch(&format!("{path}?watch=true&resourceVersion={rv}"))
        .await?;
    Ok(watch.next(WAIT).await?.unwrap_or(Value::Null))
}

/// The version a 410 Expired message names as the oldest kept, less one: `N` in `too old resource
/// version: RV (N)`.
fn oldest_named(message: &str, rv: u64) -> Option<u64> {
    message
        .strip_prefix(&format!("too old resource version: {rv} ("))?
        .strip_suffix(')')?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_watch_from_before_the_server_started_is_expired() -> Result<(), TestError> {
    let (server, c) = crate::target::start(Options::default()).await?;
    let list = c.get(CM).await?;
    let listed = rv_of(&list.body);
    assert!(listed > 1, "the initial namespaces were created");
    let ev = first_event(&c, CM, 1).await?;
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // The history starts where the server started (a real server's watch cache, when it first listed
    // ConfigMaps): after version 1, no later than the list. A fresh emulator has written nothing since.
    let message = ev["object"]["message"].as_str().unwrap_or_default();
    let started = oldest_named(message, 1);
    assert!(
        started.is_some_and(|started| started > 1 && started <= listed),
        "{message}"
    );
    if let Server::Emulator(_) = server {
        assert_eq!(started, Some(listed), "{message}");
    }
    // From the list's version: only what came after.
    c.post(CM, &cm("a")).await?;
    let ev = first_event(&c, CM, listed).await?;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "a");
    Ok(())
}

#[tokio::test]
async fn stale_events_beyond_the_minimum_are_dropped_per_resource_type() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options {
        history_min: 2,
        history_fresh: Duration::ZERO,
        ..Options::default()
    })
    .await?;
    let mut rvs = Vec::new();
    for name in ["c0", "c1", "c2", "c3", "c4"] {
        rvs.push(rv_of(&c.post(CM, &cm(name)).await?.body));
    }
    // c3 and c4 are kept: a watch may resume from c2's version, not from c1's.
    let ev = first_event(&c, CM, rvs[2]).await?;
    assert_eq!(ev["object"]["metadata"]["name"], "c3", "{ev}");
    let ev = first_event(&c, CM, rvs[1]).await?;
    assert_eq!(ev["object"]["code"], 410, "{ev}");
    assert_eq!(
        ev["object"]["message"],
        format!("too old resource version: {} ({})", rvs[1], rvs[3] - 1)
    );
    // Another type's history is its own: Secrets lost nothing.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    c.post(SECRETS, &secret).await?;
    let ev = first_event(&c, SECRETS, rvs[0]).await?;
    assert_eq!(ev["type"], "ADDED", "{ev}");
    Ok(())
}

#[tokio::test]
async fn fresh_events_are_kept_beyond_the_minimum() -> Result<(), TestError> {
    // A real server keeps far more history; it must still deliver the event after `first`.
    let (_server, c) = crate::target::start(Options {
        history_min: 2,
        ..Options::default()
    })
    .await?;
    let first = rv_of(&c.post(CM, &cm("c0")).await?.body);
    for name in ["c1", "c2", "c3", "c4"] {
        c.post(CM, &cm(name)).await?;
    }
    let ev = first_event(&c, CM, first).await?;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "c1");
    Ok(())
}
