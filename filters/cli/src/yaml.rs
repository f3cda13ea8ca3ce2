//! Multi-document YAML files as JSON values.

use serde_json::Value;

/// Every document of a YAML stream, in order (empty documents are skipped but counted, so
/// document numbers match what `kubectl` reports).
pub fn documents(text: &str) -> Result<Vec<(usize, Value)>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value: Value =
            serde::Deserialize::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !value.is_null() {
            out.push((i + 1, value));
        }
    }
    Ok(out)
}

/// YAML 1.1 reads these plain (unquoted) scalars as booleans. kubectl (sigs.k8s.io/yaml) parses
/// YAML 1.1, this tool YAML 1.2: a bare `on:` key reaches the API server as `"true":`.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Lines holding a plain key or value that YAML 1.1 would read as a boolean although YAML 1.2
/// (and the author) mean a string: `(line number, word)`.
pub fn yaml11_boolean_words(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let mut rest = code.trim_start();
        while let Some(item) = rest.strip_prefix("- ") {
            rest = item.trim_start();
        }
        let (key, value) = match rest.split_once(':') {
            Some((k, v)) if v.is_empty() || v.starts_with(' ') => (k.trim(), v.trim()),
            _ => ("", rest.trim()),
        };
        for word in [key, value] {
            if YAML11_BOOLEANS.contains(&word) {
                found.push((i + 1, word.to_string()));
            }
        }
    }
    found
}
