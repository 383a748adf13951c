//! The vendor's books and a virtual machine (docs/formats.md#activation-request):
//! an activation request says whether the install runs on one, and a
//! license with `prevent_vm` is refused for it before anything is counted,
//! through the library and through `entitle respond`.

mod cli_common;
mod common;

use std::path::Path;
use std::process::{Command, Output};

use cli_common::{exit_code, json_out};
use common::*;
use entitle::engine::ActivationRequest;
use serde_json::{json, Value};

/// A node-locked license for one device, counted by the vendor, that
/// refuses virtual machines when `prevent_vm`.
fn license(vendor: &Vendor, prevent_vm: bool) -> String {
    vendor.license(json!({"id": "lic_desk", "prevent_vm": prevent_vm,
        "activations": {"max": 1, "counted_by": "vendor"},
        "features": [{"code": "cad"}]}))
}

/// The activation request of an install on device `fingerprint`, on a
/// virtual machine or not, holding `license`.
fn request(vendor: &Vendor, license: &str, fingerprint: &str, vm: bool) -> ActivationRequest {
    let clock = clock_at(T0);
    let install = vendor
        .builder(&clock)
        .fingerprint(fingerprint)
        .virtual_machine(vm)
        .build()
        .unwrap();
    install.add_license(license).unwrap();
    install.activation_request(None).unwrap()
}

#[test]
fn the_request_says_whether_the_install_runs_on_a_virtual_machine() {
    let vendor = Vendor::new();
    let license = license(&vendor, true);
    for vm in [true, false] {
        let request = request(&vendor, &license, "desk-1", vm);
        assert_eq!(request.vm, vm);
        // Always written, so the vendor never has to guess.
        let written = serde_json::to_value(&request).unwrap();
        assert_eq!(written["vm"], json!(vm), "{written}");
        let carried = ActivationRequest::from_json_text(&written.to_string()).unwrap();
        assert_eq!(carried, request);
    }
}

#[test]
fn a_virtual_machine_is_refused_for_a_prevent_vm_license_before_anything_is_counted() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let license = license(&vendor, true);
    let books = vendor.books(&clock);
    books.add_license(&license).unwrap();

    let on_vm = request(&vendor, &license, "vm-1", true);
    let refused = books.record_issued_certificate(&on_vm, None).unwrap_err();
    assert_eq!(refused.code(), "VM_NOT_ALLOWED", "{refused}");
    assert!(
        refused.to_string().contains("lic_desk"),
        "names the license: {refused}"
    );
    assert!(books.activations().is_empty(), "{:?}", books.activations());
    // Again: still nothing counted, and the one slot is still free.
    assert_eq!(
        books
            .record_issued_certificate(&on_vm, None)
            .unwrap_err()
            .code(),
        "VM_NOT_ALLOWED"
    );

    let on_hardware = request(&vendor, &license, "desk-1", false);
    books.record_issued_certificate(&on_hardware, None).unwrap();
    let counted = books.activations();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(counted[0].fingerprint, "desk-1");
    assert!(!counted[0].vm);
}

#[test]
fn a_virtual_machine_is_counted_and_recorded_as_one_where_the_license_allows_it() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let license = license(&vendor, false);
    let books = vendor.books(&clock);
    books.add_license(&license).unwrap();

    let on_vm = request(&vendor, &license, "vm-1", true);
    books.record_issued_certificate(&on_vm, None).unwrap();
    let counted = books.activations();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(counted[0].fingerprint, "vm-1");
    assert!(counted[0].vm, "the books keep what the request said");

    // It holds the one slot like any other device.
    let another = request(&vendor, &license, "desk-2", false);
    assert_eq!(
        books
            .record_issued_certificate(&another, None)
            .unwrap_err()
            .code(),
        "ACTIVATION_LIMIT"
    );
}

#[test]
fn a_request_written_before_installs_said_vm_reads_as_not_a_virtual_machine() {
    let old = r#"{"v": 1, "license_id": "lic_desk", "fingerprint": "desk-1",
        "hostname": "desk", "nonce": "5f2a9c0e7d4b1a36", "created_at": "2026-01-01T00:00:00Z"}"#;
    let request = ActivationRequest::from_json_text(old).unwrap();
    assert!(!request.vm);

    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let books = vendor.books(&clock);
    books.add_license(&license(&vendor, true)).unwrap();
    books.record_issued_certificate(&request, None).unwrap();
    assert_eq!(books.activations().len(), 1);

    let not_a_bool = old.replacen("\"v\": 1", "\"v\": 1, \"vm\": \"yes\"", 1);
    let refused = ActivationRequest::from_json_text(&not_a_bool).unwrap_err();
    assert_eq!(refused.code(), "MALFORMED", "{refused}");
    assert!(refused.to_string().contains("vm"), "{refused}");
}

// --- The same through `entitle respond` ----------------------------------

fn entitle(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entitle"))
        .current_dir(dir)
        .env_remove("ENTITLE_STATE")
        .env_remove("ENTITLE_NOW")
        .args(args)
        .args(["--now", T0])
        .output()
        .expect("the entitle binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let out = entitle(dir, &[&["--json"][..], args].concat());
    assert_eq!(
        exit_code(&out),
        0,
        "entitle {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    json_out(&out)
}

/// A request file as an install on device `fingerprint` writes it.
fn request_file(dir: &Path, name: &str, fingerprint: &str, vm: bool) {
    let request = json!({"v": 1, "license_id": "lic_desk", "fingerprint": fingerprint,
        "hostname": fingerprint, "nonce": format!("nonce-{fingerprint}"), "created_at": T0,
        "vm": vm});
    std::fs::write(dir.join(name), request.to_string()).unwrap();
}

#[test]
fn respond_refuses_a_virtual_machine_for_a_prevent_vm_license_and_signs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["keygen", "--out", "vendor"]);
    let spec = json!({"id": "lic_desk", "product": "acme", "prevent_vm": true,
        "activations": {"max": 1, "counted_by": "vendor"}, "features": [{"code": "cad"}]});
    std::fs::write(dir.join("desk.json"), spec.to_string()).unwrap();
    ok(
        dir,
        &[
            "issue",
            "--key",
            "vendor.key",
            "--spec",
            "desk.json",
            "--out",
            "desk.lic",
        ],
    );
    ok(
        dir,
        &[
            "--state",
            "books",
            "init",
            "--pub",
            "vendor.pub",
            "--product",
            "acme",
        ],
    );
    ok(dir, &["--state", "books", "license", "add", "desk.lic"]);

    request_file(dir, "vm.request", "vm-1", true);
    let respond = |request: &str, out: &str| {
        entitle(
            dir,
            &[
                "--json",
                "--state",
                "books",
                "respond",
                "--key",
                "vendor.key",
                "--request",
                request,
                "--out",
                out,
            ],
        )
    };
    let refused = respond("vm.request", "vm.machine");
    assert_eq!(exit_code(&refused), 1);
    let error = &json_out(&refused)["error"];
    assert_eq!(error["code"], "VM_NOT_ALLOWED", "{error}");
    assert!(
        !dir.join("vm.machine").exists(),
        "no certificate is written"
    );
    let listed = ok(dir, &["--state", "books", "activation", "list"]);
    assert_eq!(listed["items"], json!([]), "nothing counted: {listed}");

    // Without --json too: a non-zero exit and the code on stderr.
    let human = entitle(
        dir,
        &[
            "--state",
            "books",
            "respond",
            "--key",
            "vendor.key",
            "--request",
            "vm.request",
        ],
    );
    assert_ne!(exit_code(&human), 0);
    assert!(
        human.stdout.is_empty(),
        "no certificate on stdout: {}",
        String::from_utf8_lossy(&human.stdout)
    );
    let said = String::from_utf8_lossy(&human.stderr);
    assert!(said.contains("VM_NOT_ALLOWED"), "{said}");

    // A request from hardware takes the one slot.
    request_file(dir, "desk.request", "desk-1", false);
    let signed = respond("desk.request", "desk.machine");
    assert_eq!(
        exit_code(&signed),
        0,
        "{}",
        String::from_utf8_lossy(&signed.stdout)
    );
    assert!(dir.join("desk.machine").exists());
    let listed = ok(dir, &["--state", "books", "activation", "list"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["fingerprint"], "desk-1");
    assert_eq!(listed["items"][0]["vm"], false);
}
