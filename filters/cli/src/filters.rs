//! The three filters, by the names used in images, manifests and module files.

use breakwater_common::config::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    CircuitBreaker,
    Fallback,
    LogEnrichment,
}

pub const ALL: [Filter; 3] = [
    Filter::CircuitBreaker,
    Filter::Fallback,
    Filter::LogEnrichment,
];

impl Filter {
    /// The image and crate name: `circuit-breaker`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::CircuitBreaker => "circuit-breaker",
            Filter::Fallback => "fallback",
            Filter::LogEnrichment => "log-enrichment",
        }
    }

    /// The module file name in `dist/`: `circuit_breaker.wasm`.
    pub fn module_file(self) -> &'static str {
        match self {
            Filter::CircuitBreaker => "circuit_breaker.wasm",
            Filter::Fallback => "fallback.wasm",
            Filter::LogEnrichment => "log_enrichment.wasm",
        }
    }

    /// Accepts the image name (`circuit-breaker`) or the module's (`circuit_breaker`).
    pub fn from_name(name: &str) -> Option<Filter> {
        let name = name.strip_suffix(".wasm").unwrap_or(name);
        ALL.into_iter()
            .find(|f| f.name() == name || f.module_file().strip_suffix(".wasm") == Some(name))
    }

    /// Runs the filter's own configuration parser and validation (what `on_configure` runs).
    pub fn check_config(self, json: &[u8]) -> Result<(), ConfigError> {
        match self {
            Filter::CircuitBreaker => circuit_breaker::config::BreakerConfig::parse(json).map(drop),
            Filter::Fallback => fallback::config::FallbackConfig::parse(json).map(drop),
            Filter::LogEnrichment => log_enrichment::config::LogConfig::parse(json).map(drop),
        }
    }
}
