//! `entitle demo` walks through everything and exits 0.

use std::process::Command;

#[test]
fn the_demo_runs_and_tells_the_whole_story() {
    let out = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "SIGNATURE_INVALID",
        "add dee: OVERAGE",
        "SEAT_LIMIT",
        "FLOATING_EXHAUSTED",
        "LEASE_EXPIRED",
        "CONSUMPTION_LIMIT",
        "certificate applied for workstation-7",
        "IN_GRACE",
        "cad: EXPIRED",
        "CLOCK_TAMPERED",
        "REPORT_REPLAYED",
        "the books accept the receipt and free the slot",
        "RECEIPT_REPLAYED",
    ] {
        assert!(
            text.contains(expected),
            "the demo no longer shows {expected}:\n{text}"
        );
    }
    let json = Command::new(env!("CARGO_BIN_EXE_entitle"))
        .args(["demo", "--json"])
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["ok"], true);
}
