//! The namespaces the operator watches (`fieldwise run --namespace`, `WATCH_NAMESPACE`), and one
//! watch stream over several of them for kube's reflector.
//!
//! kube's reflector `Writer` takes one watch's events: an `Init` … `InitDone` (re-)list replaces
//! the whole store. Several namespaces' watches merged as they come would let one namespace's
//! re-list drop every other namespace's objects. [`watch_namespaces`] keeps each namespace's
//! objects apart and hands the store one consistent event stream: a single initial list once every
//! namespace has listed, then changes, and a namespace's later re-list as the changes it amounts
//! to (`Apply` for what it holds, `Delete` for what it no longer holds). For that it keeps its own
//! copy of each object (the owners' compact cached form, the Secrets' trimmed metadata); only in
//! that mode: watching every namespace is one watch straight into the store, as before.

use std::collections::{BTreeMap, HashMap};

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::NamespaceResourceScope,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;

/// The namespaces to watch from `--namespace`/`WATCH_NAMESPACE` values: each value may hold a
/// comma-separated list; spaces around names and empty entries are ignored, duplicates dropped
/// (the first place kept). Empty means every namespace (OLM's AllNamespaces install mode sets
/// `WATCH_NAMESPACE` to ""). An invalid name is an error naming it.
pub fn parse_watch_namespaces(values: &[String]) -> Result<Vec<String>, String> {
    let mut namespaces: Vec<String> = Vec::new();
    for name in values.iter().flat_map(|value| value.split(',')) {
        let name = name.trim();
        if name.is_empty() || namespaces.iter().any(|known| known == name) {
            continue;
        }
        if !is_dns_label(name) {
            return Err(format!(
                "--namespace/WATCH_NAMESPACE: {name:?} is not a namespace name (a DNS-1123 label: \
                 at most 63 lower-case letters, digits and '-', starting and ending with a letter \
                 or digit); separate several namespaces with commas"
            ));
        }
        namespaces.push(name.to_owned());
    }
    Ok(namespaces)
}

/// Whether `name` is a DNS-1123 label, as namespace names are.
fn is_dns_label(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 63
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name.chars().all(|c| alphanumeric(c) || c == '-')
}

/// How the namespaces are named in logs: `<all>` or the comma-separated list.
pub fn describe(namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        "<all>".to_owned()
    } else {
        namespaces.join(",")
    }
}

type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// The watch of `K` in `namespaces` (every namespace when empty: one watch, as kube's reflector
/// expects), with kube's default backoff, each object passed through `modify` as it arrives (before
/// anything keeps it), as one stream for one reflector store.
pub fn watch_namespaces<K>(
    client: &Client,
    namespaces: &[String],
    config: watcher::Config,
    modify: impl Fn(&mut K) + Clone + Send + 'static,
) -> Events<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + 'static,
{
    if namespaces.is_empty() {
        return watcher(Api::<K>::all(client.clone()), config)
            .default_backoff()
            .modify(modify)
            .boxed();
    }
    let watches = namespaces.iter().map(|namespace| {
        let api = Api::<K>::namespaced(client.clone(), namespace);
        let events = watcher(api, config.clone())
            .default_backoff()
            .modify(modify.clone());
        let namespace = namespace.clone();
        events.map(move |event| (namespace.clone(), event)).boxed()
    });
    merge_namespaces(namespaces.len(), futures::stream::select_all(watches))
}

/// One event stream for a reflector store from the events of one watch per namespace, each
/// tagged with its namespace (see the module documentation).
fn merge_namespaces<K>(
    watches: usize,
    events: impl Stream<Item = (String, Result<watcher::Event<K>, watcher::Error>)> + Send + 'static,
) -> Events<K>
where
    K: Resource + Clone + Send + 'static,
{
    let mut merged = Merged::<K>::new(watches);
    let start = futures::stream::iter([Ok(watcher::Event::Init)]);
    let rest = events.flat_map(move |(namespace, event)| {
        let out = match event {
            Ok(event) => merged.on(namespace, event).into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        futures::stream::iter(out)
    });
    start.chain(rest).boxed()
}

/// What [`merge_namespaces`] knows: each namespace's objects and its list in progress.
struct Merged<K> {
    /// Namespaces that have not completed their first list; the merged initial list completes
    /// when none is left.
    unlisted: usize,
    listed: HashMap<String, bool>,
    objects: HashMap<String, BTreeMap<String, K>>,
    listing: HashMap<String, BTreeMap<String, K>>,
}

impl<K: Resource + Clone> Merged<K> {
    fn new(watches: usize) -> Self {
        Self {
            unlisted: watches,
            listed: HashMap::new(),
            objects: HashMap::new(),
            listing: HashMap::new(),
        }
    }

    /// The events for the store after `event` of `namespace`'s watch.
    fn on(&mut self, namespace: String, event: watcher::Event<K>) -> Vec<watcher::Event<K>> {
        let initial = self.unlisted > 0;
        match event {
            watcher::Event::Init => {
                self.listing.insert(namespace, BTreeMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                let listing = self.listing.entry(namespace).or_default();
                listing.insert(object.name_any(), object);
                Vec::new()
            }
            watcher::Event::InitDone => self.listed(namespace),
            watcher::Event::Apply(object) => {
                let objects = self.objects.entry(namespace).or_default();
                objects.insert(object.name_any(), object.clone());
                if initial {
                    Vec::new()
                } else {
                    vec![watcher::Event::Apply(object)]
                }
            }
            watcher::Event::Delete(object) => {
                let objects = self.objects.entry(namespace).or_default();
                objects.remove(&object.name_any());
                if initial {
                    Vec::new()
                } else {
                    vec![watcher::Event::Delete(object)]
                }
            }
        }
    }

    /// `namespace`'s (re-)list completed: during the initial list, the merged list completes when
    /// it was the last; afterwards the re-list is told as the changes it makes.
    fn listed(&mut self, namespace: String) -> Vec<watcher::Event<K>> {
        let listed = self.listing.remove(&namespace).unwrap_or_default();
        let before = self
            .objects
            .insert(namespace.clone(), listed)
            .unwrap_or_default();
        let first = !self.listed.insert(namespace.clone(), true).unwrap_or(false);
        if first {
            self.unlisted = self.unlisted.saturating_sub(1);
            if self.unlisted > 0 {
                return Vec::new();
            }
            let everything = self.objects.values().flat_map(BTreeMap::values);
            let mut events: Vec<_> = everything.cloned().map(watcher::Event::InitApply).collect();
            events.push(watcher::Event::InitDone);
            return events;
        }
        if self.unlisted > 0 {
            return Vec::new();
        }
        let now = &self.objects[&namespace];
        let gone = before
            .into_iter()
            .filter(|(name, _)| !now.contains_key(name));
        let mut events: Vec<_> = gone
            .map(|(_, object)| watcher::Event::Delete(object))
            .collect();
        events.extend(now.values().cloned().map(watcher::Event::Apply));
        events
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::{self, ObjectRef};

    use super::*;

    fn namespaces(values: &[&str]) -> Result<Vec<String>, String> {
        parse_watch_namespaces(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn watch_namespaces_are_comma_separated_trimmed_and_deduplicated() {
        assert_eq!(namespaces(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            namespaces(&[""]).unwrap(),
            Vec::<String>::new(),
            "AllNamespaces"
        );
        assert_eq!(namespaces(&[" , ,"]).unwrap(), Vec::<String>::new());
        assert_eq!(
            namespaces(&["a, b ,,a", "c", "b"]).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(namespaces(&["team-1"]).unwrap(), ["team-1"]);
    }

    #[test]
    fn an_invalid_namespace_is_named_in_the_error() {
        for bad in ["Team", "a_b", "-a", "a-", "a.b", &"x".repeat(64)] {
            let error = namespaces(&["ok", bad]).expect_err(bad);
            assert!(error.contains(&format!("{bad:?}")), "{error}");
            assert!(error.contains("DNS-1123 label"), "{error}");
        }
    }

    fn config_map(namespace: &str, name: &str, version: &str) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.namespace = Some(namespace.to_owned());
        map.metadata.name = Some(name.to_owned());
        map.metadata.resource_version = Some(version.to_owned());
        map
    }

    type Tagged = (String, Result<watcher::Event<ConfigMap>, watcher::Error>);

    fn tagged(namespace: &str, event: watcher::Event<ConfigMap>) -> Tagged {
        (namespace.to_owned(), Ok(event))
    }

    fn list(namespace: &str, names: &[&str]) -> Vec<Tagged> {
        let mut events = vec![tagged(namespace, watcher::Event::Init)];
        for name in names {
            let object = config_map(namespace, name, "1");
            events.push(tagged(namespace, watcher::Event::InitApply(object)));
        }
        events.push(tagged(namespace, watcher::Event::InitDone));
        events
    }

    fn cached(store: &reflector::Store<ConfigMap>) -> Vec<String> {
        let mut keys: Vec<String> = store
            .state()
            .iter()
            .map(|m| format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()))
            .collect();
        keys.sort();
        keys
    }

    /// Feeds the merged stream of `events` into a reflector store.
    async fn reflect(events: Vec<Tagged>, watches: usize) -> reflector::Store<ConfigMap> {
        let (store, writer) = reflector::store();
        let merged = merge_namespaces(watches, futures::stream::iter(events));
        merged.reflect(writer).for_each(|_| async {}).await;
        store
    }

    #[tokio::test]
    async fn the_store_is_ready_once_every_namespace_listed() {
        let a_only = || {
            let mut events = list("a", &["x"]);
            events.push(tagged(
                "a",
                watcher::Event::Apply(config_map("a", "y", "2")),
            ));
            events.push(tagged(
                "a",
                watcher::Event::Delete(config_map("a", "x", "3")),
            ));
            events
        };
        let store = reflect(a_only(), 2).await;
        // (The stream has ended, so the writer is gone: a store never readied says so.)
        let ready = |store: &reflector::Store<ConfigMap>| {
            store
                .wait_until_ready()
                .now_or_never()
                .is_some_and(|r| r.is_ok())
        };
        assert!(!ready(&store), "b has not listed");
        let mut events = a_only();
        events.extend(list("b", &["z"]));
        let store = reflect(events, 2).await;
        assert!(ready(&store));
        assert_eq!(cached(&store), ["a/y", "b/z"]);
    }

    #[tokio::test]
    async fn one_namespace_relisting_keeps_the_others_objects() {
        let mut events = list("a", &["x", "y"]);
        events.extend(list("b", &["z"]));
        // a's watch restarts: y went away meanwhile, w came.
        events.extend(list("a", &["x", "w"]));
        let store = reflect(events, 2).await;
        assert_eq!(cached(&store), ["a/w", "a/x", "b/z"]);
        assert!(store.get(&ObjectRef::new("y").within("a")).is_none());
    }

    use futures::FutureExt as _;
}
