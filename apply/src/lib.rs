//! fieldwise-apply: the server-side-apply engine.
pub mod error;
pub mod fields;
pub mod labels;
pub mod registry;
