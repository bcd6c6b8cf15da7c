//! Shared helpers for the integration tests in this package.
