#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bohai_certs_fuzz::licence(data);
});
