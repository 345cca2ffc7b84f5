//! Defaults the controller writes into `status.applied`, and values derived from the spec.
