#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dockerish_fuzz::runtime_options(data));
