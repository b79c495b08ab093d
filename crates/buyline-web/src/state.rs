//! What every handler shares.

use crate::csrf::CsrfKey;
use buyline_core::test_processor::TestProcessor;
use buyline_core::Services;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// The built-in test processor, for its 3-D Secure challenge page.
    pub processor: Arc<TestProcessor>,
    /// The operator's bearer token.
    pub operator_token: Option<String>,
    pub metrics: Option<PrometheusHandle>,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Signs the CSRF tokens of pages and cookie-authenticated API writes.
    pub csrf: CsrfKey,
}
