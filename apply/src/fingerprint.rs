//! Remembered comparisons. Whether a desired body is already in sync with a live object is a pure
//! function of the two, and a live object cannot change without a new resourceVersion. So once a
//! comparison said "in sync", the engine keeps the desired body's fingerprint beside that version of
//! the cached object (the cache drops it when the watch brings another version, unless that one
//! differs only in status) and answers the same
//! question again without parsing the cached object: at steady state every desired object of every
//! resync asks it, and the parse was most of a reconcile's CPU.

use std::hash::{BuildHasher, Hash, Hasher};

use serde_json::Value;

/// A 64-bit fingerprint of a JSON value. Equal values (including map key order, which the desired
/// graph builds deterministically) give equal fingerprints; a collision between two different
/// desired bodies of the same object is as likely as 2^-64 and would only delay a write until
/// the live object next changes. Fingerprints never leave the process.
///
/// foldhash's quality variant, not std's SipHash: the values are ours (no hash-flooding to
/// resist), and SipHash's cost per small write (every tag, length and key) made fingerprinting
/// a desired graph ~10% of a cold-start reconcile.
pub(crate) fn fingerprint(value: &Value) -> u64 {
    const SEED: foldhash::quality::FixedState =
        foldhash::quality::FixedState::with_seed(0x6669_656c_6477_6973);
    let mut hasher = SEED.build_hasher();
    hash_value(value, &mut hasher);
    hasher.finish()
}

fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    // A tag per variant, so that e.g. the string "1" and the number 1 differ.
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => {
            2u8.hash(hasher);
            if let Some(i) = n.as_i64() {
                (0u8, i).hash(hasher);
            } else if let Some(u) = n.as_u64() {
                (1u8, u).hash(hasher);
            } else {
                (2u8, n.as_f64().map(f64::to_bits)).hash(hasher);
            }
        }
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            for item in items {
                hash_value(item, hasher);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(hasher);
            for (key, item) in map {
                key.hash(hasher);
                hash_value(item, hasher);
            }
        }
    }
}

/// What the engine found about one cached object. The cache keeps it beside exactly the version
/// of the object it was found about, and drops it when the watch brings another (but for a
/// version that differs only in status, see `KindState::findings_for` in the cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Findings {
    /// The fingerprint of a desired body found in sync with the object.
    in_sync_with: Option<u64>,
    /// Our apply entry did not own `spec.replicas` (no handover needed).
    replicas_released: bool,
}

/// Which finding to remember or ask about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finding {
    InSyncWith(u64),
    ReplicasReleased,
}

impl Findings {
    /// Whether `finding` was found.
    pub fn holds(&self, finding: Finding) -> bool {
        match finding {
            Finding::InSyncWith(desired) => self.in_sync_with == Some(desired),
            Finding::ReplicasReleased => self.replicas_released,
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Adds `finding` (a body found in sync replaces the one found before).
    pub fn add(&mut self, finding: Finding) {
        match finding {
            Finding::InSyncWith(desired) => self.in_sync_with = Some(desired),
            Finding::ReplicasReleased => self.replicas_released = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_values_have_equal_fingerprints() {
        let a = json!({"spec": {"replicas": 2, "template": {"labels": {"app": "x"}}}});
        let b = json!({"spec": {"replicas": 2, "template": {"labels": {"app": "x"}}}});
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn any_difference_changes_the_fingerprint() {
        let base = json!({"spec": {"replicas": 2, "env": [{"name": "A", "value": "1"}]}});
        let variants = [
            json!({"spec": {"replicas": 3, "env": [{"name": "A", "value": "1"}]}}),
            json!({"spec": {"replicas": "2", "env": [{"name": "A", "value": "1"}]}}),
            json!({"spec": {"replicas": 2, "env": [{"name": "A", "value": "2"}]}}),
            json!({"spec": {"replicas": 2, "env": [{"name": "A", "value": "1"}, null]}}),
            json!({"spec": {"replicas": 2, "env": []}}),
            json!({"spec": {"replicas": 2}}),
            json!({"spec": {"replicas": 2, "env": {"name": "A", "value": "1"}}}),
        ];
        for variant in variants {
            assert_ne!(fingerprint(&base), fingerprint(&variant), "{variant}");
        }
    }

    #[test]
    fn findings_hold_what_was_added() {
        let mut found = Findings::default();
        assert!(!found.holds(Finding::InSyncWith(7)));
        assert!(!found.holds(Finding::ReplicasReleased));
        found.add(Finding::InSyncWith(7));
        found.add(Finding::ReplicasReleased);
        assert!(found.holds(Finding::InSyncWith(7)));
        assert!(found.holds(Finding::ReplicasReleased));
        assert!(!found.holds(Finding::InSyncWith(8)));
        found.add(Finding::InSyncWith(8));
        assert!(found.holds(Finding::InSyncWith(8)));
        assert!(!found.holds(Finding::InSyncWith(7)));
    }

    #[test]
    fn nesting_is_part_of_the_fingerprint() {
        // Same keys and leaves in a different shape.
        assert_ne!(
            fingerprint(&json!([["a"], "b"])),
            fingerprint(&json!([["a", "b"]]))
        );
        assert_ne!(
            fingerprint(&json!({"a": {"b": null}})),
            fingerprint(&json!({"a": null, "b": null}))
        );
    }
}
