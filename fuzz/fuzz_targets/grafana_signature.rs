//! Fuzz target: `reflex::fuzz_entry::grafana_signature` must not panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reflex::fuzz_entry::grafana_signature(data));
