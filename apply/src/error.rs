//! Errors of the engine. Every variant names the object it is about; none carries an object body.

use std::fmt;

/// Identity of one object: what errors, reports and spans name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What went wrong for one object (or for the whole reconcile).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The desired object (or owner) given by the controller is malformed.
    #[error("invalid desired object {object}: {reason}")]
    InvalidObject {
        /// The object, as far as it could be identified.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// The desired object's kind is not in the registry.
    #[error("{object}: kind {api_version}/{kind} is not registered with the engine")]
    UnregisteredKind {
        /// The object.
        object: String,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// The cache of a kind has not finished its initial list.
    #[error("cache for {kind} is not ready")]
    CacheNotReady {
        /// The kind.
        kind: String,
    },
    /// The API server refused the request in a way retrying cannot fix (400, 403, 404, 409
    /// field conflicts, 422, …). `message` quotes the server.
    #[error("{object}: {verb} rejected by the API server ({code} {reason}): {message}")]
    Rejected {
        /// The object.
        object: String,
        /// `apply`, `apply status`, `handover`, `delete`.
        verb: &'static str,
        /// HTTP status code.
        code: u16,
        /// The Status reason, e.g. `Invalid`, `Forbidden`.
        reason: String,
        /// The server's message.
        message: String,
    },
    /// A retryable failure persisted through every attempt.
    #[error("{object}: {verb} failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The object.
        object: String,
        /// The request.
        verb: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The desired object changes a field the API server does not allow to change, and
    /// recreating the object would lose data or availability.
    #[error("{object}: field {field} is immutable and differs from the live object; {hint}")]
    ImmutableField {
        /// The object.
        object: String,
        /// The field path, e.g. `spec.selector`.
        field: String,
        /// What the user can do.
        hint: String,
    },
    /// A recreate (delete then apply) is waiting for the old object to go away.
    #[error(
        "{object}: recreating for a changed immutable field {field}; the old object is still terminating"
    )]
    RecreatePending {
        /// The object.
        object: String,
        /// The immutable field that changed.
        field: String,
    },
    /// The response could not be understood.
    #[error("{object}: unexpected response to {verb}: {message}")]
    BadResponse {
        /// The object.
        object: String,
        /// The request.
        verb: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The object already has a controller ownerReference to another owner. The API allows one
    /// controller per object, and the other controller would fight over it: it is left alone.
    #[error(
        "{object} is controlled by {controller} (uid {controller_uid}), not by this owner; left alone"
    )]
    ControlledByAnother {
        /// The object.
        object: String,
        /// Its controller, as `<Kind> <name>`.
        controller: String,
        /// The controller's uid.
        controller_uid: String,
    },
    /// The write was not sent: this instance's leader lease was not confirmed recently enough, so
    /// another replica may lead (`crate::fence`).
    #[error("{object}: {verb} not sent: {message}")]
    Fenced {
        /// The object.
        object: String,
        /// The request.
        verb: &'static str,
        /// Why the fence refused it.
        message: String,
    },
    /// The handover apply failed, so the replica-less apply was not sent (it could reset
    /// replicas to the default).
    #[error("{object}: replicas handover failed, apply skipped: {cause}")]
    HandoverFailed {
        /// The object.
        object: String,
        /// The handover error.
        cause: String,
    },
}

/// What kind of failure an error is, for metrics labels and Event reasons: whether the user's
/// resource, a conflict with another writer, the cluster, or fieldwise itself is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The resource asks for something that cannot be built or is refused as invalid (422, 400).
    Invalid,
    /// An immutable field changed and the object cannot be recreated without loss.
    Immutable,
    /// Another writer holds the object or a field of it (409), or it is still terminating.
    Conflict,
    /// The operator lacks a permission (403).
    Forbidden,
    /// The API server was unavailable, slow or overloaded for every retry; a later try may pass.
    Transient,
    /// A bug or an unexpected answer: nothing the user can fix.
    Internal,
}

impl ErrorCategory {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Immutable => "immutable",
            Self::Conflict => "conflict",
            Self::Forbidden => "forbidden",
            Self::Transient => "transient",
            Self::Internal => "internal",
        }
    }
}

impl ApplyError {
    /// What kind of failure this is.
    pub fn category(&self) -> ErrorCategory {
        match self {
            ApplyError::InvalidObject { .. } => ErrorCategory::Invalid,
            ApplyError::Rejected { code: 403, .. } => ErrorCategory::Forbidden,
            ApplyError::Rejected { code: 409, .. } | ApplyError::RecreatePending { .. } => {
                ErrorCategory::Conflict
            }
            ApplyError::Rejected {
                code: 400 | 404 | 422,
                ..
            } => ErrorCategory::Invalid,
            ApplyError::Rejected { code, .. } if *code >= 500 || *code == 429 => {
                ErrorCategory::Transient
            }
            ApplyError::Rejected { .. } => ErrorCategory::Invalid,
            ApplyError::ImmutableField { .. } => ErrorCategory::Immutable,
            ApplyError::RetriesExhausted { .. }
            | ApplyError::CacheNotReady { .. }
            | ApplyError::Fenced { .. } => ErrorCategory::Transient,
            ApplyError::HandoverFailed { .. } | ApplyError::ControlledByAnother { .. } => {
                ErrorCategory::Conflict
            }
            ApplyError::UnregisteredKind { .. } | ApplyError::BadResponse { .. } => {
                ErrorCategory::Internal
            }
        }
    }

    /// HTTP status code when the server rejected the request.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApplyError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}
