//! Compiles a vendor's trust root into the `entitle` binary, when asked:
//!
//! - `ENTITLE_TRUSTED_KEYS=vendor.pub[:other.pub]`: the PEM public keys
//!   the CLI trusts. Such a CLI ignores any keys recorded in a state, so
//!   editing the state cannot make it trust another key (docs/semantics.md#what-stored-state-is-trusted).
//! - `ENTITLE_RELEASE_DATE=RFC3339`: the build's release date, checked
//!   against `maintenance_until`, in place of the one `init` recorded.
//! - `ENTITLE_APP_VERSION=SEMVER`, `ENTITLE_APP_CHANNEL=NAME`: the
//!   version and release channel checked against a license's `versions`
//!   and `channels`, in place of those `init` recorded.
//!
//! Without them (the default) both come from the state, as `init` wrote
//! them. The library itself never reads these: a program passes its keys
//! and release date to `EngineBuilder`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ENTITLE_TRUSTED_KEYS");
    println!("cargo:rerun-if-env-changed=ENTITLE_RELEASE_DATE");
    println!("cargo:rerun-if-env-changed=ENTITLE_APP_VERSION");
    println!("cargo:rerun-if-env-changed=ENTITLE_APP_CHANNEL");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut keys = String::new();
    if let Some(paths) = env::var_os("ENTITLE_TRUSTED_KEYS") {
        for path in env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()) {
            println!("cargo:rerun-if-changed={}", path.display());
            let pem = fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "ENTITLE_TRUSTED_KEYS names `{}`, which cannot be read: {e}",
                    path.display()
                )
            });
            if !pem.contains("-----BEGIN PUBLIC KEY-----") {
                panic!(
                    "ENTITLE_TRUSTED_KEYS names `{}`, which holds no PEM public key",
                    path.display()
                );
            }
            keys.push_str(pem.trim());
            keys.push('\n');
        }
    }
    fs::write(out.join("trusted_keys.pem"), keys).expect("OUT_DIR is writable");

    let release_date = env::var("ENTITLE_RELEASE_DATE").unwrap_or_default();
    fs::write(out.join("release_date.txt"), release_date.trim()).expect("OUT_DIR is writable");

    for (variable, file) in [
        ("ENTITLE_APP_VERSION", "app_version.txt"),
        ("ENTITLE_APP_CHANNEL", "app_channel.txt"),
    ] {
        let value = env::var(variable).unwrap_or_default();
        fs::write(out.join(file), value.trim()).expect("OUT_DIR is writable");
    }
}
