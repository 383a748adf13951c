//! Verification counted in instructions rather than seconds: ten thousand
//! verifications of the typical license of `benches/verify.rs`, to run
//! under `valgrind --tool=callgrind`, whose count does not move with the
//! load on the machine. `bare` is ed25519-dalek's `verify_strict` alone on
//! the same bytes, `add` the whole path a license file takes, `document`
//! the license document read alone; `none` is the set-up.
//!
//! ```sh
//! cargo build --release --example verify_instructions
//! for kind in none bare add document; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/verify_instructions $kind 2>&1 | grep refs
//! done
//! ```
//!
//! Subtract `none` and divide by ten thousand for instructions per
//! verification: the target (`add` at most 1.25 × `bare`) is read in
//! these counts, which the machine's noise does not move, and they show
//! where the parser's share goes, exactly. `ratio` (run without valgrind)
//! times blocks of `add` and `bare` in turn and prints the spread of their
//! ratio within one process.

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use entitle::license::{License, VerifiedLicense};
use entitle::token::{armor, sign, Keyring, SigningKey, TokenType};

#[path = "../benches/typical_license.rs"]
mod typical_license;

const RUNS: usize = 10_000;
/// `ratio`: blocks of each kind, and verifications per block.
const RATIO_BLOCKS: usize = 200;
const BLOCK: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kind = std::env::args().nth(1).unwrap_or_else(|| "none".into());
    let key = SigningKey::from_seed(&[0x42; 32]);
    let mut keyring = Keyring::new();
    keyring.add(key.public_key().clone());
    let token = sign(
        &typical_license::typical_license(),
        &key,
        TokenType::License,
    )?;
    let armored = armor(&token, TokenType::License);
    let (signing_input, signature) = token.rsplit_once('.').ok_or("a compact token")?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)?
        .try_into()
        .map_err(|_| "64 bytes")?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    let verifying_key = ed25519_dalek::VerifyingKey::from_bytes(key.public_key().as_bytes())?;
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).ok_or("a payload")?)?;
    let ok = match kind.as_str() {
        "none" => RUNS,
        "bare" => (0..RUNS)
            .filter(|_| {
                verifying_key
                    .verify_strict(black_box(signing_input.as_bytes()), &signature)
                    .is_ok()
            })
            .count(),
        "add" => (0..RUNS)
            .filter(|_| VerifiedLicense::verify(black_box(&armored), &keyring).is_ok())
            .count(),
        "document" => (0..RUNS)
            .filter(|_| License::from_json_slice(black_box(&payload)).is_ok())
            .count(),
        "ratio" => {
            // Time, not instructions: blocks of each, interleaved, so that
            // both see the same machine; the spread of the block ratios
            // shows how far one process's figure can be trusted.
            let mut ratios: Vec<f64> = (0..RATIO_BLOCKS)
                .map(|_| {
                    let started = Instant::now();
                    for _ in 0..BLOCK {
                        let _ = black_box(VerifiedLicense::verify(black_box(&armored), &keyring));
                    }
                    let added = started.elapsed();
                    let started = Instant::now();
                    for _ in 0..BLOCK {
                        let _ = black_box(
                            verifying_key
                                .verify_strict(black_box(signing_input.as_bytes()), &signature),
                        );
                    }
                    added.as_secs_f64() / started.elapsed().as_secs_f64()
                })
                .collect();
            ratios.sort_by(f64::total_cmp);
            let at = |q: usize| ratios[(ratios.len() - 1) * q / 100];
            println!(
                "add / bare in time: p25 {:.3}, median {:.3}, p75 {:.3}",
                at(25),
                at(50),
                at(75)
            );
            RUNS
        }
        other => {
            return Err(
                format!("unknown kind `{other}`: none, bare, add, document or ratio").into(),
            )
        }
    };
    assert_eq!(ok, RUNS, "every verification succeeds");
    println!("{kind}: {ok} runs");
    Ok(())
}
