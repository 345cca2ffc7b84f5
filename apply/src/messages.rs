//! Errors as messages a user can read, for logs, Events and conditions.
//!
//! kube's API error prints as `ApiError: <message>: <reason> (Status { status: Some(Failure), … })`,
//! a Rust debug dump of the API server's answer, and every error wrapping one (watch errors, the
//! controller's queue errors, lease errors) repeats it. [`message`] prints such an answer as the API
//! server's words instead, and any error as its own text followed by its causes.

use std::error::Error;

use kube::core::Status;

/// The reason kube gives a Status it made up because the answer was no Status (Go's plain-text
/// `404 page not found`, say).
const UNPARSED: &str = "Failed to parse error data";

/// `error` and its causes as one line: `<error>: <cause>: <cause>`, each part once, kube API errors
/// as [`api_answer`] words them.
pub fn message(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(kube::Error::Api(status)) = error.downcast_ref::<kube::Error>() {
            parts.push(api_answer(status));
            break;
        }
        let text = error.to_string();
        let source = error.source();
        match source.map(ToString::to_string) {
            // The usual `#[error("…: {0}")]`: the text ends with the cause's; keep what it adds.
            Some(inner) if text.ends_with(&inner) => {
                let own = text[..text.len() - inner.len()].trim_end_matches([':', ' ']);
                if !own.is_empty() {
                    parts.push(own.to_owned());
                }
            }
            // The cause's text is inside this one: printing the cause again would repeat it.
            Some(inner) if text.contains(&inner) => {
                parts.push(text);
                break;
            }
            _ => parts.push(text),
        }
        current = source;
    }
    parts.join(": ")
}

/// An API server's error answer: `the API server answered <code> <reason>: <message>`.
pub fn api_answer(status: &Status) -> String {
    let reason = status.reason.as_str();
    if reason.is_empty() || reason == UNPARSED {
        format!(
            "the API server answered {}: {}",
            status.code,
            status.message.trim()
        )
    } else {
        format!(
            "the API server answered {} {reason}: {}",
            status.code,
            status.message.trim()
        )
    }
}
