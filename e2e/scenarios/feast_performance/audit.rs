//! The control plane's audit log (`$FIELDWISE_CLUSTER_STATE/logs/audit.log`, one JSON event a line),
//! read as it grows: every request of one client, told apart by its `User-Agent`, by verb.

use std::{
    collections::{BTreeMap, HashSet},
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

/// The verbs that change something.
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

pub fn is_write(verb: &str) -> bool {
    WRITE_VERBS.contains(&verb)
}

/// One request, as the API server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub verb: String,
    pub agent: String,
    pub received: Timestamp,
    /// `resource[/subresource]`, or the path of a non-resource request (discovery).
    pub resource: String,
    pub code: Option<u16>,
}

/// The fields of an audit event this reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "auditID")]
    audit_id: String,
    verb: String,
    #[serde(default)]
    user_agent: String,
    request_received_timestamp: Timestamp,
    #[serde(rename = "requestURI")]
    request_uri: String,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
}

#[derive(Deserialize)]
struct ResponseStatus {
    code: Option<u16>,
}

/// The audit log of the control plane whose kubeconfig is `kubeconfig` (both live in its state
/// directory), with every request read so far.
pub struct AuditLog {
    path: PathBuf,
    offset: u64,
    /// A line the API server had not finished writing at the last read.
    partial: String,
    /// A watch is logged when it starts and again when it ends, under one id: counted once.
    seen: HashSet<String>,
    pub requests: Vec<Request>,
}

impl AuditLog {
    /// Refuses a log that leaves reads out: the counts by verb would lack them.
    pub fn beside(kubeconfig: &Path) -> Self {
        let state = kubeconfig
            .parent()
            .expect("the kubeconfig is in the state directory");
        let policy = std::fs::read_to_string(state.join("audit-policy.yaml"))
            .unwrap_or_else(|e| panic!("no audit policy beside {}: {e}", kubeconfig.display()));
        assert!(
            !policy.contains("verbs: [get, list, watch]"),
            "the control plane's audit log leaves reads out: start it with \
             FIELDWISE_CLUSTER_AUDIT_READS=1 e2e/cluster/up"
        );
        Self {
            path: state.join("logs/audit.log"),
            offset: 0,
            partial: String::new(),
            seen: HashSet::new(),
            requests: Vec::new(),
        }
    }

    /// Reads what was appended since the last call.
    pub fn read_new(&mut self) {
        let mut file = std::fs::File::open(&self.path)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        assert!(
            length >= self.offset,
            "{} was rotated while being read",
            self.path.display()
        );
        file.seek(SeekFrom::Start(self.offset)).expect("seekable");
        let mut text = std::mem::take(&mut self.partial);
        let read = file.read_to_string(&mut text).expect("readable audit log");
        self.offset += read as u64;
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        self.partial = text[complete..].to_owned();
        for line in text[..complete].lines() {
            self.add(line);
        }
    }

    fn add(&mut self, line: &str) {
        let Some(event) = parse(line) else {
            return;
        };
        if !self.seen.insert(event.audit_id.clone()) {
            return;
        }
        self.requests.push(request(event));
    }

    /// The requests of the client whose `User-Agent` starts with `agent`, received in `[from, to)`.
    pub fn of<'a>(
        &'a self,
        agent: &'a str,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Iterator<Item = &'a Request> + 'a {
        self.requests
            .iter()
            .filter(move |r| r.agent.starts_with(agent) && r.received >= from && r.received < to)
    }

    /// When the client last wrote since `since`, or `since`.
    pub fn last_write(&self, agent: &str, since: Timestamp) -> Timestamp {
        self.of(agent, since, Timestamp::MAX)
            .filter(|r| is_write(&r.verb))
            .map(|r| r.received)
            .max()
            .unwrap_or(since)
    }

    /// When the client last wrote to anything but a FeatureStore (or its status) since `since`, or
    /// `since`.
    pub fn last_child_write(&self, agent: &str, since: Timestamp) -> Timestamp {
        self.of(agent, since, Timestamp::MAX)
            .filter(|r| is_write(&r.verb) && !r.resource.starts_with("featurestores"))
            .map(|r| r.received)
            .max()
            .unwrap_or(since)
    }

    /// Waits until the client has sent no write for `quiet` (reading the log as it grows: nothing
    /// announces an audit event, so the file is polled), at most `limit`. Returns when it was seen
    /// quiet, and whether it was before `limit`.
    pub async fn until_quiet(
        &mut self,
        agent: &str,
        since: Timestamp,
        quiet: Duration,
        limit: Duration,
    ) -> (Timestamp, bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.read_new();
            let now = Timestamp::now();
            let last = self.last_write(agent, since);
            if now.duration_since(last).unsigned_abs() >= quiet {
                return (now, true);
            }
            if tokio::time::Instant::now() >= deadline {
                return (now, false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn parse(line: &str) -> Option<Event> {
    serde_json::from_str(line).ok()
}

fn request(event: Event) -> Request {
    let resource = match &event.object_ref {
        Some(object) if object.subresource.is_empty() => object.resource.clone(),
        Some(object) => format!("{}/{}", object.resource, object.subresource),
        None => event
            .request_uri
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    Request {
        verb: event.verb,
        agent: event.user_agent,
        received: event.request_received_timestamp,
        resource,
        code: event.response_status.and_then(|status| status.code),
    }
}

/// Requests by verb, with how many of them the API server refused (answered 400 or more).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub by_verb: BTreeMap<String, u64>,
    pub by_verb_and_resource: BTreeMap<(String, String), u64>,
    pub refused: u64,
}

impl Counts {
    pub fn of<'a>(requests: impl Iterator<Item = &'a Request>) -> Self {
        let mut counts = Self::default();
        for request in requests {
            *counts.by_verb.entry(request.verb.clone()).or_default() += 1;
            let key = (request.verb.clone(), request.resource.clone());
            *counts.by_verb_and_resource.entry(key).or_default() += 1;
            if request.code.is_some_and(|code| code >= 400) {
                counts.refused += 1;
            }
        }
        counts
    }

    pub fn total(&self) -> u64 {
        self.by_verb.values().sum()
    }

    pub fn writes(&self) -> u64 {
        self.by_verb
            .iter()
            .filter(|(verb, _)| is_write(verb))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn reads(&self) -> u64 {
        self.total() - self.writes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCH_STARTED: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseStarted","requestURI":"/api/v1/secrets?watch=true","verb":"watch","userAgent":"manager/v0.0.0 (linux/amd64) kubernetes/$Format","objectRef":{"resource":"secrets","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-05T06:40:00.000001Z","stageTimestamp":"2026-12-05T06:40:00.000100Z"}"#;
    const WATCH_ENDED: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/secrets?watch=true","verb":"watch","userAgent":"manager/v0.0.0 (linux/amd64) kubernetes/$Format","objectRef":{"resource":"secrets","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-05T06:40:00.000001Z","stageTimestamp":"2026-12-05T06:45:00.000100Z"}"#;
    const STATUS_UPDATE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"b2","stage":"ResponseComplete","requestURI":"/apis/feast.dev/v1/namespaces/n/featurestores/s/status","verb":"update","userAgent":"manager/v0.0.0","objectRef":{"resource":"featurestores","namespace":"n","name":"s","apiGroup":"feast.dev","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":409},"requestReceivedTimestamp":"2026-12-05T06:40:01Z","stageTimestamp":"2026-12-05T06:40:01.1Z"}"#;
    const DISCOVERY: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"c3","stage":"ResponseComplete","requestURI":"/apis?timeout=32s","verb":"get","userAgent":"fieldwise/0.1.0","responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-05T06:40:02Z","stageTimestamp":"2026-12-05T06:40:02Z"}"#;

    fn log_of(lines: &[&str]) -> AuditLog {
        let mut log = AuditLog {
            path: PathBuf::new(),
            offset: 0,
            partial: String::new(),
            seen: HashSet::new(),
            requests: Vec::new(),
        };
        for line in lines {
            log.add(line);
        }
        log
    }

    #[test]
    fn a_watch_logged_at_start_and_end_counts_once() {
        let log = log_of(&[WATCH_STARTED, STATUS_UPDATE, WATCH_ENDED]);
        let counts = Counts::of(log.of("manager/", Timestamp::MIN, Timestamp::MAX));
        assert_eq!(counts.by_verb.get("watch"), Some(&1));
        assert_eq!(counts.by_verb.get("update"), Some(&1));
        assert_eq!((counts.total(), counts.writes(), counts.reads()), (2, 1, 1));
        assert_eq!(counts.refused, 1, "the 409");
        let key = ("update".to_owned(), "featurestores/status".to_owned());
        assert_eq!(counts.by_verb_and_resource.get(&key), Some(&1));
    }

    #[test]
    fn clients_and_windows_are_told_apart() {
        let log = log_of(&[WATCH_STARTED, STATUS_UPDATE, DISCOVERY]);
        let from: Timestamp = "2026-12-05T06:40:01Z".parse().unwrap();
        let to: Timestamp = "2026-12-05T06:40:02Z".parse().unwrap();
        let feast: Vec<_> = log.of("manager/", from, Timestamp::MAX).collect();
        assert_eq!(feast.len(), 1, "the watch began before the window");
        assert_eq!(
            log.of("fieldwise/", from, to).count(),
            0,
            "the window ends before it"
        );
        let discovery: Vec<_> = log.of("fieldwise/", from, Timestamp::MAX).collect();
        assert_eq!(
            discovery[0].resource, "/apis",
            "a non-resource request by its path"
        );
        assert_eq!(log.last_write("manager/", Timestamp::MIN), from);
        assert_eq!(
            log.last_child_write("manager/", Timestamp::MIN),
            Timestamp::MIN,
            "a status write is not a child's"
        );
        assert_eq!(
            log.last_write("fieldwise/", to),
            to,
            "none since: the start"
        );
    }

    #[test]
    fn a_line_still_being_written_waits_for_the_next_read() {
        let directory = std::env::temp_dir().join(format!("audit-test-{}", std::process::id()));
        std::fs::create_dir_all(directory.join("logs")).unwrap();
        std::fs::write(
            directory.join("audit-policy.yaml"),
            "rules:\n- level: Metadata\n",
        )
        .unwrap();
        let audit = directory.join("logs/audit.log");
        let (first, rest) = STATUS_UPDATE.split_at(40);
        std::fs::write(&audit, format!("{WATCH_STARTED}\n{first}")).unwrap();
        let mut log = AuditLog::beside(&directory.join("kubeconfig"));
        log.read_new();
        assert_eq!(log.requests.len(), 1);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&audit)
            .unwrap();
        std::io::Write::write_all(&mut file, format!("{rest}\n").as_bytes()).unwrap();
        log.read_new();
        assert_eq!(log.requests.len(), 2);
        assert_eq!(log.requests[1].verb, "update");
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
