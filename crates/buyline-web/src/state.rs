//! What every handler shares.

use crate::csrf::CsrfKey;
use buyline_core::payment::{ChallengePage, Processor};
use buyline_core::Services;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// A handle on [`AppParts`]: every extractor and middleware clones the state once per
/// request, so a clone is one reference count, not one per service and string (the
/// timeline's profile had those clones and drops at ~18 % of the server's time).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub services: Services,
    /// The payment processor (the one the services pay through).
    pub processor: Arc<dyn Processor>,
    /// The processor's 3-D Secure challenge page, when this server hosts it (the built-in
    /// test processor's); `None` answers that page 404.
    pub challenges: Option<Arc<dyn ChallengePage>>,
    /// The operator's bearer token.
    pub operator_token: Option<String>,
    pub metrics: Option<PrometheusHandle>,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Signs the CSRF tokens of pages and cookie-authenticated API writes.
    pub csrf: CsrfKey,
    /// Where uploaded images and digital files live.
    pub blobs: crate::blobs::Blobs,
}
