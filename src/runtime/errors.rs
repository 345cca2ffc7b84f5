//! Errors as messages a user can read, for logs, Events and conditions: [`message`] (kube API
//! answers in the API server's words, never kube's debug dump of them), and what to say when a
//! controller's resource is not served.

pub use fieldwise_apply::messages::{api_answer, message};

/// Whether a watch failed because the API server does not serve the resource (404 on the list or
/// the watch): its CRD is not installed (or was removed).
pub fn resource_not_served(error: &kube::runtime::watcher::Error) -> bool {
    use kube::runtime::watcher::Error as Watch;
    match error {
        Watch::InitialListFailed(kube::Error::Api(status))
        | Watch::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        Watch::WatchError(status) => status.code == 404,
        _ => false,
    }
}

/// What to do when a controller's resource is not served: install the CRDs.
pub fn install_the_crds(kind: &str, crd: &str) -> String {
    format!(
        "the API server does not serve {kind} (its CRD {crd} is not installed): install the CRDs: \
         fieldwise crds | kubectl apply --server-side -f -"
    )
}

#[cfg(test)]
mod tests {
    use kube::core::Status;
    use kube::runtime::watcher;

    use super::*;

    const UNPARSED: &str = "Failed to parse error data";

    fn status(code: u16, reason: &str, message: &str) -> Box<Status> {
        Box::new(Status::failure(message, reason).with_code(code))
    }

    #[test]
    fn an_api_error_reads_as_the_answer_without_a_debug_dump() {
        let error = kube::Error::Api(status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on featurestores.feast.dev \"s\": the object has been modified",
        ));
        assert!(error.to_string().contains("Status {"), "kube's own Display");
        assert_eq!(
            message(&error),
            "the API server answered 409 Conflict: Operation cannot be fulfilled on \
             featurestores.feast.dev \"s\": the object has been modified"
        );
    }

    #[test]
    fn a_watch_error_keeps_its_context_and_the_answer() {
        let error = watcher::Error::InitialListFailed(kube::Error::Api(status(
            404,
            UNPARSED,
            "404 page not found",
        )));
        assert_eq!(
            message(&error),
            "failed to perform initial object list: the API server answered 404: 404 page not found"
        );
        assert!(resource_not_served(&error));
        let forbidden =
            watcher::Error::InitialListFailed(kube::Error::Api(status(403, "Forbidden", "no")));
        assert!(!resource_not_served(&forbidden));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("could not publish: {0}")]
    struct Wrapping(#[source] kube::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Conventional(#[source] std::io::Error);

    #[test]
    fn causes_follow_once_whether_or_not_the_text_repeats_them() {
        let wrapped = Wrapping(kube::Error::Api(status(
            403,
            "Forbidden",
            "events is forbidden",
        )));
        assert_eq!(
            message(&wrapped),
            "could not publish: the API server answered 403 Forbidden: events is forbidden"
        );
        let conventional = Conventional(std::io::Error::other("disk full"));
        assert_eq!(message(&conventional), "outer: disk full");
    }
}
