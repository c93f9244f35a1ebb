#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| isc::fuzz_targets::message_summary(data));
