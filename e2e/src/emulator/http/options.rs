//! Validation of a list's or watch's query (kube-apiserver's `ValidateListOptions`), as 1.33 does it
//! with its default feature gates: WatchList is off, so a watch may not ask for `sendInitialEvents`.

use std::collections::HashMap;

use super::super::errors::{ApiError, ApiResult, Cause};

const NOT_OLDER_THAN: &str = "NotOlderThan";
const EXACT: &str = "Exact";

fn forbidden(field: &str, detail: &str) -> Cause {
    Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    Cause::new(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            supported.join(", ")
        ),
    )
}

/// The 422 of a list (`watching` false) or watch query kube-apiserver refuses.
pub fn validate(q: &HashMap<String, String>, watching: bool) -> ApiResult<()> {
    let causes = if watching {
        watch_causes(q)
    } else {
        list_causes(q)
    };
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", causes))
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> &'a str {
    q.get(name).map_or("", String::as_str)
}

fn list_causes(q: &HashMap<String, String>) -> Vec<Cause> {
    let mut causes = match param(q, "resourceVersionMatch") {
        "" => Vec::new(),
        matching => list_match_causes(q, matching),
    };
    if q.contains_key("sendInitialEvents") {
        causes.push(forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    causes
}

fn list_match_causes(q: &HashMap<String, String>, matching: &str) -> Vec<Cause> {
    let field = "resourceVersionMatch";
    let rv = param(q, "resourceVersion");
    let mut causes = Vec::new();
    if rv.is_empty() {
        causes.push(forbidden(
            field,
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if !param(q, "continue").is_empty() {
        causes.push(forbidden(
            field,
            "resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    if matching != EXACT && matching != NOT_OLDER_THAN {
        causes.push(not_supported(field, matching, &[EXACT, NOT_OLDER_THAN, ""]));
    }
    if matching == EXACT && rv == "0" {
        causes.push(forbidden(
            field,
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    causes
}

fn watch_causes(q: &HashMap<String, String>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let matching = param(q, "resourceVersionMatch");
    let field = "resourceVersionMatch";
    let send_initial = q.contains_key("sendInitialEvents");
    if send_initial {
        if matching != NOT_OLDER_THAN {
            causes.push(forbidden(
                field,
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        causes.push(forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    }
    if matching.is_empty() {
        return causes;
    }
    if !send_initial {
        causes.push(forbidden(
            field,
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    if matching != NOT_OLDER_THAN {
        causes.push(not_supported(field, matching, &[NOT_OLDER_THAN]));
    }
    if !param(q, "continue").is_empty() {
        causes.push(forbidden(
            field,
            "resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    causes
}
