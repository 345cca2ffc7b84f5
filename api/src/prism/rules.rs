//! CEL rules used at several places of the PrismCluster schema, and the bounds that keep the API
//! server's cost estimate of every rule far inside its budget (a rule over an unbounded list or string
//! is estimated at the largest request the server accepts, and the CRD is refused when too costly).

use kube::core::{Message, Rule};

/// Most patterns a PrismCluster may have.
pub const MAX_PATTERNS: u32 = 64;
/// Longest pattern name: `<name>-runner` as a StatefulSet labels its pods
/// `controller-revision-hash=<name>-runner-<hash of up to 10 characters>`, a label value of at most
/// 63 characters, so `<name>-runner` may have at most 52 and the name 45.
pub const MAX_PATTERN_NAME: usize = 45;
/// Longest DNS-1035 label, the schema bound of a pattern name (the rule above is stricter).
pub const MAX_DNS_LABEL: u32 = 63;
/// Bound of short strings the rules read (quantities, durations, image tags).
pub const MAX_SHORT_STRING: u32 = 64;
/// Longest DNS subdomain (hosts, Secret and class names).
pub const MAX_DNS_SUBDOMAIN: u32 = 253;
/// Most KEDA triggers of one pattern.
pub const MAX_TRIGGERS: u32 = 16;

/// A storage size: a Kubernetes quantity greater than zero.
pub fn storage_size() -> Rule {
    Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))")
        .message("must be a positive quantity, such as 1Gi or 500Mi")
}

/// A backend version: the tag of its image.
pub fn image_tag() -> Rule {
    Rule::new("self.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]*$')").message(
        "must be an image tag (letters, digits, '_', '.' and '-', not starting with '.' or '-'), such as 7-alpine",
    )
}

/// A pattern name is a DNS-1035 label: it names a Service.
pub fn dns_label() -> Rule {
    Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message(
        "must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit): it names the pattern's <name>-runner Service and workload",
    )
}

/// A pattern name short enough for every name derived from it (see [`MAX_PATTERN_NAME`]).
pub fn pattern_name_length() -> Rule {
    Rule::new(format!("self.size() <= {MAX_PATTERN_NAME}")).message(Message::Message(format!(
        "must be at most {MAX_PATTERN_NAME} characters: a StatefulSet <name>-runner labels its pods controller-revision-hash=<name>-runner-<hash of up to 10 characters>, and label values are at most 63 characters"
    )))
}

/// `minReplicas <= maxReplicas` of an autoscaling block.
pub fn min_not_above_max() -> Rule {
    Rule::new("self.minReplicas <= self.maxReplicas")
        .message("minReplicas must not be greater than maxReplicas")
}

/// A Secret's name: a DNS-1123 subdomain.
pub fn dns_subdomain() -> Rule {
    Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'), the name of an object in this namespace")
}
