//! Validation of FeatureStore manifests as the API server would judge them (being written).
