//! Reading which object, and which version of it, a write answered with.
//!
//! Every apply answers with the whole object: spec, status and managedFields. The engine needs only
//! `metadata.uid` and `metadata.resourceVersion`, and reading (even skipping) the rest of every
//! answer was ~8% of a cold-start reconcile's CPU. So the reader stops as soon as it has both.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Which object, and which version of it, an answer returned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl Identity {
    fn is_complete(&self) -> bool {
        self.uid.is_some() && self.resource_version.is_some()
    }
}

/// `metadata.uid` and `metadata.resourceVersion` of the JSON object in `text`; each `None` where
/// absent or where `text` is not such an object.
pub(crate) fn identity_of(text: &[u8]) -> Identity {
    let mut found = Identity::default();
    let mut reader = serde_json::Deserializer::from_slice(text);
    // Stopping early leaves the rest of the answer unread, which serde_json reports as an error
    // ("expected `,` or `}`"). That error is expected and says nothing about what was found: a
    // malformed answer simply leaves `found` incomplete, as a full parse would have.
    let _unread_rest = reader.deserialize_map(Object {
        found: &mut found,
        depth: Depth::Top,
    });
    found
}

#[derive(Clone, Copy)]
enum Depth {
    Top,
    Metadata,
}

/// Visits one JSON object, filling `found`: at the top level it descends into `metadata`, in
/// `metadata` it reads `uid` and `resourceVersion`. Every other value is skipped unbuilt.
struct Object<'a> {
    found: &'a mut Identity,
    depth: Depth,
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            match (self.depth, key) {
                (Depth::Top, Key::Metadata) => map.next_value_seed(Object {
                    found: &mut *self.found,
                    depth: Depth::Metadata,
                })?,
                (Depth::Metadata, Key::Uid) => self.found.uid = map.next_value()?,
                (Depth::Metadata, Key::ResourceVersion) => {
                    self.found.resource_version = map.next_value()?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if self.found.is_complete() {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// The keys the reader looks for; every other key is `Other`, read without allocating.
enum Key {
    Metadata,
    Uid,
    ResourceVersion,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "metadata" => Key::Metadata,
            "uid" => Key::Uid,
            "resourceVersion" => Key::ResourceVersion,
            _ => Key::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What a full parse of the answer says: the reference the fast reader must agree with.
    fn parsed(text: &[u8]) -> Identity {
        let value: serde_json::Value = serde_json::from_slice(text).unwrap_or_default();
        let field = |name: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Identity {
            uid: field("uid"),
            resource_version: field("resourceVersion"),
        }
    }

    fn agrees(text: &str) -> Identity {
        let fast = identity_of(text.as_bytes());
        assert_eq!(fast, parsed(text.as_bytes()), "{text}");
        fast
    }

    #[test]
    fn reads_uid_and_version_wherever_they_sit() {
        // Built-in kinds come in struct order (uid early); custom resources with sorted keys, so
        // managedFields (with nested `uid`-like keys of its own) comes first.
        let sorted = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "metadata": {
            "managedFields": [{"manager": "fieldwise", "fieldsV1": {"f:metadata": {"f:uid": {}}},
                               "uid": "not-this", "resourceVersion": "nor-this"}],
            "name": "a", "resourceVersion": "42", "uid": "u-1"},
            "spec": {"metadata": {"uid": "spec-uid"}}, "status": {"uid": "x"}});
        let found = agrees(&sorted.to_string());
        assert_eq!(found.uid.as_deref(), Some("u-1"));
        assert_eq!(found.resource_version.as_deref(), Some("42"));

        let spec_first = r#"{"spec":{"metadata":{"uid":"inner","resourceVersion":"9"}},
            "kind":"Deployment","metadata":{"uid":"u-2","resourceVersion":"7","name":"d"}}"#;
        assert_eq!(agrees(spec_first).uid.as_deref(), Some("u-2"));
        agrees(r#"{"metadata":{"resourceVersion":"3","uid":"u\u002d3"},"status":{}}"#);
    }

    #[test]
    fn missing_or_malformed_parts_are_none() {
        for text in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"metadata":null}"#,
            r#"{"metadata":{"uid":"u"}}"#,
            r#"{"metadata":{"resourceVersion":"1"},"spec":{}}"#,
            r#"{"kind":"Status","code":200}"#,
        ] {
            agrees(text);
        }
        // Broken after both were read: a full parse fails, the early stop has them already.
        let truncated = identity_of(br#"{"metadata":{"uid":"u","resourceVersion":"1"},"spec":{"#);
        assert_eq!(truncated.uid.as_deref(), Some("u"));
        // Wrong types are not taken for an identity.
        assert_eq!(
            identity_of(br#"{"metadata":{"uid":5}}"#),
            Identity::default()
        );
    }
}
