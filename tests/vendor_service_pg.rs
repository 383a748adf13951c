//! The vendor's online service over PostgreSQL
//! (docs/semantics.md#durability-and-sharing): two services on one
//! namespace, as two `entitle serve --books` processes, count exactly
//! together. Against a real server (`tests/pg_common/`), never a mock.

mod common;
mod pg_common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{clock_at, Vendor, T0};
use entitle::books::online::Service;
use entitle::store::PgStore;
use entitle::token::SigningKey;
use serde_json::json;

/// A service over the books in `namespace` on the test server.
fn service_on(namespace: &str) -> Service {
    let vendor = Vendor::new();
    let books = vendor
        .books_builder(&clock_at(T0))
        .store(PgStore::open(pg_common::server_url(), namespace).unwrap())
        .build()
        .unwrap();
    Service::new(books, vendor.key).unwrap()
}

/// Two services over one fresh namespace.
fn two_services() -> [Service; 2] {
    let namespace = pg_common::created_namespace("vendor-service");
    [service_on(&namespace), service_on(&namespace)]
}

/// A request naming no license, from device `fingerprint` with an
/// install key of its own.
fn request(fingerprint: &str) -> String {
    let install_key = SigningKey::generate().unwrap().public_key().to_base64url();
    json!({
        "v": 1, "license_id": "", "fingerprint": fingerprint, "hostname": "desk",
        "nonce": install_key, "created_at": T0, "vm": false, "install_key": install_key,
    })
    .to_string()
}

#[test]
fn two_services_on_one_namespace_count_exactly_the_licenses_max() {
    let services = two_services();
    let spec = json!({"product": "acme", "activations": {"max": 5, "counted_by": "vendor"}});
    let issued = services[0].issue(&spec.to_string(), &[]).unwrap();
    let key = entitle::books::online::Credential::Key(issued.key.clone());
    let (granted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));

    std::thread::scope(|s| {
        for thread in 0..8 {
            let service = &services[thread % 2];
            let (key, granted, refused) = (&key, &granted, &refused);
            s.spawn(move || {
                for device in (thread..20).step_by(8) {
                    match service.activate(&request(&format!("desk-{device}")), key, None) {
                        Ok(answer) => {
                            assert!(answer.created);
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert_eq!(e.code(), "ACTIVATION_LIMIT", "{e}");
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });

    assert_eq!(granted.load(Ordering::Relaxed), 5);
    assert_eq!(refused.load(Ordering::Relaxed), 15);
    for service in &services {
        service.books().refresh().unwrap();
        assert_eq!(service.books().activations().len(), 5);
        let licenses = service.books().licenses();
        assert_eq!(licenses[0].activations.as_ref().unwrap().used, 5);
    }
}

#[test]
fn two_services_on_one_namespace_give_one_device_one_trial() {
    let spec = json!({"product": "acme", "trial": true, "trial_secs": 86_400,
        "features": [{"code": "export"}]})
    .to_string();
    let services = two_services().map(|s| s.trial_spec(&spec).unwrap());
    let granted = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for thread in 0..8 {
            let (service, granted) = (&services[thread % 2], &granted);
            s.spawn(move || match service.start_trial(&request("desk-1")) {
                Ok(_) => {
                    granted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => assert_eq!(e.code(), "TRIAL_USED", "{e}"),
            });
        }
    });

    assert_eq!(granted.load(Ordering::Relaxed), 1);
    services[1].books().refresh().unwrap();
    let trials: Vec<_> = services[1]
        .books()
        .licenses()
        .into_iter()
        .filter(|l| l.trial)
        .collect();
    assert_eq!(trials.len(), 1, "one trial license in the books");
}

#[test]
fn licenses_two_services_revoke_at_once_are_all_in_the_list_either_syncs() {
    let services = two_services();
    let spec = json!({"product": "acme", "activations": {"max": 5, "counted_by": "vendor"}});
    let issued: Vec<_> = (0..8)
        .map(|_| services[0].issue(&spec.to_string(), &[]).unwrap())
        .collect();

    std::thread::scope(|s| {
        for (n, service) in services.iter().enumerate() {
            let issued = &issued;
            s.spawn(move || {
                for license in issued.iter().skip(n).step_by(2) {
                    service.revoke(&license.id).unwrap();
                }
            });
        }
    });

    for service in &services {
        let list = service.sync(&[], "desk-1", "").unwrap().revocations;
        let install = Vendor::new().builder(&clock_at(T0)).build().unwrap();
        let applied = install.apply(&list.expect("a revocation list")).unwrap();
        let entitle::engine::Applied::Revocations { ids } = applied else {
            panic!("not a revocation list");
        };
        for license in &issued {
            assert!(ids.contains(&license.id), "{} not in {ids:?}", license.id);
        }
    }
}
