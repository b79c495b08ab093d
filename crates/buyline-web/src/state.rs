//! What every handler shares.

use buyline_core::Services;
use metrics_exporter_prometheus::PrometheusHandle;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// The operator's bearer token.
    pub operator_token: Option<String>,
    pub metrics: Option<PrometheusHandle>,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
}
