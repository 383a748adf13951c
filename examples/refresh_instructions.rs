//! What a refresh after another process's change costs, with 1 or 100
//! licenses in the state, in instructions (which the machine's noise does
//! not move): engine B consumes a unit (a change that touches no license),
//! engine A refreshes, 2,000 times; only A's refreshes are counted.
//!
//! ```sh
//! cargo build --release --example refresh_instructions
//! for n in 1 100; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         --toggle-collect='entitle::engine::Engine::refresh' \
//!         target/release/examples/refresh_instructions $n 2>&1 | grep refs
//! done
//! ```
//!
//! Divide by 2,000 for instructions per refresh; the figure of 100
//! licenses over the figure of 1 is the ratio BENCHMARKS.md reports.

use entitle::store::FileStore;
use entitle::token::{sign, SigningKey, TokenType};
use entitle::{Engine, SystemClock};
use serde_json::json;

const REFRESHES: usize = 2_000;

fn main() -> Result<(), entitle::Error> {
    let licenses: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let vendor = SigningKey::from_seed(&[7; 32]);
    let dir = std::env::temp_dir().join(format!("entitle-refresh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| entitle::Error::Io {
        context: "making a directory".into(),
        source: e,
    })?;
    let open = || -> Result<Engine, entitle::Error> {
        Engine::builder("bench")
            .trust(vendor.public_key().clone())
            .clock(SystemClock)
            .store(FileStore::create(&dir)?)
            .background_refresh(false)
            .build()
    };
    let writer = open()?;
    for i in 0..licenses {
        let document = json!({"v": 1, "id": format!("lic-{i:03}"), "product": "bench",
            "issued_at": "2026-01-01T00:00:00Z", "serial": 2, "seats": {"max": 120},
            "floating": {"seats": 5, "lease_secs": 600},
            "features": [{"code": "export"}, {"code": "render", "limit": 4},
                {"code": "meter", "consumption": {"reset": "monthly"}}]});
        writer.add_license(&sign(&document, &vendor, TokenType::License)?)?;
    }
    for i in 0..100 {
        writer.add_user(&format!("user-{i:03}"), "designer")?;
    }
    let reader = open()?;
    for _ in 0..REFRESHES {
        writer.consume("meter", 1)?;
        reader.refresh()?;
    }
    drop((writer, reader));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
