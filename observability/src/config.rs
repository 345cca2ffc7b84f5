//! Where traces go, read from the standard OpenTelemetry environment variables.
//!
//! [`trace_export_from_env`] is a pure function over an env-lookup closure, so every variable can
//! be unit-tested without touching the process environment.

use std::fmt;

use crate::Error;

/// `OTEL_SERVICE_NAME` when neither it nor `service.name` in `OTEL_RESOURCE_ATTRIBUTES` is set.
pub const DEFAULT_SERVICE_NAME: &str = "fieldwise";

const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// The OTLP path the HTTP exporter appends to a base `OTEL_EXPORTER_OTLP_ENDPOINT`.
const HTTP_TRACES_PATH: &str = "v1/traces";

/// The decision whether and where spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceExport {
    /// No OpenTelemetry layer is installed at all, so spans cost nothing beyond logging.
    Disabled(DisabledReason),
    /// Spans go to an OTLP endpoint through a batch processor.
    Otlp(OtlpExport),
}

/// Why spans are not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// `OTEL_SDK_DISABLED=true`.
    SdkDisabled,
    /// Neither `OTEL_EXPORTER_OTLP_ENDPOINT` nor `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
    NoEndpoint,
}

/// OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc` (the default).
    Grpc,
    /// `http/protobuf`.
    HttpProtobuf,
}

/// The sampler chosen by `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with its ratio in 0..=1.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default).
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with its ratio in 0..=1.
    ParentBasedTraceIdRatio(f64),
}

/// Everything needed to build the OTLP span exporter and the tracer provider.
#[derive(Clone, PartialEq)]
pub struct OtlpExport {
    /// gRPC or HTTP/protobuf.
    pub protocol: OtlpProtocol,
    /// The full URL the exporter sends to (for HTTP it already ends in `/v1/traces` when derived
    /// from the base `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// Extra request headers or gRPC metadata. Values may be credentials: never log them.
    pub headers: Vec<(String, String)>,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Other resource attributes from `OTEL_RESOURCE_ATTRIBUTES` (without `service.name`).
    pub resource_attributes: Vec<(String, String)>,
    /// Sampling policy.
    pub sampler: SamplerConfig,
}

// Hand-written so header values (often API keys) never reach a log line.
impl fmt::Debug for OtlpExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpExport")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("header_names", &header_names)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("sampler", &self.sampler)
            .finish()
    }
}

impl TraceExport {
    /// A one-line, secret-free description of where traces go, for the startup log.
    pub fn describe(&self) -> String {
        match self {
            TraceExport::Disabled(DisabledReason::SdkDisabled) => {
                "traces not exported (OTEL_SDK_DISABLED=true)".to_string()
            }
            TraceExport::Disabled(DisabledReason::NoEndpoint) => {
                "traces not exported (OTEL_EXPORTER_OTLP_ENDPOINT unset)".to_string()
            }
            TraceExport::Otlp(otlp) => otlp.describe(),
        }
    }
}

impl OtlpExport {
    fn describe(&self) -> String {
        let protocol = match self.protocol {
            OtlpProtocol::Grpc => "gRPC",
            OtlpProtocol::HttpProtobuf => "HTTP/protobuf",
        };
        let headers = match self.headers.len() {
            0 => String::new(),
            n => format!(", {n} header(s)"),
        };
        format!(
            "traces exported by OTLP {protocol} to {} (service.name={}, sampler={}{headers})",
            self.endpoint,
            self.service_name,
            self.sampler.name()
        )
    }
}

impl SamplerConfig {
    /// The `OTEL_TRACES_SAMPLER` spelling, with the ratio where there is one.
    pub fn name(&self) -> String {
        match self {
            SamplerConfig::AlwaysOn => "always_on".into(),
            SamplerConfig::AlwaysOff => "always_off".into(),
            SamplerConfig::TraceIdRatio(r) => format!("traceidratio({r})"),
            SamplerConfig::ParentBasedAlwaysOn => "parentbased_always_on".into(),
            SamplerConfig::ParentBasedAlwaysOff => "parentbased_always_off".into(),
            SamplerConfig::ParentBasedTraceIdRatio(r) => format!("parentbased_traceidratio({r})"),
        }
    }
}

/// Reads the standard `OTEL_*` variables through `env` and decides where spans go.
///
/// Empty values count as unset (as in the OpenTelemetry specification). Invalid values are errors
/// naming the variable; header values never appear in an error.
pub fn trace_export_from_env(env: impl Fn(&str) -> Option<String>) -> Result<TraceExport, Error> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if get(SDK_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(TraceExport::Disabled(DisabledReason::SdkDisabled));
    }
    let signal_endpoint = get(TRACES_ENDPOINT);
    let base_endpoint = get(ENDPOINT);
    if signal_endpoint.is_none() && base_endpoint.is_none() {
        return Ok(TraceExport::Disabled(DisabledReason::NoEndpoint));
    }
    let protocol = parse_protocol(get(TRACES_PROTOCOL).or_else(|| get(PROTOCOL)))?;
    let (variable, endpoint) = match (signal_endpoint, base_endpoint) {
        (Some(url), _) => (TRACES_ENDPOINT, checked_url(TRACES_ENDPOINT, url.trim())?),
        (None, Some(base)) => (
            ENDPOINT,
            endpoint_from_base(protocol, &checked_url(ENDPOINT, base.trim())?),
        ),
        (None, None) => return Ok(TraceExport::Disabled(DisabledReason::NoEndpoint)),
    };
    // The HTTP exporter's blocking client is built without TLS; gRPC has it (rustls, ring).
    if protocol == OtlpProtocol::HttpProtobuf && endpoint.starts_with("https://") {
        return Err(invalid(
            variable,
            "https:// needs OTEL_EXPORTER_OTLP_PROTOCOL=grpc; the HTTP/protobuf exporter has no TLS",
        ));
    }
    let headers = match (get(TRACES_HEADERS), get(HEADERS)) {
        (Some(h), _) => parse_pairs(TRACES_HEADERS, &h)?,
        (None, Some(h)) => parse_pairs(HEADERS, &h)?,
        (None, None) => Vec::new(),
    };
    let mut resource_attributes = match get(RESOURCE_ATTRIBUTES) {
        Some(attrs) => parse_pairs(RESOURCE_ATTRIBUTES, &attrs)?,
        None => Vec::new(),
    };
    let service_from_attributes = take_service_name(&mut resource_attributes);
    let service_name = get(SERVICE_NAME)
        .map(|s| s.trim().to_string())
        .or(service_from_attributes)
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    let sampler = parse_sampler(get(SAMPLER), get(SAMPLER_ARG))?;
    Ok(TraceExport::Otlp(OtlpExport {
        protocol,
        endpoint,
        headers,
        service_name,
        resource_attributes,
        sampler,
    }))
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidEnv {
        variable,
        reason: reason.into(),
    }
}

fn parse_protocol(value: Option<String>) -> Result<OtlpProtocol, Error> {
    match value.as_deref().map(str::trim) {
        None | Some("grpc") => Ok(OtlpProtocol::Grpc),
        Some("http/protobuf") => Ok(OtlpProtocol::HttpProtobuf),
        Some(other) => Err(invalid(
            PROTOCOL,
            format!("unsupported protocol {other:?}; use \"grpc\" or \"http/protobuf\""),
        )),
    }
}

fn checked_url(variable: &'static str, url: &str) -> Result<String, Error> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(url.to_string()),
        _ => Err(invalid(
            variable,
            format!("{url:?} is not an http:// or https:// URL with a host"),
        )),
    }
}

/// Per the OTLP exporter spec, a base endpoint is used as-is for gRPC and gets the signal path
/// appended for HTTP.
fn endpoint_from_base(protocol: OtlpProtocol, base: &str) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_string(),
        OtlpProtocol::HttpProtobuf if base.ends_with('/') => format!("{base}{HTTP_TRACES_PATH}"),
        OtlpProtocol::HttpProtobuf => format!("{base}/{HTTP_TRACES_PATH}"),
    }
}

/// Parses the W3C-baggage-like `key=value,key2=value2` lists used by headers and resource
/// attributes; values are percent-decoded. Errors name the entry position, never its value.
fn parse_pairs(variable: &'static str, list: &str) -> Result<Vec<(String, String)>, Error> {
    let entries = list.split(',').map(str::trim).filter(|e| !e.is_empty());
    entries
        .enumerate()
        .map(|(index, entry)| {
            let Some((key, value)) = entry.split_once('=') else {
                return Err(invalid(
                    variable,
                    format!("entry {} has no '=' (expected key=value)", index + 1),
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(invalid(
                    variable,
                    format!("entry {} has an empty key", index + 1),
                ));
            }
            let value = percent_decode(value.trim()).ok_or_else(|| {
                invalid(
                    variable,
                    format!(
                        "entry {} ({key}) has a malformed percent-encoding",
                        index + 1
                    ),
                )
            })?;
            Ok((key.to_string(), value))
        })
        .collect()
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn take_service_name(attributes: &mut Vec<(String, String)>) -> Option<String> {
    let position = attributes.iter().rposition(|(k, _)| k == "service.name")?;
    let (_, name) = attributes.remove(position);
    attributes.retain(|(k, _)| k != "service.name");
    Some(name)
}

fn parse_sampler(name: Option<String>, arg: Option<String>) -> Result<SamplerConfig, Error> {
    let ratio = || parse_ratio(arg.as_deref());
    match name.as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => Ok(SamplerConfig::ParentBasedAlwaysOn),
        Some("always_on") => Ok(SamplerConfig::AlwaysOn),
        Some("always_off") => Ok(SamplerConfig::AlwaysOff),
        Some("traceidratio") => Ok(SamplerConfig::TraceIdRatio(ratio()?)),
        Some("parentbased_always_off") => Ok(SamplerConfig::ParentBasedAlwaysOff),
        Some("parentbased_traceidratio") => Ok(SamplerConfig::ParentBasedTraceIdRatio(ratio()?)),
        Some(other) => Err(invalid(
            SAMPLER,
            format!(
                "unsupported sampler {other:?}; use always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
            ),
        )),
    }
}

/// The ratio defaults to 1.0 when `OTEL_TRACES_SAMPLER_ARG` is unset, as the spec says.
fn parse_ratio(arg: Option<&str>) -> Result<f64, Error> {
    let Some(arg) = arg.map(str::trim) else {
        return Ok(1.0);
    };
    match arg.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(invalid(
            SAMPLER_ARG,
            format!("{arg:?} is not a ratio between 0 and 1"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<TraceExport, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        trace_export_from_env(|name| map.get(name).cloned())
    }

    fn otlp(vars: &[(&str, &str)]) -> OtlpExport {
        match parse(vars) {
            Ok(TraceExport::Otlp(otlp)) => otlp,
            other => panic!("expected OTLP export, got {other:?}"),
        }
    }

    fn error_variable(vars: &[(&str, &str)]) -> &'static str {
        match parse(vars) {
            Err(Error::InvalidEnv { variable, .. }) => variable,
            other => panic!("expected InvalidEnv, got {other:?}"),
        }
    }

    #[test]
    fn no_endpoint_means_no_export() {
        assert_eq!(
            parse(&[]).unwrap(),
            TraceExport::Disabled(DisabledReason::NoEndpoint)
        );
        assert_eq!(
            parse(&[(ENDPOINT, "  ")]).unwrap(),
            TraceExport::Disabled(DisabledReason::NoEndpoint)
        );
        assert_eq!(
            parse(&[(SERVICE_NAME, "x"), (PROTOCOL, "grpc")])
                .unwrap()
                .describe(),
            "traces not exported (OTEL_EXPORTER_OTLP_ENDPOINT unset)"
        );
    }

    #[test]
    fn sdk_disabled_wins_over_an_endpoint() {
        for value in ["true", "TRUE", " True "] {
            assert_eq!(
                parse(&[(SDK_DISABLED, value), (ENDPOINT, "http://c:4317")]).unwrap(),
                TraceExport::Disabled(DisabledReason::SdkDisabled)
            );
        }
        assert!(matches!(
            parse(&[(SDK_DISABLED, "false"), (ENDPOINT, "http://c:4317")]).unwrap(),
            TraceExport::Otlp(_)
        ));
        assert_eq!(
            parse(&[(SDK_DISABLED, "true")]).unwrap().describe(),
            "traces not exported (OTEL_SDK_DISABLED=true)"
        );
    }

    #[test]
    fn grpc_is_the_default_and_uses_the_base_endpoint_as_is() {
        let export = otlp(&[(ENDPOINT, "http://collector:4317")]);
        assert_eq!(export.protocol, OtlpProtocol::Grpc);
        assert_eq!(export.endpoint, "http://collector:4317");
        assert_eq!(export.service_name, "fieldwise");
        assert_eq!(export.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert!(export.headers.is_empty());
        assert_eq!(
            TraceExport::Otlp(export).describe(),
            "traces exported by OTLP gRPC to http://collector:4317 \
             (service.name=fieldwise, sampler=parentbased_always_on)"
        );
    }

    #[test]
    fn http_appends_the_traces_path_to_the_base_endpoint() {
        let proto = (PROTOCOL, "http/protobuf");
        let export = otlp(&[(ENDPOINT, "http://collector:4318"), proto]);
        assert_eq!(export.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(export.endpoint, "http://collector:4318/v1/traces");
        let export = otlp(&[(ENDPOINT, "http://c:4318/prefix/"), proto]);
        assert_eq!(export.endpoint, "http://c:4318/prefix/v1/traces");
    }

    #[test]
    fn the_traces_endpoint_wins_and_is_used_as_is() {
        let export = otlp(&[
            (ENDPOINT, "http://base:4318"),
            (TRACES_ENDPOINT, "http://traces:9999/custom"),
            (PROTOCOL, "http/protobuf"),
        ]);
        assert_eq!(export.endpoint, "http://traces:9999/custom");
        let export = otlp(&[(TRACES_ENDPOINT, "https://traces:4317")]);
        assert_eq!(export.endpoint, "https://traces:4317");
    }

    #[test]
    fn bad_endpoints_and_protocols_are_errors() {
        assert_eq!(error_variable(&[(ENDPOINT, "collector:4317")]), ENDPOINT);
        assert_eq!(error_variable(&[(ENDPOINT, "http://")]), ENDPOINT);
        assert_eq!(
            error_variable(&[(TRACES_ENDPOINT, "ftp://x")]),
            TRACES_ENDPOINT
        );
        assert_eq!(
            error_variable(&[(ENDPOINT, "http://c:4318"), (PROTOCOL, "http/json")]),
            PROTOCOL
        );
        assert_eq!(
            error_variable(&[(ENDPOINT, "https://c:4318"), (PROTOCOL, "http/protobuf")]),
            ENDPOINT
        );
        let signal_protocol = otlp(&[
            (ENDPOINT, "http://c:4318"),
            (PROTOCOL, "grpc"),
            (TRACES_PROTOCOL, "http/protobuf"),
        ]);
        assert_eq!(signal_protocol.protocol, OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn headers_are_parsed_decoded_and_kept_out_of_descriptions() {
        let export = otlp(&[
            (ENDPOINT, "http://c:4317"),
            (HEADERS, "api-key=s3cr%3Dt, x-tenant = team a ,,"),
        ]);
        assert_eq!(
            export.headers,
            vec![
                ("api-key".to_string(), "s3cr=t".to_string()),
                ("x-tenant".to_string(), "team a".to_string()),
            ]
        );
        let described = TraceExport::Otlp(export.clone()).describe();
        assert!(described.ends_with(", 2 header(s))"), "{described}");
        assert!(!described.contains("s3cr"));
        assert!(!format!("{export:?}").contains("s3cr"));

        let signal = otlp(&[
            (ENDPOINT, "http://c:4317"),
            (HEADERS, "a=1"),
            (TRACES_HEADERS, "b=2"),
        ]);
        assert_eq!(signal.headers, vec![("b".to_string(), "2".to_string())]);
    }

    #[test]
    fn malformed_headers_are_errors_without_the_value() {
        for bad in ["novalue", "=v", "k=%zz", "k=%4"] {
            match parse(&[(ENDPOINT, "http://c:4317"), (HEADERS, bad)]) {
                Err(
                    err @ Error::InvalidEnv {
                        variable: HEADERS, ..
                    },
                ) => {
                    assert!(!err.to_string().contains("zz"), "{err}");
                }
                other => panic!("{bad}: expected a headers error, got {other:?}"),
            }
        }
    }

    #[test]
    fn service_name_precedence() {
        let endpoint = (ENDPOINT, "http://c:4317");
        assert_eq!(otlp(&[endpoint]).service_name, "fieldwise");
        let from_attrs = otlp(&[endpoint, (RESOURCE_ATTRIBUTES, "service.name=ops,team=ml")]);
        assert_eq!(from_attrs.service_name, "ops");
        assert_eq!(
            from_attrs.resource_attributes,
            vec![("team".to_string(), "ml".to_string())]
        );
        let explicit = otlp(&[
            endpoint,
            (RESOURCE_ATTRIBUTES, "service.name=ops"),
            (SERVICE_NAME, "fieldwise-prod"),
        ]);
        assert_eq!(explicit.service_name, "fieldwise-prod");
        assert!(explicit.resource_attributes.is_empty());
    }

    #[test]
    fn resource_attributes_are_decoded_and_validated() {
        let export = otlp(&[
            (ENDPOINT, "http://c:4317"),
            (
                RESOURCE_ATTRIBUTES,
                "deployment.environment.name=prod,k8s.cluster.name=eu%2C1",
            ),
        ]);
        assert_eq!(
            export.resource_attributes,
            vec![
                (
                    "deployment.environment.name".to_string(),
                    "prod".to_string()
                ),
                ("k8s.cluster.name".to_string(), "eu,1".to_string()),
            ]
        );
        assert_eq!(
            error_variable(&[(ENDPOINT, "http://c:4317"), (RESOURCE_ATTRIBUTES, "oops")]),
            RESOURCE_ATTRIBUTES
        );
    }

    #[test]
    fn every_sampler_and_its_argument() {
        let endpoint = (ENDPOINT, "http://c:4317");
        let sampler = |name: &str, arg: Option<&str>| {
            let mut vars = vec![endpoint, (SAMPLER, name)];
            if let Some(arg) = arg {
                vars.push((SAMPLER_ARG, arg));
            }
            otlp(&vars).sampler
        };
        assert_eq!(sampler("always_on", None), SamplerConfig::AlwaysOn);
        assert_eq!(sampler("always_off", None), SamplerConfig::AlwaysOff);
        assert_eq!(
            sampler("traceidratio", Some("0.25")),
            SamplerConfig::TraceIdRatio(0.25)
        );
        assert_eq!(
            sampler("traceidratio", None),
            SamplerConfig::TraceIdRatio(1.0)
        );
        assert_eq!(
            sampler("parentbased_always_on", None),
            SamplerConfig::ParentBasedAlwaysOn
        );
        assert_eq!(
            sampler("parentbased_always_off", None),
            SamplerConfig::ParentBasedAlwaysOff
        );
        assert_eq!(
            sampler("parentbased_traceidratio", Some("0")),
            SamplerConfig::ParentBasedTraceIdRatio(0.0)
        );
        assert_eq!(
            error_variable(&[endpoint, (SAMPLER, "jaeger_remote")]),
            SAMPLER
        );
        for bad in ["1.5", "-0.1", "half"] {
            assert_eq!(
                error_variable(&[endpoint, (SAMPLER, "traceidratio"), (SAMPLER_ARG, bad)]),
                SAMPLER_ARG
            );
        }
    }
}
