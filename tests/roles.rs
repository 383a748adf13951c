//! The install and the vendor's books are two roles, two types, two
//! states. An `Engine` is the install: it has none of the books' methods
//! (`record_issued_certificate`, `accept_receipt`, `ingest_report`); the
//! `compile_fail` examples in `entitle::books` prove that at compile time,
//! since a test cannot call a method that is absent. What runs here is the
//! round trip between the two, each on a store of its own, through the
//! files a person carries: request, certificate, receipt, report.

mod common;

use common::*;
use entitle::books::Books;
use entitle::store::FileStore;
use entitle::token::{armor, TokenType};
use entitle::{Engine, ManualClock, Reason};
use serde_json::json;

fn locked_license(vendor: &Vendor) -> String {
    vendor.license(json!({"id": "lic", "features": [{"code": "cad"}],
        "activations": {"max": 1, "max_transfers": 3, "counted_by": "vendor"}}))
}

fn install_in(vendor: &Vendor, clock: &ManualClock, dir: &std::path::Path, device: &str) -> Engine {
    vendor
        .builder(clock)
        .store(FileStore::create(dir).unwrap())
        .fingerprint(device)
        .virtual_machine(false)
        .build()
        .unwrap()
}

/// The vendor's answer to a request, as `entitle respond` signs it.
fn certificate(
    vendor: &Vendor,
    books: &Books,
    request: &entitle::books::ActivationRequest,
) -> String {
    armor(
        &vendor.sign(
            json!({"v": 1, "license_id": request.license_id,
                   "fingerprint": request.fingerprint,
                   "issued_at": books.now().to_string(),
                   "install_key": request.install_key}),
            TokenType::Machine,
        ),
        TokenType::Machine,
    )
}

#[test]
fn books_answer_a_request_and_a_receipt_frees_the_slot() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let license = locked_license(&vendor);
    let open_books = || {
        vendor
            .books_builder(&clock)
            .store(FileStore::create(dirs[0].path()).unwrap())
            .build()
            .unwrap()
    };

    let desk1 = install_in(&vendor, &clock, dirs[1].path(), "desk-1");
    desk1.add_license(&license).unwrap();
    assert_eq!(desk1.check_feature("cad").reason(), Reason::NotActivated);
    let books = open_books();
    books.add_license(&license).unwrap();

    // desk-1's request is counted in the books, and its certificate
    // activates it.
    let request1 = desk1.activation_request(None).unwrap();
    books.record_issued_certificate(&request1, None).unwrap();
    desk1
        .apply(&certificate(&vendor, &books, &request1))
        .unwrap();
    assert!(desk1.check_feature("cad").allowed());
    assert_eq!(
        books.licenses()[0].activations.unwrap().used,
        1,
        "the books count desk-1"
    );

    // The one slot is taken: desk-2 is refused before anything is signed.
    let desk2 = install_in(&vendor, &clock, dirs[2].path(), "desk-2");
    desk2.add_license(&license).unwrap();
    let request2 = desk2.activation_request(None).unwrap();
    assert_eq!(
        books
            .record_issued_certificate(&request2, None)
            .unwrap_err()
            .code(),
        "ACTIVATION_LIMIT"
    );

    // desk-1 reports its use, then retires offline with a receipt.
    clock.advance(DAY);
    let report = books
        .ingest_report(&desk1.usage_report().unwrap().token)
        .unwrap();
    assert_eq!(report.report.fingerprint, "desk-1");
    let receipt = desk1.deactivate_with_receipt("desk-1", None).unwrap();
    assert_eq!(desk1.check_feature("cad").reason(), Reason::NotActivated);

    // The books, opened again from their own store, take the receipt:
    // the slot is free, and it goes to desk-2.
    drop(books);
    let books = open_books();
    let accepted = books.accept_receipt(&receipt.token).unwrap();
    assert_eq!((accepted.transfers, accepted.max_transfers), (1, Some(3)));
    assert!(books.activations().is_empty(), "desk-1's slot is free");
    books.record_issued_certificate(&request2, None).unwrap();
    desk2
        .apply(&certificate(&vendor, &books, &request2))
        .unwrap();
    assert!(desk2.check_feature("cad").allowed());
    assert_eq!(
        books
            .activations()
            .iter()
            .map(|a| a.fingerprint.as_str())
            .collect::<Vec<_>>(),
        ["desk-2"]
    );
    assert_eq!(
        books.accept_receipt(&receipt.token).unwrap_err().code(),
        "RECEIPT_REPLAYED"
    );

    // Each role kept its own state: the installs their own certificates,
    // the books each device with the install key its receipts and
    // reports are checked against.
    assert!(desk1.activations().is_empty());
    assert_eq!(desk2.activations().len(), 1);
    assert_eq!(books.activations()[0].install_key, request2.install_key);
}

#[test]
fn books_without_a_store_are_refused_naming_the_calls() {
    let err = Books::builder("acme").build().unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let message = err.to_string();
    assert!(message.contains(".store("), "{message}");
    assert!(message.contains(".in_memory()"), "{message}");
}

#[test]
fn books_refuse_another_products_state() {
    let vendor = Vendor::new();
    let clock = clock_at(T0);
    let dir = tempfile::tempdir().unwrap();
    vendor
        .books_builder(&clock)
        .store(FileStore::create(dir.path()).unwrap())
        .build()
        .unwrap();
    let err = Books::builder("other")
        .store(FileStore::open(dir.path()).unwrap())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("belongs to product `acme`"),
        "{err}"
    );
}
