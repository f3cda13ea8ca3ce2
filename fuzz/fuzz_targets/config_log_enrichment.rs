#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| breakwater_fuzz_targets::config_log_enrichment(data));
