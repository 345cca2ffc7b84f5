//! Fault injection for the emulator: errors per verb (500, 429 with Retry-After, 409), added latency,
//! dropped watch streams, forced 410 Expired, and a restart that drops every watch but keeps the
//! stored objects.
//!
//! Decisions are deterministic: whether request number *n* to a given method and path fails
//! depends only on the seed, the rule and *n*, never on timing or on other paths' traffic, so a
//! seeded run injects the same faults into the same requests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fieldwise_e2e::faults::{ErrorKind, ErrorRule, FaultConfig, Faults};
//! let handle = fieldwise_e2e::Emulator::start(Default::default()).await?;
//! let faults = Faults::install(&handle, FaultConfig { seed: 7, ..FaultConfig::default() });
//! faults.add_error(ErrorRule::writes(0.2, ErrorKind::Internal));
//! faults.drop_watches();
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, json};
use tokio::task::JoinHandle;

use crate::emulator::{
    ApiError, ApiServer, EmulatorHandle, RequestHook, RequestInfo, WatchInterrupt,
};

/// The error an [`ErrorRule`] answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// 500 InternalError.
    Internal,
    /// 429 TooManyRequests with `Retry-After` (header and `details.retryAfterSeconds`).
    TooManyRequests { retry_after_seconds: u64 },
    /// 409 Conflict ("the object has been modified").
    Conflict,
}

/// Fail a fraction of the matching requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRule {
    /// Kubernetes verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...);
    /// empty matches every verb.
    pub verbs: Vec<String>,
    /// Plural resource (`deployments`); `None` matches every resource.
    pub resource: Option<String>,
    /// Field manager of a write (`fieldwise`); `None` matches every request.
    pub field_manager: Option<String>,
    /// Fraction of the matching requests that fail, 0.0 to 1.0.
    pub rate: f64,
    pub kind: ErrorKind,
}

impl ErrorRule {
    /// Every request with one of `verbs`.
    pub fn verbs(verbs: &[&str], rate: f64, kind: ErrorKind) -> Self {
        ErrorRule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            resource: None,
            field_manager: None,
            rate,
            kind,
        }
    }

    /// Every write (create, update, patch, delete, deletecollection).
    pub fn writes(rate: f64, kind: ErrorKind) -> Self {
        Self::verbs(
            &["create", "update", "patch", "delete", "deletecollection"],
            rate,
            kind,
        )
    }

    fn matches(&self, req: &RequestInfo) -> bool {
        (self.verbs.is_empty() || self.verbs.contains(&req.verb))
            && self.resource.as_ref().is_none_or(|r| *r == req.resource)
            && self
                .field_manager
                .as_ref()
                .is_none_or(|m| *m == req.field_manager)
    }
}

/// Delay matching requests.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyRule {
    /// Verbs delayed; empty delays every request.
    pub verbs: Vec<String>,
    /// Plural resource (`secrets`); `None` delays every resource.
    pub resource: Option<String>,
    pub delay: Duration,
}

/// What to inject from the start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    pub seed: u64,
    pub errors: Vec<ErrorRule>,
    pub latency: Vec<LatencyRule>,
    /// End every watch stream this often (as flaky connections do).
    pub drop_watches_every: Option<Duration>,
}

/// How many faults were injected, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub internal: u64,
    pub too_many_requests: u64,
    pub conflict: u64,
    pub expired_watches: u64,
    pub delayed: u64,
}

#[derive(Default)]
struct State {
    config: FaultConfig,
    /// Requests seen per (rule, method + path): the position that decides each request's fate.
    seen: HashMap<(usize, String), u64>,
    /// Watches with a resourceVersion still to be answered with 410.
    expire_next: u32,
    stats: FaultStats,
}

struct Hook {
    state: Mutex<State>,
}

impl Hook {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// SplitMix64: a well-mixed 64-bit hash of the seed and the request's position.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A uniform number in [0, 1) for this seed, rule, request and occurrence.
fn roll(seed: u64, rule: usize, target: &str, n: u64) -> f64 {
    let h = mix(seed ^ mix(rule as u64 ^ mix(fnv(target) ^ mix(n))));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn error_for(kind: &ErrorKind, req: &RequestInfo) -> ApiError {
    match kind {
        ErrorKind::Internal => ApiError::internal_error("injected fault"),
        ErrorKind::TooManyRequests {
            retry_after_seconds,
        } => {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            let mut d = Map::new();
            d.insert("retryAfterSeconds".into(), json!(retry_after_seconds));
            e.details = Some(Box::new(d));
            e
        }
        ErrorKind::Conflict => {
            let qualified = if req.group.is_empty() {
                req.resource.clone()
            } else {
                format!("{}.{}", req.resource, req.group)
            };
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {qualified} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    req.name
                ),
            );
            let mut d = Map::new();
            d.insert("name".into(), json!(req.name));
            if !req.group.is_empty() {
                d.insert("group".into(), json!(req.group));
            }
            d.insert("kind".into(), json!(req.resource));
            e.details = Some(Box::new(d));
            e
        }
    }
}

fn resumes(req: &RequestInfo) -> bool {
    form_urlencoded::parse(req.query.as_bytes())
        .any(|(k, v)| k == "resourceVersion" && !v.is_empty() && v != "0")
}

impl RequestHook for Hook {
    fn before(&self, req: &RequestInfo) -> Option<ApiError> {
        let mut st = self.state();
        if req.verb == "watch" && st.expire_next > 0 && resumes(req) {
            st.expire_next -= 1;
            st.stats.expired_watches += 1;
            return Some(ApiError::expired(
                "too old resource version: injected fault",
            ));
        }
        let target = format!("{} {}", req.method, req.path);
        let seed = st.config.seed;
        let rules: Vec<(usize, ErrorRule)> = st
            .config
            .errors
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches(req))
            .map(|(i, r)| (i, r.clone()))
            .collect();
        for (i, rule) in rules {
            let n = st.seen.entry((i, target.clone())).or_insert(0);
            *n += 1;
            if roll(seed, i, &target, *n) < rule.rate {
                match rule.kind {
                    ErrorKind::Internal => st.stats.internal += 1,
                    ErrorKind::TooManyRequests { .. } => st.stats.too_many_requests += 1,
                    ErrorKind::Conflict => st.stats.conflict += 1,
                }
                return Some(error_for(&rule.kind, req));
            }
        }
        None
    }

    fn delay(&self, req: &RequestInfo) -> Option<Duration> {
        let mut st = self.state();
        let d = st
            .config
            .latency
            .iter()
            .filter(|l| l.verbs.is_empty() || l.verbs.contains(&req.verb))
            .filter(|l| l.resource.as_ref().is_none_or(|r| *r == req.resource))
            .map(|l| l.delay)
            .max()?;
        st.stats.delayed += 1;
        Some(d)
    }
}

/// The runtime handle of the faults installed on one emulator. Dropping it stops the periodic
/// watch drops; the hook stays installed with whatever configuration it last had, so call
/// [`Faults::clear`] to stop injecting.
pub struct Faults {
    hook: Arc<Hook>,
    server: Arc<ApiServer>,
    dropper: Mutex<Option<JoinHandle<()>>>,
}

impl Faults {
    /// Installs the fault hook on the emulator with `config`.
    pub fn install(handle: &EmulatorHandle, config: FaultConfig) -> Faults {
        let hook = Arc::new(Hook {
            state: Mutex::new(State::default()),
        });
        handle.add_hook(hook.clone());
        let faults = Faults {
            hook,
            server: handle.server().clone(),
            dropper: Mutex::new(None),
        };
        faults.set_config(config);
        faults
    }

    /// Replaces the whole configuration (counts restart, so decisions repeat for the same seed).
    pub fn set_config(&self, config: FaultConfig) {
        let every = config.drop_watches_every;
        {
            let mut st = self.hook.state();
            st.config = config;
            st.seen.clear();
        }
        self.set_watch_drops(every);
    }

    pub fn config(&self) -> FaultConfig {
        self.hook.state().config.clone()
    }

    pub fn add_error(&self, rule: ErrorRule) {
        self.hook.state().config.errors.push(rule);
    }

    pub fn add_latency(&self, rule: LatencyRule) {
        self.hook.state().config.latency.push(rule);
    }

    /// No more errors, latency or periodic drops.
    pub fn clear(&self) {
        // Read first: the guard must be released before set_config locks again.
        let seed = self.hook.state().config.seed;
        self.set_config(FaultConfig {
            seed,
            ..FaultConfig::default()
        });
        self.hook.state().expire_next = 0;
    }

    /// Ends every open watch stream now; clients resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.server.interrupt_watches(WatchInterrupt::Drop);
    }

    /// Ends every open watch stream with a 410 Expired event: clients must list again.
    pub fn expire_watches(&self) {
        self.server.interrupt_watches(WatchInterrupt::Expire);
        self.hook.state().stats.expired_watches += 1;
    }

    /// The next `n` watches that resume from a resourceVersion get 410 Expired in the stream.
    pub fn expire_next_watches(&self, n: u32) {
        self.hook.state().expire_next = n;
    }

    /// An API server restart: every watch stream ends, the stored objects (and resourceVersions)
    /// stay, so clients resume or relist as after a real restart.
    pub fn restart(&self) {
        self.server.interrupt_watches(WatchInterrupt::Drop);
    }

    /// Ends every watch stream every `every` (`None` stops).
    pub fn set_watch_drops(&self, every: Option<Duration>) {
        let mut dropper = self.dropper.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = dropper.take() {
            task.abort();
        }
        if let Some(every) = every.filter(|d| !d.is_zero()) {
            let server = self.server.clone();
            *dropper = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    server.interrupt_watches(WatchInterrupt::Drop);
                }
            }));
        }
    }

    /// Faults injected so far.
    pub fn stats(&self) -> FaultStats {
        self.hook.state().stats.clone()
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        if let Some(task) = self
            .dropper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_are_deterministic_and_roughly_uniform() {
        let a: Vec<f64> = (0..1000).map(|n| roll(7, 0, "PATCH /x", n)).collect();
        let b: Vec<f64> = (0..1000).map(|n| roll(7, 0, "PATCH /x", n)).collect();
        assert_eq!(a, b);
        let below = a.iter().filter(|r| **r < 0.2).count();
        assert!((150..250).contains(&below), "{below} of 1000 below 0.2");
        let c: Vec<f64> = (0..1000).map(|n| roll(8, 0, "PATCH /x", n)).collect();
        assert_ne!(a, c);
    }
}
