//! `breakwater`: the native companion of the filters.
//!
//! - `breakwater validate FILE...` checks WasmPlugin manifests and Envoy configs: the WasmPlugin
//!   schema and its CEL rules, and every `pluginConfig` / `configuration` with the filter's own
//!   config parser, so what passes here is what `on_configure` accepts.
//! - `breakwater schema FILTER` prints the JSON Schema of a filter's configuration.
//! - `breakwater contract` prints the filter-state keys the filters exchange and their values
//!   (`breakwater_common::filter_state`), for tests and tools that must not spell them.
//! - `breakwater oci ...` builds Istio Wasm OCI images (compat variant) reproducibly and pins
//!   their digests into manifests.

mod contract;
mod filters;
mod oci;
mod schema;
mod validate;
mod yaml;

use std::process::ExitCode;

const USAGE: &str = "usage:
  breakwater validate FILE...              check WasmPlugin manifests and Envoy configs
  breakwater schema FILTER                 print the JSON Schema of a filter's configuration
                                           (circuit-breaker, fallback, log-enrichment)
  breakwater contract                      print the filter-state keys and values the filters
                                           exchange, as JSON
  breakwater oci build --wasm FILE --name NAME --tag TAG --out DIR
                                           write an Istio Wasm OCI image layout (compat variant)
                                           and print its manifest digest
  breakwater oci pin --layouts DIR FILE... set spec.sha256 of each WasmPlugin in FILE to the
                                           digest of the image built under DIR/<image name>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("validate") => validate::run(args.get(1..).unwrap_or_default()),
        Some("schema") => schema::run(args.get(1..).unwrap_or_default()),
        Some("contract") => contract::run(),
        Some("oci") => oci::run(args.get(1..).unwrap_or_default()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
