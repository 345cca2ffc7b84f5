//! The `openlineage` section of the servers and of the lineage server.

use fieldwise_api::v1::{
    LineageStoreType, OpenLineageConfig, OpenLineageConsumerConfig, OpenLineageTransportType,
};
use serde_json::{Map, Value, json};

use super::ConfigErrorKind;
use super::values::{append_extra_config, go_type_name, parse_yaml, put, secret};
use crate::featurestore::context::GraphContext;

/// The OpenLineage ingest endpoint of Feast's lineage consumer.
pub const LINEAGE_ENDPOINT: &str = "api/v1/lineage";
/// The Secret key holding an OpenLineage API key.
const API_KEY: &str = "api_key";
/// The Secret key holding the lineage consumer's database connection string.
const CONNECTION_STRING: &str = "connection_string";

/// Which process the section is for: the main servers produce events (and embed the consumer unless a
/// lineage server runs), the lineage server only consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LineageRole<'a> {
    /// The main feature servers; `lineage_url` is the lineage Service URL when a lineage server runs.
    Producer { lineage_url: Option<&'a str> },
    /// The standalone lineage server; `fallback_connection_string` is the SQL registry's URL.
    LineageServer {
        fallback_connection_string: Option<&'a str>,
    },
}

/// The `openlineage` section.
pub(super) fn openlineage(
    config: &OpenLineageConfig,
    context: &GraphContext,
    role: LineageRole<'_>,
) -> Result<Value, ConfigErrorKind> {
    let mut section = Map::new();
    section.insert("enabled".into(), json!(config.enabled));
    if let LineageRole::Producer { lineage_url } = role {
        match lineage_url {
            Some(url) => {
                section.insert("transport_type".into(), json!("http"));
                section.insert("transport_url".into(), json!(url));
                section.insert("transport_endpoint".into(), json!(LINEAGE_ENDPOINT));
            }
            None => {
                put(
                    &mut section,
                    "transport_type",
                    config.transport_type.map(transport_type),
                );
                put(&mut section, "transport_url", config.transport_url.clone());
                put(
                    &mut section,
                    "transport_endpoint",
                    config.transport_endpoint.clone(),
                );
            }
        }
        if let Some(reference) = config.api_key_secret_ref.as_ref() {
            section.insert(
                API_KEY.into(),
                json!(secret_string(context, &reference.name, API_KEY, "API key")?),
            );
        }
    }
    append_extra_config(&mut section, config.extra_config.as_ref());
    if let Some(consumer) = config.consumer.as_ref() {
        section.insert(
            "consumer".into(),
            consumer_section(consumer, context, role)?,
        );
    }
    Ok(Value::Object(section))
}

fn consumer_section(
    consumer: &OpenLineageConsumerConfig,
    context: &GraphContext,
    role: LineageRole<'_>,
) -> Result<Value, ConfigErrorKind> {
    let mut section = Map::new();
    section.insert("enabled".into(), json!(consumer.enabled));
    put(
        &mut section,
        "store_type",
        consumer.store_type.map(store_type),
    );
    let connection_string = match consumer.connection_string_secret_ref.as_ref() {
        Some(reference) => Some(secret_string(
            context,
            &reference.name,
            CONNECTION_STRING,
            "consumer connection string",
        )?),
        None => match role {
            LineageRole::LineageServer {
                fallback_connection_string,
            } => Some(
                fallback_connection_string
                    .ok_or(ConfigErrorKind::LineageServerNeedsDatabase)?
                    .to_owned(),
            ),
            LineageRole::Producer { .. } => None,
        },
    };
    put(&mut section, CONNECTION_STRING, connection_string);
    if let Some(reference) = consumer.api_key_secret_ref.as_ref() {
        section.insert(
            API_KEY.into(),
            json!(secret_string(
                context,
                &reference.name,
                API_KEY,
                "consumer API key"
            )?),
        );
    }
    put(
        &mut section,
        "namespace_mapping",
        consumer
            .namespace_mapping
            .as_ref()
            .map(|mapping| json!(mapping)),
    );
    put(&mut section, "retention_days", consumer.retention_days);
    put(
        &mut section,
        "retention_check_interval_hours",
        consumer.retention_check_interval_hours,
    );
    if let LineageRole::Producer {
        lineage_url: Some(_),
    } = role
    {
        section.insert("standalone_server".into(), json!(true));
    }
    Ok(Value::Object(section))
}

/// The string under `key` of Secret `secret_name`, read as a YAML value (so quoting and block scalars work
/// as in the Feast operator). Only that key is read.
fn secret_string(
    context: &GraphContext,
    secret_name: &str,
    key: &str,
    purpose: &str,
) -> Result<String, ConfigErrorKind> {
    let wrap = |source: ConfigErrorKind| ConfigErrorKind::OpenLineageSecret {
        purpose: purpose.to_owned(),
        secret: secret_name.to_owned(),
        source: Box::new(source),
    };
    let data = secret(context, secret_name).map_err(wrap)?;
    let text = data
        .get(key)
        .ok_or_else(|| ConfigErrorKind::MissingRequiredSecretKey {
            key: key.to_owned(),
            secret: secret_name.to_owned(),
        })?;
    let value = parse_yaml(text).ok_or_else(|| {
        wrap(ConfigErrorKind::InvalidSecretValue {
            key: key.to_owned(),
        })
    })?;
    match value {
        Value::String(text) => Ok(text),
        other => Err(ConfigErrorKind::NonStringSecretValue {
            key: key.to_owned(),
            secret: secret_name.to_owned(),
            found: go_type_name(&other).to_owned(),
        }),
    }
}

fn transport_type(transport: OpenLineageTransportType) -> &'static str {
    match transport {
        OpenLineageTransportType::Http => "http",
        OpenLineageTransportType::Console => "console",
        OpenLineageTransportType::File => "file",
        OpenLineageTransportType::Kafka => "kafka",
    }
}

fn store_type(store: LineageStoreType) -> &'static str {
    match store {
        LineageStoreType::Sql => "sql",
    }
}
