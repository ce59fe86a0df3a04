#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mpfr_fuzz::duration::run(data));
