//! Replays every fuzz corpus and every saved crash through the function its
//! fuzz target calls, on stable Rust, so that a crash once found and fixed
//! stays fixed.
//!
//! To add a target: write its function in `fuzz/src/lib.rs`, its five-line
//! target in `fuzz/fuzz_targets/`, and a row in [`TARGETS`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod fuzz_targets;

type Target = fn(&[u8]) -> entitle::Result<()>;

/// Each fuzz target's name (its corpus and artifacts directory) and the
/// function it feeds its input to.
const TARGETS: &[(&str, Target)] = &[
    ("token", fuzz_targets::token),
    ("armor", fuzz_targets::armor),
    ("license", fuzz_targets::license),
    ("request", fuzz_targets::request),
    ("machine", fuzz_targets::machine),
    ("revocations", fuzz_targets::revocations),
    ("keys", fuzz_targets::keys),
    ("receipt", fuzz_targets::receipt),
    ("report", fuzz_targets::report),
    ("lease", fuzz_targets::lease),
    ("filter", fuzz_targets::filter),
    ("state", fuzz_targets::state),
    ("license_key", fuzz_targets::license_key),
];

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(name: &str, target: Target) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    let mut panics = Vec::new();
    for dir in [
        root.join("corpus").join(name),
        root.join("artifacts").join(name),
    ] {
        for path in inputs(&dir) {
            let data = std::fs::read(&path).expect("readable corpus file");
            replayed += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                panics.push(path.display().to_string());
            }
        }
    }
    (replayed, panics)
}

#[test]
fn every_corpus_and_artifact_replays_without_panic() {
    let mut panics = Vec::new();
    for &(name, target) in TARGETS {
        let (replayed, mut failed) = replay(name, target);
        assert!(
            replayed > 0,
            "fuzz/corpus/{name}/ is empty: commit a few seed inputs"
        );
        panics.append(&mut failed);
    }
    assert!(panics.is_empty(), "inputs that panic: {panics:#?}");
}

#[test]
fn the_token_corpus_reaches_past_the_signature_check() {
    // A corpus of inputs that all fail early would leave the fuzzer
    // exploring only the base64 layer.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/token");
    let verified = inputs(&root)
        .iter()
        .filter(|path| fuzz_targets::token(&std::fs::read(path).unwrap()).is_ok())
        .count();
    assert!(verified >= 2, "only {verified} token seeds verify");
}

#[test]
fn the_license_corpus_holds_valid_and_invalid_documents() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/license");
    let results: Vec<bool> = inputs(&root)
        .iter()
        .map(|path| fuzz_targets::license(&std::fs::read(path).unwrap()).is_ok())
        .collect();
    assert!(
        results.contains(&true) && results.contains(&false),
        "{results:?}"
    );
}

#[test]
fn the_license_key_corpus_holds_keys_that_read_and_typing_that_does_not() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/license_key");
    let results: Vec<bool> = inputs(&root)
        .iter()
        .map(|path| fuzz_targets::license_key(&std::fs::read(path).unwrap()).is_ok())
        .collect();
    assert!(
        results.iter().filter(|&&ok| ok).count() >= 2 && results.contains(&false),
        "{results:?}"
    );
}

#[test]
fn the_signed_document_corpora_hold_tokens_that_verify() {
    for (name, target) in [
        ("machine", fuzz_targets::machine as Target),
        ("revocations", fuzz_targets::revocations),
        ("keys", fuzz_targets::keys),
        ("receipt", fuzz_targets::receipt),
        ("report", fuzz_targets::report),
        ("lease", fuzz_targets::lease),
    ] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(name);
        let accepted = inputs(&root)
            .iter()
            .filter(|path| target(&std::fs::read(path).unwrap()).is_ok())
            .count();
        assert!(accepted >= 2, "only {accepted} {name} seeds are accepted");
    }
}

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

#[test]
fn a_state_file_that_is_not_sqlite_is_refused_as_corrupt() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/state");
    let mut garbage = 0;
    for path in inputs(&root) {
        let data = std::fs::read(&path).unwrap();
        // An empty file is an empty SQLite database, not a corrupt one.
        if data.is_empty() || data.starts_with(SQLITE_MAGIC) {
            continue;
        }
        garbage += 1;
        match fuzz_targets::state(&data) {
            Ok(()) => panic!("{} opened as a state", path.display()),
            Err(e) => assert_eq!(e.code(), "STATE_CORRUPT", "{}: {e}", path.display()),
        }
    }
    assert!(garbage > 0, "fuzz/corpus/state/ holds no garbage file");
}

#[test]
fn the_state_corpus_holds_states_that_open() {
    // Seeds that all fail at the header would leave the fuzzer exploring
    // only SQLite's refusal, never the engine's reading of the rows.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/state");
    let opened = inputs(&root)
        .iter()
        .filter(|path| fuzz_targets::state(&std::fs::read(path).unwrap()).is_ok())
        .count();
    assert!(opened >= 2, "only {opened} state seeds open");
}
