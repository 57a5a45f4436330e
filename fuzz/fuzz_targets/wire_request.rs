#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sniffguard_fuzz::wire_request(data));
