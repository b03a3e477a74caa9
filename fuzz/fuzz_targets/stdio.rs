#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dockerish_fuzz::stdio(data));
