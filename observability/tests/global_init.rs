//! `init` installs the subscriber once; its own binary so the global default affects nothing else.

use fieldwise_observability::{self as obs, Error, TelemetryConfig};

#[tokio::test]
async fn init_installs_once() {
    let guard = obs::init_with_env(&TelemetryConfig::default(), |_| None).expect("first init");
    assert!(!guard.is_exporting());
    let second = obs::init_with_env(&TelemetryConfig::default(), |_| None);
    assert!(
        matches!(second, Err(Error::AlreadyInstalled)),
        "{:?}",
        second.err()
    );
    guard.shutdown().await.expect("shutdown");
}
