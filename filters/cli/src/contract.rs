//! `breakwater contract`: the filter-state keys the filters write and read, with their writer
//! and values, as JSON (from `breakwater_common::filter_state`), and the access-log format of
//! log enrichment's `envoy_fields: "access_log"`. The end-to-end tests build their access-log
//! formats from it, and tests below hold the README and the shipped configs to it.

use breakwater_common::filter_state::{log, CONTRACT};
use serde_json::{json, Map, Value};

pub fn contract() -> Value {
    let keys: Map<String, Value> = CONTRACT
        .iter()
        .map(|spec| {
            (
                spec.key.to_string(),
                json!({
                    "name": spec.name,
                    "writer": spec.writer,
                    "values": (spec.values)(),
                    "parts": spec.parts.iter().map(|part| json!({"name": part.name, "values": (part.values)()})).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    json!({
        "keys": keys,
        "log_field_prefix": log::FIELD_PREFIX,
        "access_log_format": access_log_format(),
    })
}

/// The text format that prints log enrichment's `envoy_fields: "access_log"` records.
pub fn access_log_format() -> String {
    log_enrichment::config::access_log_format(&format!("wasm.{}", log::RECORD))
}

pub fn run() -> Result<(), String> {
    let text = serde_json::to_string_pretty(&contract()).map_err(|e| format!("contract: {e}"))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the README's filter-state tables (those headed `| key | value… |`): (key,
    /// values) from lines like ``| `breakwater.fallback.cache` | `stored` | … |``.
    fn readme_rows() -> Vec<(String, Vec<String>)> {
        table_rows("| key | value")
    }

    /// The rows of the tables of a value's parts (headed `| part of … |`): (part, values).
    fn readme_part_rows() -> Vec<(String, Vec<String>)> {
        table_rows("| part of ")
    }

    fn table_rows(heading: &str) -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../../../README.md");
        let mut rows = Vec::new();
        let mut in_table = false;
        for line in readme.lines() {
            if !line.starts_with('|') {
                in_table = false;
                continue;
            }
            if line.starts_with(heading) {
                in_table = true;
                continue;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = cells
                .get(1)
                .and_then(|c| c.strip_prefix('`'))
                .and_then(|c| c.strip_suffix('`'));
            let (true, Some(key)) = (in_table, key) else {
                continue;
            };
            let values = cells
                .get(2)
                .map(|c| {
                    c.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            rows.push((key.to_string(), values));
        }
        rows
    }

    #[test]
    fn the_readme_tables_list_every_key_and_value_of_the_contract() {
        let rows = readme_rows();
        for spec in CONTRACT {
            let documented: Vec<&(String, Vec<String>)> =
                rows.iter().filter(|(key, _)| key == spec.key).collect();
            assert_eq!(documented.len(), 1, "{} in the README's tables", spec.key);
            let values: Vec<String> = (spec.values)().iter().map(|v| v.to_string()).collect();
            if !values.is_empty() {
                assert_eq!(documented[0].1, values, "the values of {}", spec.key);
            }
            let part_rows = readme_part_rows();
            for part in spec.parts {
                let documented: Vec<&(String, Vec<String>)> = part_rows
                    .iter()
                    .filter(|(name, _)| name == part.name)
                    .collect();
                assert_eq!(
                    documented.len(),
                    1,
                    "part {} of {} in the README",
                    part.name,
                    spec.key
                );
                let values: Vec<String> = (part.values)().iter().map(|v| v.to_string()).collect();
                if !values.is_empty() {
                    assert_eq!(
                        documented[0].1, values,
                        "the values of {}'s {}",
                        spec.key, part.name
                    );
                }
            }
        }
        for (key, _) in &rows {
            assert!(
                CONTRACT.iter().any(|spec| spec.key == key) || key.starts_with(log::FIELD_PREFIX),
                "the README documents {key}, which no filter writes"
            );
        }
    }

    /// The README and envoy/log-enrichment-lean.yaml give the format the code builds.
    #[test]
    fn the_shipped_access_log_format_is_the_contracts() {
        let format = access_log_format();
        assert!(include_str!("../../../README.md").contains(&format));
        let yaml = include_str!("../../../envoy/log-enrichment-lean.yaml");
        assert!(yaml.contains(&format));
    }

    #[test]
    fn shipped_configs_read_only_keys_of_the_contract() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut files = Vec::new();
        for dir in ["envoy", "istio", "istio/base", "istio/overlays/staging"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 5, "{files:?}");
        let mut seen = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices("wasm.breakwater") {
                let key: String = text[at + "wasm.".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    .collect();
                let key = key.trim_end_matches('.');
                seen += 1;
                assert!(
                    CONTRACT.iter().any(|spec| spec.key == key)
                        || key.starts_with(log::FIELD_PREFIX),
                    "{}: {key} is not a filter-state key of the contract",
                    file.display()
                );
            }
        }
        assert!(seen > 10, "{seen}");
    }
}
