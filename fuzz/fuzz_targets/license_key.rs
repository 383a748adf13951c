#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entitle_fuzz::license_key(data);
});
