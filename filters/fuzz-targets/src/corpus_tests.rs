//! Every committed fuzz input (`fuzz/corpus/<target>/`, and crash reproducers in
//! `fuzz/artifacts/<target>/`) runs through its target: inputs that once found a defect stay
//! regression tests, and the corpus keeps exercising the invariants without libFuzzer.

use crate::TARGETS;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn run(target: &str) {
    let (_, function) = TARGETS.iter().find(|(name, _)| *name == target).unwrap();
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "no corpus for {target} in {}",
        fuzz_dir().display()
    );
    for file in corpus.iter().chain(inputs("artifacts", target).iter()) {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| function(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", file.display());
    }
}

#[test]
fn corpus_config_circuit_breaker() {
    run("config_circuit_breaker");
}

#[test]
fn corpus_config_fallback() {
    run("config_fallback");
}

#[test]
fn corpus_config_log_enrichment() {
    run("config_log_enrichment");
}

#[test]
fn corpus_request_matching() {
    run("request_matching");
}

#[test]
fn corpus_breaker_state_machine() {
    run("breaker_state_machine");
}

#[test]
fn corpus_redaction() {
    run("redaction");
}

#[test]
fn corpus_correlation_id() {
    run("correlation_id");
}

#[test]
fn corpus_body_fields() {
    run("body_fields");
}

#[test]
fn corpus_user_patterns() {
    run("user_patterns");
}
