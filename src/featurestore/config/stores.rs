//! The `offline_store`, `online_store` and `registry` sections of the server feature_store.yaml.

use fieldwise_api::v1::{
    FeatureStoreSpec, OfflineStore, OfflineStoreDbType, OfflineStoreFileType, OnlineStore,
    OnlineStoreDbType, PvcConfig, RegistryCacheMode, RegistryDbType, RegistryFilePersistence,
    RemoteRegistryConfig,
};
use serde_json::{Map, Value, json};

use super::ConfigErrorKind;
use super::values::{SecretKey, check_type_tags, join_path, put, secret_map};
use crate::featurestore::context::GraphContext;

/// The online store file when none is configured: `online_store.db` under the pod's `feast-data` volume.
pub const DEFAULT_ONLINE_STORE_PATH: &str = "/feast-data/online_store.db";
/// The registry file when none is configured: `registry.db` under the pod's `feast-data` volume.
pub const DEFAULT_REGISTRY_PATH: &str = "/feast-data/registry.db";

/// One typed field of a Feast operator config struct: its YAML tag and its Go field name. Secret parameters
/// whose key matches either (case-insensitively) are lifted into the typed field instead of going inline.
struct TypedField {
    tag: &'static str,
    go_name: &'static str,
}

const OFFLINE_FIELDS: &[TypedField] = &[
    TypedField {
        tag: "host",
        go_name: "Host",
    },
    TypedField {
        tag: "type",
        go_name: "Type",
    },
    TypedField {
        tag: "port",
        go_name: "Port",
    },
    TypedField {
        tag: "scheme",
        go_name: "Scheme",
    },
    TypedField {
        tag: "cert",
        go_name: "Cert",
    },
];

const ONLINE_FIELDS: &[TypedField] = &[
    TypedField {
        tag: "path",
        go_name: "Path",
    },
    TypedField {
        tag: "type",
        go_name: "Type",
    },
    TypedField {
        tag: "cert",
        go_name: "Cert",
    },
];

const REGISTRY_FIELDS: &[TypedField] = &[
    TypedField {
        tag: "path",
        go_name: "Path",
    },
    TypedField {
        tag: "registry_type",
        go_name: "RegistryType",
    },
    TypedField {
        tag: "cert",
        go_name: "Cert",
    },
    TypedField {
        tag: "s3_additional_kwargs",
        go_name: "S3AdditionalKwargs",
    },
    TypedField {
        tag: "cache_ttl_seconds",
        go_name: "CacheTTLSeconds",
    },
    TypedField {
        tag: "cache_mode",
        go_name: "CacheMode",
    },
    TypedField {
        tag: "mcp",
        go_name: "Mcp",
    },
];

/// Go field name of the inline parameter map: a Secret key with this name is swallowed, never written.
const INLINE_FIELD: &str = "DBParameters";

/// Merges DB-store parameters into `typed` (the section's typed fields, in output order): a parameter naming a
/// typed field fills it when it is still empty and is dropped either way; the rest follow inline, sorted.
fn merge_parameters(
    typed: Vec<(&'static str, Option<Value>)>,
    fields: &[TypedField],
    params: Map<String, Value>,
) -> Map<String, Value> {
    let mut typed = typed;
    let mut inline = Map::new();
    for (key, value) in params {
        if key.eq_ignore_ascii_case(INLINE_FIELD) {
            continue;
        }
        let field = fields.iter().find(|field| {
            key.eq_ignore_ascii_case(field.tag) || key.eq_ignore_ascii_case(field.go_name)
        });
        match field {
            Some(field) => fill_if_empty(&mut typed, field.tag, value),
            None => {
                inline.insert(key, value);
            }
        }
    }
    let mut section: Map<String, Value> = typed
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
        .collect();
    for (key, value) in inline {
        section.entry(key).or_insert(value);
    }
    section
}

fn fill_if_empty(typed: &mut Vec<(&'static str, Option<Value>)>, tag: &'static str, value: Value) {
    let value = Some(value).filter(|value| !is_empty(value));
    match typed.iter_mut().find(|(key, _)| *key == tag) {
        Some((_, slot)) if slot.is_none() => *slot = value,
        Some(_) => {}
        None => typed.push((tag, value)),
    }
}

/// Go's zero value test for the lifted fields: absent, null, `""`, `0`, `false` or an empty collection.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

/// Reads a DB store's parameters: key `secretKeyName` (the field at `field`), else the store type, of
/// the referenced Secret.
fn store_parameters(
    context: &GraphContext,
    store_type: &str,
    secret_name: &str,
    secret_key_name: Option<&str>,
    field: &'static str,
) -> Result<Map<String, Value>, ConfigErrorKind> {
    let named = secret_key_name.filter(|key| !key.is_empty());
    let key = named.unwrap_or(store_type);
    let choice = SecretKey {
        key,
        field,
        defaulted: named.is_none(),
    };
    let params = secret_map(context, secret_name, &choice)?;
    check_type_tags(&params, store_type, key, secret_name)?;
    Ok(params)
}

/// `path.Join(mountPath, path)` for a file on a PVC, the path itself otherwise.
fn file_path(
    path: Option<&str>,
    pvc: Option<&PvcConfig>,
    default_file: &str,
    default_path: &str,
) -> String {
    match pvc {
        Some(pvc) => join_path(&pvc.mount_path, path.unwrap_or(default_file)),
        None => path.unwrap_or(default_path).to_owned(),
    }
}

/// The `offline_store` section: `dask` unless the file type or DB store says otherwise.
pub(super) fn offline_store(
    offline: &OfflineStore,
    context: &GraphContext,
) -> Result<Value, ConfigErrorKind> {
    let persistence = offline.persistence.as_ref();
    if let Some(store) = persistence.and_then(|persistence| persistence.store.as_ref()) {
        let store_type = offline_db_type(store.store_type);
        let params = store_parameters(
            context,
            store_type,
            &store.secret_ref.name,
            store.secret_key_name.as_deref(),
            "spec.services.offlineStore.persistence.store.secretKeyName",
        )?;
        let typed = vec![
            ("host", None),
            ("type", Some(json!(store_type))),
            ("port", None),
        ];
        return Ok(Value::Object(merge_parameters(
            typed,
            OFFLINE_FIELDS,
            params,
        )));
    }
    let file_type = persistence
        .and_then(|persistence| persistence.file.as_ref())
        .and_then(|file| file.file_type)
        .unwrap_or(OfflineStoreFileType::Dask);
    Ok(json!({ "type": offline_file_type(file_type) }))
}

/// The `online_store` section: SQLite at the configured (or default) file, or a DB store.
pub(super) fn online_store(
    online: Option<&OnlineStore>,
    context: &GraphContext,
) -> Result<Value, ConfigErrorKind> {
    let persistence = online.and_then(|online| online.persistence.as_ref());
    if let Some(store) = persistence.and_then(|persistence| persistence.store.as_ref()) {
        let store_type = online_db_type(store.store_type);
        let params = store_parameters(
            context,
            store_type,
            &store.secret_ref.name,
            store.secret_key_name.as_deref(),
            "spec.services.onlineStore.persistence.store.secretKeyName",
        )?;
        let typed = vec![("path", None), ("type", Some(json!(store_type)))];
        return Ok(Value::Object(merge_parameters(
            typed,
            ONLINE_FIELDS,
            params,
        )));
    }
    let file = persistence.and_then(|persistence| persistence.file.as_ref());
    let path = file_path(
        file.and_then(|file| file.path.as_deref()),
        file.and_then(|file| file.pvc.as_ref()),
        "online_store.db",
        DEFAULT_ONLINE_STORE_PATH,
    );
    Ok(json!({ "path": path, "type": "sqlite" }))
}

/// The `registry` section of the servers: the local registry's file or DB store, a remote registry, or (no
/// registry configured) the pod-local file registry that `feast apply` fills at start-up.
pub(super) fn registry(
    applied: &FeatureStoreSpec,
    context: &GraphContext,
    remote_host: Option<&str>,
) -> Result<Value, ConfigErrorKind> {
    let registry = applied
        .services
        .as_ref()
        .and_then(|services| services.registry.as_ref());
    if let Some(remote) = registry.and_then(|registry| registry.remote.as_ref()) {
        return remote_registry(remote, remote_host);
    }
    let Some(local) = registry.and_then(|registry| registry.local.as_ref()) else {
        return Ok(json!({ "path": DEFAULT_REGISTRY_PATH, "registry_type": "file" }));
    };
    let mcp = local
        .server
        .as_ref()
        .and_then(|server| server.mcp.as_ref())
        .filter(|mcp| mcp.enabled)
        .map(|_| json!({ "enabled": true }));
    let persistence = local.persistence.as_ref();
    if let Some(store) = persistence.and_then(|persistence| persistence.store.as_ref()) {
        return db_registry(
            store.store_type,
            &store.secret_ref.name,
            store.secret_key_name.as_deref(),
            mcp,
            context,
        );
    }
    let file = persistence.and_then(|persistence| persistence.file.as_ref());
    Ok(Value::Object(file_registry(file, mcp)))
}

fn file_registry(file: Option<&RegistryFilePersistence>, mcp: Option<Value>) -> Map<String, Value> {
    let path = file_path(
        file.and_then(|file| file.path.as_deref()),
        file.and_then(|file| file.pvc.as_ref()),
        "registry.db",
        DEFAULT_REGISTRY_PATH,
    );
    let mut section = Map::new();
    section.insert("path".into(), json!(path));
    section.insert("registry_type".into(), json!("file"));
    if let Some(file) = file {
        put(
            &mut section,
            "s3_additional_kwargs",
            file.s3_additional_kwargs
                .as_ref()
                .map(|kwargs| json!(kwargs)),
        );
        put(&mut section, "cache_ttl_seconds", file.cache_ttl_seconds);
        put(&mut section, "cache_mode", file.cache_mode.map(cache_mode));
    }
    put(&mut section, "mcp", mcp);
    section
}

fn db_registry(
    store_type: RegistryDbType,
    secret_name: &str,
    secret_key_name: Option<&str>,
    mcp: Option<Value>,
    context: &GraphContext,
) -> Result<Value, ConfigErrorKind> {
    let store_type = registry_db_type(store_type);
    let mut params = store_parameters(
        context,
        store_type,
        secret_name,
        secret_key_name,
        "spec.services.registry.local.persistence.store.secretKeyName",
    )?;
    // The cache settings are typed fields of the registry block: lifted only with the type Feast accepts.
    let cache_ttl_seconds = params
        .remove("cache_ttl_seconds")
        .and_then(|ttl| ttl_seconds(&ttl));
    let cache_mode = params.remove("cache_mode").filter(Value::is_string);
    let typed = vec![
        ("path", None),
        ("registry_type", Some(json!(store_type))),
        ("cert", None),
        ("s3_additional_kwargs", None),
        ("cache_ttl_seconds", cache_ttl_seconds),
        ("cache_mode", cache_mode),
        ("mcp", mcp),
    ];
    Ok(Value::Object(merge_parameters(
        typed,
        REGISTRY_FIELDS,
        params,
    )))
}

/// A numeric TTL as a whole number of seconds (fractions truncated, as the Feast operator does).
fn ttl_seconds(value: &Value) -> Option<Value> {
    let number = value.as_number()?;
    number
        .as_i64()
        .or_else(|| number.as_f64().map(|float| float.trunc() as i64))
        .map(Value::from)
}

/// `{registry_type: remote, path: host:port, cert?}` for a registry served elsewhere.
fn remote_registry(
    remote: &RemoteRegistryConfig,
    remote_host: Option<&str>,
) -> Result<Value, ConfigErrorKind> {
    let host = remote_host
        .or(remote.hostname.as_deref())
        .filter(|host| !host.is_empty())
        .ok_or(ConfigErrorKind::UnresolvedRemoteRegistry)?;
    let mut section = Map::new();
    section.insert("path".into(), json!(host));
    section.insert("registry_type".into(), json!("remote"));
    put(
        &mut section,
        "cert",
        remote
            .tls
            .as_ref()
            .map(|tls| super::tls_cert_path("registry", &tls.cert_name)),
    );
    Ok(Value::Object(section))
}

fn offline_file_type(file_type: OfflineStoreFileType) -> &'static str {
    match file_type {
        OfflineStoreFileType::File => "file",
        OfflineStoreFileType::Dask => "dask",
        OfflineStoreFileType::Duckdb => "duckdb",
    }
}

pub(super) fn offline_db_type(store_type: OfflineStoreDbType) -> &'static str {
    match store_type {
        OfflineStoreDbType::Snowflake => "snowflake.offline",
        OfflineStoreDbType::Bigquery => "bigquery",
        OfflineStoreDbType::Redshift => "redshift",
        OfflineStoreDbType::Spark => "spark",
        OfflineStoreDbType::Postgres => "postgres",
        OfflineStoreDbType::Trino => "trino",
        OfflineStoreDbType::Athena => "athena",
        OfflineStoreDbType::Mssql => "mssql",
        OfflineStoreDbType::Couchbase => "couchbase.offline",
        OfflineStoreDbType::Clickhouse => "clickhouse",
        OfflineStoreDbType::Ray => "ray",
        OfflineStoreDbType::Oracle => "oracle",
        OfflineStoreDbType::Hybrid => "hybrid",
    }
}

pub(super) fn online_db_type(store_type: OnlineStoreDbType) -> &'static str {
    match store_type {
        OnlineStoreDbType::Snowflake => "snowflake.online",
        OnlineStoreDbType::Redis => "redis",
        OnlineStoreDbType::Datastore => "datastore",
        OnlineStoreDbType::Dynamodb => "dynamodb",
        OnlineStoreDbType::Bigtable => "bigtable",
        OnlineStoreDbType::Postgres => "postgres",
        OnlineStoreDbType::Cassandra => "cassandra",
        OnlineStoreDbType::Mysql => "mysql",
        OnlineStoreDbType::Hazelcast => "hazelcast",
        OnlineStoreDbType::Singlestore => "singlestore",
        OnlineStoreDbType::Hbase => "hbase",
        OnlineStoreDbType::Elasticsearch => "elasticsearch",
        OnlineStoreDbType::Qdrant => "qdrant",
        OnlineStoreDbType::Couchbase => "couchbase.online",
        OnlineStoreDbType::Milvus => "milvus",
        OnlineStoreDbType::Hybrid => "hybrid",
        OnlineStoreDbType::Mongodb => "mongodb",
        OnlineStoreDbType::Aerospike => "aerospike",
        OnlineStoreDbType::Scylladb => "scylladb",
    }
}

pub(super) fn registry_db_type(store_type: RegistryDbType) -> &'static str {
    match store_type {
        RegistryDbType::Sql => "sql",
        RegistryDbType::Snowflake => "snowflake.registry",
    }
}

fn cache_mode(mode: RegistryCacheMode) -> &'static str {
    match mode {
        RegistryCacheMode::None => "none",
        RegistryCacheMode::Sync => "sync",
        RegistryCacheMode::Thread => "thread",
    }
}
