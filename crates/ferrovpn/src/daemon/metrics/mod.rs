//! Optional Prometheus endpoint (`[daemon] metrics_listen`): `GET /metrics` in the text
//! exposition format 0.0.4, with every configured connection (up or down), its SAs and ESP
//! counters, IKE event counters and the process-wide drop counters.
//!
//! - `collect`: what is counted and what one scrape sees (event counters, the snapshot the
//!   event loop fills).
//! - `exposition`: how a snapshot is written as text (a pure function).
//! - `http`: how the text is served: a small non-blocking HTTP/1.0 server on its own thread.
//!
//! Hand-written rather than prometheus-client: see docs/DEPENDENCIES.md.

mod collect;
mod exposition;
mod http;

pub use collect::{failure_label, ConnSnapshot, EventCounters, IkeEvents, SaPair, Snapshot};
pub use exposition::render;
pub use http::{respond, serve, serve_with, EndpointCounters, Limits, MetricsServer, MAX_CLIENTS};
