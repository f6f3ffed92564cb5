//! Fuzz target: `reflex::fuzz_entry::webhook_payload` must not panic on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reflex::fuzz_entry::webhook_payload(data));
