//! Names and labels of the objects a FeatureStore owns, as the Feast operator gives them.

use std::collections::BTreeMap;

/// The label every FeatureStore child carries and every selector matches on: `feast.dev/name: <cr>`.
pub const NAME_LABEL: &str = "feast.dev/name";
/// The label naming which Feast service an object belongs to.
pub const SERVICE_TYPE_LABEL: &str = "feast.dev/service-type";

/// The Feast services and other parts a FeatureStore's children belong to; also the engine's component names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    Registry,
    Online,
    Offline,
    Ui,
    Client,
    CronJob,
    Authorization,
}

impl ServiceType {
    /// Every part.
    pub const ALL: [ServiceType; 7] = [
        Self::Registry,
        Self::Online,
        Self::Offline,
        Self::Ui,
        Self::Client,
        Self::CronJob,
        Self::Authorization,
    ];

    /// The value of `feast.dev/service-type`, the container name and the name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Ui => "ui",
            Self::Client => "client",
            Self::CronJob => "cronjob",
            Self::Authorization => "authorization",
        }
    }
}

/// The base name of every child: `feast-<cr>`.
pub fn base_name(cr_name: &str) -> String {
    format!("feast-{cr_name}")
}

/// The name of a service-specific child: `feast-<cr>-<type>`.
pub fn service_name(cr_name: &str, service: ServiceType) -> String {
    format!("feast-{cr_name}-{}", service.as_str())
}

/// The selector of the feature-server pods (immutable on the Deployment): `{feast.dev/name: <cr>}`.
pub fn selector_labels(cr_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), cr_name.to_owned())])
}

/// The labels of a child that belongs to no single service (L0 without managed-by, which the engine adds).
pub fn base_labels(cr_name: &str) -> BTreeMap<String, String> {
    selector_labels(cr_name)
}

/// The labels of a child that belongs to one service (LT(type)).
pub fn service_labels(cr_name: &str, service: ServiceType) -> BTreeMap<String, String> {
    let mut labels = base_labels(cr_name);
    labels.insert(SERVICE_TYPE_LABEL.to_owned(), service.as_str().to_owned());
    labels
}

/// The string form of the pod selector, reported in `status.selector` for the scale subresource.
pub fn selector_string(cr_name: &str) -> String {
    format!("{NAME_LABEL}={cr_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_feast_operator() {
        assert_eq!(base_name("sample"), "feast-sample");
        assert_eq!(
            service_name("sample", ServiceType::Online),
            "feast-sample-online"
        );
        assert_eq!(
            service_name("sample", ServiceType::Client),
            "feast-sample-client"
        );
        assert_eq!(selector_string("sample"), "feast.dev/name=sample");
        assert_eq!(
            service_labels("sample", ServiceType::Registry),
            BTreeMap::from([
                ("feast.dev/name".to_owned(), "sample".to_owned()),
                ("feast.dev/service-type".to_owned(), "registry".to_owned()),
            ])
        );
    }
}
