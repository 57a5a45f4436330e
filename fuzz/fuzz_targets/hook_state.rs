#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sniffguard_fuzz::hook_state(data));
