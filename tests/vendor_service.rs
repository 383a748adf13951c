//! The vendor's online service as a library, `entitle::books::online::Service`
//! (feature `server`; the requests and tokens of docs/formats.md), over
//! books in a SQLite file store: activation by key, login or id, the
//! license's and the account's limits, one trial per device, free and
//! revoke seen at the next sync, bad input, and two services racing on one
//! store. Whatever the service grants, an install verifies and grants;
//! whatever it refuses leaves the books exactly as they were (the store is
//! read back and compared).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{clock_at, Vendor, T0};
use entitle::books::online::{Activated, Credential, Issued, NewAccount, Service};
use entitle::books::online::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use entitle::books::Books;
use entitle::license::{certificate_id, LicenseKey};
use entitle::store::{FileStore, Persisted, Store};
use entitle::token::SigningKey;
use entitle::{Engine, ManualClock};
use serde_json::{json, Value};

// ---- fixtures -----------------------------------------------------------

const PASSWORD: &str = "correct horse battery";

/// The vendor's service over books in a directory of their own, on a
/// manual clock.
struct Shop {
    vendor: Vendor,
    clock: ManualClock,
    dir: tempfile::TempDir,
    service: Service,
}

impl Shop {
    fn new() -> Shop {
        let vendor = Vendor::new();
        let clock = clock_at(T0);
        let dir = tempfile::tempdir().unwrap();
        let books = vendor
            .books_builder(&clock)
            .store(FileStore::create(dir.path()).unwrap())
            .build()
            .unwrap();
        // `Vendor::new()` is always the same key (a `SigningKey` is not
        // `Clone`).
        let service = Service::new(books, Vendor::new().key).unwrap();
        Shop {
            vendor,
            clock,
            dir,
            service,
        }
    }

    /// The shop, giving each device a trial of `export`.
    fn with_trials() -> Shop {
        let mut shop = Shop::new();
        shop.service = shop.service.clone().trial_spec(&trial_spec()).unwrap();
        shop
    }

    /// Another service over the same books (another process of the
    /// vendor's, as `entitle serve --books` twice on one directory).
    fn another_service(&self) -> Service {
        let books = self
            .vendor
            .books_builder(&self.clock)
            .store(FileStore::open(self.dir.path()).unwrap())
            .build()
            .unwrap();
        Service::new(books, Vendor::new().key).unwrap()
    }

    /// Everything the store holds, read through a handle of its own.
    fn stored(&self) -> Persisted {
        FileStore::open(self.dir.path()).unwrap().load().unwrap().1
    }

    /// Issues a license of `spec` (the product filled in), with a key.
    fn issue(&self, mut spec: Value) -> Issued {
        spec["product"] = json!("acme");
        self.service.issue(&spec.to_string(), &[]).unwrap()
    }

    /// An install of the product on device `fingerprint`, trusting the vendor.
    fn install(&self, fingerprint: &str) -> Engine {
        self.vendor
            .builder(&self.clock)
            .fingerprint(fingerprint)
            .virtual_machine(false)
            .build()
            .unwrap()
    }

    /// The devices the books count for `license_id` now.
    fn used(&self, license_id: &str) -> u64 {
        let licenses = self.service.books().licenses();
        let license = licenses.iter().find(|l| l.id == license_id).unwrap();
        license.activations.as_ref().unwrap().used
    }
}

fn trial_spec() -> String {
    json!({"product": "acme", "trial": true, "trial_secs": 14 * 86_400,
        "features": [{"code": "export"}]})
    .to_string()
}

/// A license counted by the vendor, of at most `max` devices.
fn counted(max: u32) -> Value {
    json!({"activations": {"max": max, "counted_by": "vendor"}, "features": [{"code": "export"}]})
}

/// An install key no install has (as a new install would have).
fn fresh_install_key() -> String {
    SigningKey::generate().unwrap().public_key().to_base64url()
}

/// What `Engine::activate_online` sends for device `fingerprint` with
/// `install_key`, naming `license_id` (empty: the credential names it).
fn request_for(license_id: &str, fingerprint: &str, install_key: &str) -> String {
    json!({
        "v": 1, "license_id": license_id, "fingerprint": fingerprint, "hostname": "desk",
        "nonce": fresh_install_key(), "created_at": T0, "vm": false, "install_key": install_key,
    })
    .to_string()
}

/// A request naming no license, from device `fingerprint`.
fn request(fingerprint: &str, install_key: &str) -> String {
    request_for("", fingerprint, install_key)
}

/// The request of `install` (its fingerprint and install key).
/// The install key of a sync that asks for no license's token (withdrawn
/// certificates and revocation lists are sent whatever the key).
const NO_INSTALL_KEY: &str = "";

fn request_of(install: &Engine) -> String {
    let key = install.install_key().unwrap().to_base64url();
    request(install.fingerprint().unwrap(), &key)
}

fn key_of(issued: &Issued) -> Credential {
    Credential::Key(issued.key.clone())
}

fn login(email: &str, password: &str) -> Credential {
    Credential::User {
        email: email.into(),
        password: password.into(),
    }
}

/// The code a refusal carries.
fn code<T: std::fmt::Debug>(result: entitle::Result<T>) -> &'static str {
    result.unwrap_err().code()
}

/// Installs what the service answered into `install`.
fn install_answer(install: &Engine, answer: &Activated) {
    install.add_license(&answer.license).unwrap();
    install.apply(&answer.certificate).unwrap();
}

// ---- activation by key --------------------------------------------------

#[test]
fn a_key_typed_in_lower_case_with_spaces_activates_and_the_install_grants() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let install = shop.install("desk-1");
    assert!(!install.check_feature("export").allowed());

    let typed = issued.key.to_string().to_lowercase().replace('-', " ");
    let credential = Credential::Key(LicenseKey::parse(&typed).unwrap());
    let answer = shop
        .service
        .activate(&request_of(&install), &credential, None)
        .unwrap();

    assert!(answer.created);
    assert_eq!(answer.license_id, issued.id);
    install_answer(&install, &answer);
    assert!(install.check_feature("export").allowed());
    assert_eq!(shop.used(&issued.id), 1);
}

#[test]
fn the_same_device_again_is_counted_once_with_a_fresh_certificate() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let install = shop.install("desk-1");
    let first = shop
        .service
        .activate(&request_of(&install), &key_of(&issued), None)
        .unwrap();
    let activations = shop.service.books().activations();

    shop.clock.advance(60);
    let again = shop
        .service
        .activate(&request_of(&install), &key_of(&issued), None)
        .unwrap();

    assert!(!again.created);
    assert_ne!(again.certificate, first.certificate, "a fresh certificate");
    assert_eq!(shop.used(&issued.id), 1);
    assert_eq!(shop.service.books().activations().len(), activations.len());
    install_answer(&install, &again);
    assert!(install.check_feature("export").allowed());
}

#[test]
fn a_key_for_another_license_than_the_request_names_is_refused() {
    let shop = Shop::new();
    let one = shop.issue(counted(2));
    let other = shop.issue(counted(2));
    let before = shop.stored();
    let asked = request_for(&other.id, "desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&asked, &key_of(&one), None)),
        "INVALID_ARGUMENT"
    );
    assert_eq!(shop.stored(), before);
}

// ---- the license's limit ------------------------------------------------

#[test]
fn a_device_over_the_licenses_max_is_refused_and_nothing_is_counted() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    for device in ["desk-1", "desk-2"] {
        let asked = request(device, &fresh_install_key());
        shop.service
            .activate(&asked, &key_of(&issued), None)
            .unwrap();
    }
    let before = shop.stored();
    let activations = shop.service.books().activations();

    let third = request("desk-3", &fresh_install_key());
    let refused = shop.service.activate(&third, &key_of(&issued), None);

    assert_eq!(code(refused), "ACTIVATION_LIMIT");
    assert_eq!(shop.stored(), before, "nothing changed in the books");
    assert_eq!(shop.service.books().activations(), activations);
    assert_eq!(shop.used(&issued.id), 2);
}

#[test]
fn a_known_fingerprint_under_another_install_key_is_another_device() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let activate = |install_key: &str| {
        let asked = request("desk-1", install_key);
        shop.service.activate(&asked, &key_of(&issued), None)
    };
    assert!(activate(&fresh_install_key()).unwrap().created);

    // A copy of the install (or one claiming its fingerprint) takes a
    // slot of its own...
    assert!(activate(&fresh_install_key()).unwrap().created);
    assert_eq!(shop.used(&issued.id), 2);

    // ...and a third one is over the limit.
    let before = shop.stored();
    assert_eq!(code(activate(&fresh_install_key())), "ACTIVATION_LIMIT");
    assert_eq!(shop.stored(), before);
}

// ---- credentials --------------------------------------------------------

#[test]
fn a_key_no_license_has_is_unauthorized_and_counts_nothing() {
    let shop = Shop::new();
    shop.issue(counted(2));
    let before = shop.stored();
    let unknown = Credential::Key(LicenseKey::generate().unwrap());
    let asked = request("desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&asked, &unknown, None)),
        "UNAUTHORIZED"
    );
    assert_eq!(shop.stored(), before);
}

#[test]
fn a_wrong_password_and_an_unknown_email_are_both_unauthorized() {
    let shop = Shop::new();
    let account = NewAccount::new("ada@example.com").password(PASSWORD);
    shop.service.add_account(account).unwrap();
    let spec = json!({"product": "acme", "activations": {"max": 2, "counted_by": "vendor"}});
    shop.service
        .issue(&spec.to_string(), &["ada@example.com"])
        .unwrap();
    let before = shop.stored();
    let asked = request("desk-1", &fresh_install_key());

    let wrong = login("ada@example.com", "correct horse battery!");
    let unknown = login("bob@example.com", PASSWORD);
    let huge = login("ada@example.com", &"x".repeat(MAX_PASSWORD_BYTES + 1));
    for credential in [wrong, unknown, huge] {
        assert_eq!(
            code(shop.service.activate(&asked, &credential, None)),
            "UNAUTHORIZED",
            "{credential:?}"
        );
    }
    assert_eq!(
        code(shop.service.user_licenses("bob@example.com", PASSWORD)),
        "UNAUTHORIZED"
    );
    assert_eq!(shop.stored(), before);
}

#[test]
fn a_license_with_a_key_or_users_does_not_activate_by_its_id_alone() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let before = shop.stored();
    let asked = request_for(&issued.id, "desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&asked, &Credential::LicenseId, None)),
        "UNAUTHORIZED"
    );
    assert_eq!(shop.stored(), before);
}

#[test]
fn a_license_added_as_a_file_activates_by_its_id_alone() {
    let shop = Shop::new();
    let license = shop.vendor.license(json!({"id": "lic_file",
        "activations": {"max": 1, "counted_by": "vendor"}, "features": [{"code": "export"}]}));
    shop.service.books().add_license(&license).unwrap();
    let install = shop.install("desk-1");
    let key = install.install_key().unwrap().to_base64url();

    let asked = request_for("lic_file", "desk-1", &key);
    let answer = shop
        .service
        .activate(&asked, &Credential::LicenseId, None)
        .unwrap();

    install_answer(&install, &answer);
    assert!(install.check_feature("export").allowed());
    let unnamed = request("desk-2", &fresh_install_key());
    assert_eq!(
        code(
            shop.service
                .activate(&unnamed, &Credential::LicenseId, None)
        ),
        "INVALID_ARGUMENT"
    );
}

// ---- virtual machines ---------------------------------------------------

#[test]
fn a_prevent_vm_license_refuses_a_virtual_machine_before_counting() {
    let shop = Shop::new();
    let mut spec = counted(2);
    spec["prevent_vm"] = json!(true);
    let issued = shop.issue(spec);
    let before = shop.stored();

    let mut asked: Value = serde_json::from_str(&request("vm-1", &fresh_install_key())).unwrap();
    asked["vm"] = json!(true);
    let refused = shop
        .service
        .activate(&asked.to_string(), &key_of(&issued), None);

    assert_eq!(code(refused), "VM_NOT_ALLOWED");
    assert_eq!(shop.stored(), before);
    // The same device, not a virtual machine, is let in.
    asked["vm"] = json!(false);
    let answer = shop
        .service
        .activate(&asked.to_string(), &key_of(&issued), None);
    assert!(answer.unwrap().created);
}

// ---- user logins --------------------------------------------------------

#[test]
fn an_accounts_password_is_kept_only_as_an_argon2id_hash() {
    let shop = Shop::new();
    let account = shop
        .service
        .add_account(NewAccount::new("ada@example.com").password(PASSWORD))
        .unwrap();
    assert!(account.can_log_in);

    let stored = shop.stored();
    let records: Vec<_> = stored
        .books
        .iter()
        .filter(|r| r.kind == "account")
        .collect();
    assert_eq!(records.len(), 1);
    assert!(!records[0].value.contains(PASSWORD), "{}", records[0].value);
    assert!(
        records[0].value.contains("$argon2id$"),
        "{}",
        records[0].value
    );
    assert_eq!(shop.service.accounts().unwrap(), [account]);
}

#[test]
fn a_login_activates_the_license_assigned_to_it_whatever_the_emails_case() {
    let shop = Shop::new();
    shop.service
        .add_account(NewAccount::new("Ada@Example.com").password(PASSWORD))
        .unwrap();
    shop.issue(counted(5)); // another customer's
    let issued = shop.issue(counted(5));
    shop.service.assign(&issued.id, "ADA@example.COM").unwrap();
    let install = shop.install("desk-1");

    let answer = shop
        .service
        .activate(
            &request_of(&install),
            &login("ada@EXAMPLE.com", PASSWORD),
            None,
        )
        .unwrap();

    assert_eq!(answer.license_id, issued.id);
    install_answer(&install, &answer);
    assert!(install.check_feature("export").allowed());
}

#[test]
fn an_accounts_max_activations_binds_over_all_its_licenses() {
    let shop = Shop::new();
    let email = "ada@example.com";
    let account = NewAccount::new(email).password(PASSWORD).max_activations(2);
    shop.service.add_account(account).unwrap();
    let first = shop.issue(counted(5));
    let second = shop.issue(counted(5));
    shop.service.assign(&first.id, email).unwrap();
    shop.service.assign(&second.id, email).unwrap();
    let ada = login(email, PASSWORD);
    let desk_1 = fresh_install_key();

    let on = |license: &Issued, device: &str, install_key: &str| {
        let asked = request_for(&license.id, device, install_key);
        shop.service.activate(&asked, &ada, None)
    };
    assert!(on(&first, "desk-1", &desk_1).unwrap().created);
    assert!(on(&second, "desk-2", &fresh_install_key()).unwrap().created);
    let before = shop.stored();

    assert_eq!(
        code(on(&first, "desk-3", &fresh_install_key())),
        "ACTIVATION_LIMIT"
    );
    assert_eq!(shop.stored(), before);
    // A device the account has already is no new one.
    assert!(!on(&first, "desk-1", &desk_1).unwrap().created);

    let licenses = shop
        .service
        .user_licenses("ADA@example.com", PASSWORD)
        .unwrap();
    let mut ids: Vec<&str> = licenses.iter().map(|l| l.license.id.as_str()).collect();
    ids.sort_unstable();
    let mut issued = vec![first.id.as_str(), second.id.as_str()];
    issued.sort_unstable();
    assert_eq!(ids, issued);
    assert!(licenses.iter().all(|l| l.total_activations == 2));
    assert!(licenses.iter().all(|l| l.user.email == email));
}

#[test]
fn an_accounts_max_counts_a_known_fingerprint_under_another_install_key_as_another_device() {
    let shop = Shop::new();
    let email = "ada@example.com";
    let account = NewAccount::new(email).password(PASSWORD).max_activations(1);
    shop.service.add_account(account).unwrap();
    let issued = shop.issue(counted(5));
    shop.service.assign(&issued.id, email).unwrap();
    let ada = login(email, PASSWORD);
    let first = request("desk-1", &fresh_install_key());
    assert!(shop.service.activate(&first, &ada, None).unwrap().created);
    let before = shop.stored();

    // As the license counts it: another install claiming desk-1.
    let copy = request("desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&copy, &ada, None)),
        "ACTIVATION_LIMIT"
    );
    assert_eq!(shop.stored(), before);
    // The first install again is the device the account has.
    assert!(!shop.service.activate(&first, &ada, None).unwrap().created);
}

#[test]
fn freeing_a_users_device_gives_their_account_the_place_back() {
    let shop = Shop::new();
    let email = "ada@example.com";
    let account = NewAccount::new(email).password(PASSWORD).max_activations(1);
    shop.service.add_account(account).unwrap();
    let issued = shop.issue(counted(5));
    shop.service.assign(&issued.id, email).unwrap();
    let ada = login(email, PASSWORD);
    let desk_2 = request("desk-2", &fresh_install_key());
    shop.service
        .activate(&request("desk-1", &fresh_install_key()), &ada, None)
        .unwrap();
    assert_eq!(
        code(shop.service.activate(&desk_2, &ada, None)),
        "ACTIVATION_LIMIT"
    );

    shop.service.free(&issued.id, "desk-1").unwrap();

    assert!(shop.service.activate(&desk_2, &ada, None).unwrap().created);
    let licenses = shop.service.user_licenses(email, PASSWORD).unwrap();
    assert_eq!(licenses[0].total_activations, 1);
}

#[test]
fn a_password_shorter_than_the_minimum_is_refused() {
    let shop = Shop::new();
    let short = "x".repeat(MIN_PASSWORD_CHARS - 1);
    let refused = shop
        .service
        .add_account(NewAccount::new("ada@example.com").password(short));
    assert_eq!(code(refused), "INVALID_ARGUMENT");
    assert!(shop.service.accounts().unwrap().is_empty());

    let long_enough = "x".repeat(MIN_PASSWORD_CHARS);
    let account = NewAccount::new("ada@example.com").password(long_enough);
    assert!(shop.service.add_account(account).is_ok());
}

#[test]
fn an_account_is_opened_once_and_assigned_only_what_exists() {
    let shop = Shop::new();
    let account = NewAccount::new("ada@example.com").password(PASSWORD);
    shop.service.add_account(account.clone()).unwrap();
    let again = NewAccount::new("ADA@example.com").password("another password");
    assert_eq!(code(shop.service.add_account(again)), "INVALID_ARGUMENT");
    let issued = shop.issue(counted(1));
    assert_eq!(
        code(shop.service.assign(&issued.id, "bob@example.com")),
        "USER_NOT_FOUND"
    );
    assert_eq!(
        code(shop.service.assign("lic_nope", "ada@example.com")),
        "LICENSE_NOT_FOUND"
    );
    // The account was not replaced: its password still logs in.
    assert!(shop
        .service
        .user_licenses("ada@example.com", PASSWORD)
        .is_ok());
}

// ---- trials -------------------------------------------------------------

#[test]
fn a_trial_is_node_locked_to_the_requests_device_and_grants_there() {
    let shop = Shop::with_trials();
    let install = shop.install("desk-1");
    let trial = shop.service.start_trial(&request_of(&install)).unwrap();
    install_answer(&install, &trial);
    assert!(install.check_feature("export").allowed());

    // Carried to another machine, the license and its certificate grant
    // nothing.
    let elsewhere = shop.install("desk-2");
    elsewhere.add_license(&trial.license).unwrap();
    assert_eq!(
        code(elsewhere.apply(&trial.certificate)),
        "FINGERPRINT_MISMATCH"
    );
    assert!(!elsewhere.check_feature("export").allowed());
}

#[test]
fn a_second_trial_for_the_same_device_is_trial_used_even_from_a_fresh_install() {
    let shop = Shop::with_trials();
    shop.service
        .start_trial(&request("desk-1", &fresh_install_key()))
        .unwrap();
    let before = shop.stored();

    // The state deleted: a new install key, the same machine.
    let again = shop
        .service
        .start_trial(&request("desk-1", &fresh_install_key()));

    assert_eq!(code(again), "TRIAL_USED");
    assert_eq!(shop.stored(), before);
    assert!(shop
        .service
        .start_trial(&request("desk-2", &fresh_install_key()))
        .is_ok());
}

#[test]
fn a_prevent_vm_trial_is_refused_to_a_virtual_machine_without_spending_it() {
    let shop = Shop::new();
    let spec = json!({"product": "acme", "trial": true, "trial_secs": 86_400,
        "prevent_vm": true, "features": [{"code": "export"}]});
    let service = shop.service.clone().trial_spec(&spec.to_string()).unwrap();
    let before = shop.stored();
    let mut asked: Value = serde_json::from_str(&request("vm-1", &fresh_install_key())).unwrap();
    asked["vm"] = json!(true);

    assert_eq!(
        code(service.start_trial(&asked.to_string())),
        "VM_NOT_ALLOWED"
    );
    assert_eq!(shop.stored(), before);
    // The machine, no longer a virtual one, still has its trial.
    asked["vm"] = json!(false);
    assert!(service.start_trial(&asked.to_string()).is_ok());
}

#[test]
fn a_service_without_a_trial_spec_gives_no_trial() {
    let shop = Shop::new();
    let before = shop.stored();
    let asked = request("desk-1", &fresh_install_key());
    assert_eq!(code(shop.service.start_trial(&asked)), "INVALID_ARGUMENT");
    assert_eq!(shop.stored(), before);
}

#[test]
fn a_trial_spec_must_be_a_trial_of_this_product() {
    let shop = Shop::new();
    let service = shop.service.clone();
    let not_a_trial = json!({"product": "acme", "features": [{"code": "export"}]});
    let other = json!({"product": "other", "trial": true, "trial_secs": 60});
    assert_eq!(
        code(service.clone().trial_spec(&not_a_trial.to_string())),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(service.trial_spec(&other.to_string())),
        "PRODUCT_MISMATCH"
    );
}

// ---- free, then sync ----------------------------------------------------

#[test]
fn a_freed_device_learns_at_its_sync_that_its_certificates_are_withdrawn() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let desk = shop.install("desk-1");
    let first = shop
        .service
        .activate(&request_of(&desk), &key_of(&issued), None)
        .unwrap();
    shop.clock.advance(60);
    let second = shop
        .service
        .activate(&request_of(&desk), &key_of(&issued), None)
        .unwrap();
    let other = request("desk-2", &fresh_install_key());
    shop.service
        .activate(&other, &key_of(&issued), None)
        .unwrap();

    let mut freed = shop.service.free(&issued.id, "desk-1").unwrap();

    let mut expected = vec![
        certificate_id(&first.certificate),
        certificate_id(&second.certificate),
    ];
    freed.sort();
    expected.sort();
    assert_eq!(freed, expected);
    let licenses = [issued.id.clone()];
    let mut withdrawn = shop
        .service
        .sync(&licenses, "desk-1", NO_INSTALL_KEY)
        .unwrap()
        .withdrawn;
    withdrawn.sort();
    assert_eq!(withdrawn, expected);
    let elsewhere = shop
        .service
        .sync(&licenses, "desk-2", NO_INSTALL_KEY)
        .unwrap()
        .withdrawn;
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    // Named without the license, the device learns nothing of it.
    assert!(shop
        .service
        .sync(&[], "desk-1", NO_INSTALL_KEY)
        .unwrap()
        .withdrawn
        .is_empty());
}

#[test]
fn freeing_a_device_frees_its_slot_and_counts_a_transfer() {
    let shop = Shop::new();
    let mut spec = counted(1);
    spec["activations"]["max_transfers"] = json!(1);
    let issued = shop.issue(spec);
    shop.service
        .activate(
            &request("desk-1", &fresh_install_key()),
            &key_of(&issued),
            None,
        )
        .unwrap();
    let desk_2 = request("desk-2", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&desk_2, &key_of(&issued), None)),
        "ACTIVATION_LIMIT"
    );

    shop.service.free(&issued.id, "desk-1").unwrap();

    assert!(
        shop.service
            .activate(&desk_2, &key_of(&issued), None)
            .unwrap()
            .created
    );
    let licenses = shop.service.books().licenses();
    assert_eq!(licenses[0].activations.as_ref().unwrap().transfers, 1);
    // The one transfer is spent: desk-2 stays.
    let before = shop.stored();
    assert_eq!(
        code(shop.service.free(&issued.id, "desk-2")),
        "TRANSFER_LIMIT"
    );
    assert_eq!(shop.stored(), before);
}

#[test]
fn freeing_a_device_never_activated_is_not_activated() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let before = shop.stored();
    assert_eq!(
        code(shop.service.free(&issued.id, "desk-1")),
        "NOT_ACTIVATED"
    );
    assert_eq!(shop.stored(), before);
}

// ---- revoke, then sync --------------------------------------------------

#[test]
fn a_revoked_license_stops_granting_at_the_installs_sync() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    let install = shop.install("desk-1");
    let answer = shop
        .service
        .activate(&request_of(&install), &key_of(&issued), None)
        .unwrap();
    install_answer(&install, &answer);
    assert!(install.check_feature("export").allowed());

    let list = shop.service.revoke(&issued.id).unwrap();
    let synced = shop
        .service
        .sync(
            std::slice::from_ref(&issued.id),
            "desk-1",
            &install.install_key().unwrap().to_base64url(),
        )
        .unwrap();

    assert_eq!(synced.revocations.as_deref(), Some(list.as_str()));
    install
        .apply(synced.revocations.as_deref().unwrap())
        .unwrap();
    let decision = install.check_feature("export");
    assert!(!decision.allowed());
    assert_eq!(decision.reason().code(), "REVOKED");
}

#[test]
fn a_revoked_license_refuses_activation() {
    let shop = Shop::new();
    let issued = shop.issue(counted(2));
    shop.service.revoke(&issued.id).unwrap();
    let before = shop.stored();
    let asked = request("desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&asked, &key_of(&issued), None)),
        "LICENSE_REVOKED"
    );
    assert_eq!(shop.stored(), before);
    assert_eq!(code(shop.service.revoke("lic_nope")), "LICENSE_NOT_FOUND");
}

#[test]
fn the_sync_of_reopened_books_carries_the_last_of_several_revocations_in_one_second() {
    let shop = Shop::new();
    let licenses: Vec<Issued> = (0..6).map(|_| shop.issue(counted(2))).collect();
    // Revoked one after the other within the same second, as a vendor
    // revoking a customer's licenses does: each list names all before it.
    for license in &licenses {
        shop.service.revoke(&license.id).unwrap();
    }
    // Another process of the vendor's reads the lists back from the store.
    let reopened = shop.another_service();

    for service in [&shop.service, &reopened] {
        let synced = service
            .sync(&[licenses[0].id.clone()], "desk-1", NO_INSTALL_KEY)
            .unwrap();
        let install = shop.install("desk-1");
        let list = synced.revocations.expect("a revocation list");
        let entitle::engine::Applied::Revocations { ids } = install.apply(&list).unwrap() else {
            panic!("not a revocation list");
        };
        for license in &licenses {
            assert!(ids.contains(&license.id), "{} not in {ids:?}", license.id);
        }
    }
}

// ---- bad input ----------------------------------------------------------

#[test]
fn malformed_requests_are_refused_with_a_stable_code_and_count_nothing() {
    let shop = Shop::with_trials();
    let issued = shop.issue(counted(2));
    let before = shop.stored();
    let good: Value = serde_json::from_str(&request("desk-1", &fresh_install_key())).unwrap();
    let edited = |field: &str, value: Value| {
        let mut request = good.clone();
        request[field] = value;
        request.to_string()
    };
    let bad = [
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        "{\"v\": 1}".into(),
        edited("v", json!(2)),
        edited("fingerprint", json!("")),
        edited("fingerprint", json!(7)),
        // A newline would reach into the books' own keys.
        edited("fingerprint", json!("desk-1\nlic_x")),
        edited("hostname", json!("a\u{0}b")),
        edited("install_key", json!("not a key")),
        edited("created_at", json!("yesterday")),
        format!("{{\"v\": 1, \"v\": 1, {}", &good.to_string()[1..]),
    ];
    for text in &bad {
        let activated = shop.service.activate(text, &key_of(&issued), None);
        assert_eq!(code(activated), "MALFORMED", "{text:?}");
        assert_eq!(
            code(shop.service.start_trial(text)),
            "MALFORMED",
            "{text:?}"
        );
    }
    assert_eq!(shop.stored(), before);
}

#[test]
fn a_request_over_16_kib_is_too_large() {
    let shop = Shop::with_trials();
    let issued = shop.issue(counted(2));
    let before = shop.stored();
    let request = request("desk-1", &fresh_install_key());
    let padded = format!("{request}{}", " ".repeat(16 * 1024));
    assert_eq!(
        code(shop.service.activate(&padded, &key_of(&issued), None)),
        "TOO_LARGE"
    );
    assert_eq!(code(shop.service.start_trial(&padded)), "TOO_LARGE");
    assert_eq!(shop.stored(), before);
}

#[test]
fn a_request_for_another_products_license_is_not_found_here() {
    let shop = Shop::new();
    shop.issue(counted(2));
    // The same vendor sells another product, with books of its own.
    let other_books = Books::builder("other")
        .in_memory()
        .trust(shop.vendor.key.public_key().clone())
        .build()
        .unwrap();
    let other = Service::new(other_books, Vendor::new().key).unwrap();
    let spec = json!({"product": "other", "activations": {"max": 2, "counted_by": "vendor"}});
    let theirs = other.issue(&spec.to_string(), &[]).unwrap();
    let before = shop.stored();

    let asked = request_for(&theirs.id, "desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&asked, &Credential::LicenseId, None)),
        "LICENSE_NOT_FOUND"
    );
    let unnamed = request("desk-1", &fresh_install_key());
    assert_eq!(
        code(shop.service.activate(&unnamed, &key_of(&theirs), None)),
        "UNAUTHORIZED"
    );
    assert_eq!(shop.stored(), before);
}

#[test]
fn issuing_a_spec_for_another_product_or_with_unknown_fields_is_refused() {
    let shop = Shop::new();
    let before = shop.stored();
    let other = json!({"product": "other", "features": [{"code": "export"}]});
    assert_eq!(
        code(shop.service.issue(&other.to_string(), &[])),
        "PRODUCT_MISMATCH"
    );
    let unknown = json!({"product": "acme", "activation": {"max": 2}});
    assert_eq!(
        code(shop.service.issue(&unknown.to_string(), &[])),
        "MALFORMED"
    );
    assert_eq!(code(shop.service.issue("{", &[])), "MALFORMED");
    let spec = json!({"product": "acme"}).to_string();
    assert_eq!(
        code(shop.service.issue(&spec, &["nobody@example.com"])),
        "USER_NOT_FOUND"
    );
    assert_eq!(shop.stored(), before);
    assert!(shop.service.books().licenses().is_empty());
}

// ---- two services over one store ----------------------------------------

#[test]
fn two_services_over_one_file_store_count_exactly_the_licenses_max() {
    let shop = Shop::new();
    let issued = shop.issue(counted(5));
    let services = [shop.service.clone(), shop.another_service()];
    let (granted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));

    std::thread::scope(|s| {
        for thread in 0..8 {
            let service = &services[thread % 2];
            let (issued, granted, refused) = (&issued, &granted, &refused);
            s.spawn(move || {
                for device in (thread..20).step_by(8) {
                    let asked = request(&format!("desk-{device}"), &fresh_install_key());
                    match service.activate(&asked, &key_of(issued), None) {
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
    let reopened = shop.another_service();
    assert_eq!(reopened.books().activations().len(), 5);
    let licenses = reopened.books().licenses();
    assert_eq!(licenses[0].activations.as_ref().unwrap().used, 5);
}

#[test]
fn two_services_over_one_file_store_give_one_device_one_trial() {
    let shop = Shop::with_trials();
    let second = shop.another_service().trial_spec(&trial_spec()).unwrap();
    let services = [shop.service.clone(), second];
    let granted = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for thread in 0..8 {
            let (service, granted) = (&services[thread % 2], &granted);
            s.spawn(move || {
                let asked = request("desk-1", &fresh_install_key());
                match service.start_trial(&asked) {
                    Ok(_) => {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => assert_eq!(e.code(), "TRIAL_USED", "{e}"),
                }
            });
        }
    });

    assert_eq!(granted.load(Ordering::Relaxed), 1);
    let trials = shop
        .stored()
        .books
        .into_iter()
        .filter(|r| r.kind == "trial");
    assert_eq!(trials.count(), 1);
}

#[test]
fn licenses_revoked_at_once_by_two_services_are_all_in_the_list_synced() {
    let shop = Shop::new();
    let licenses: Vec<Issued> = (0..10).map(|_| shop.issue(counted(2))).collect();
    let services = [shop.service.clone(), shop.another_service()];

    std::thread::scope(|s| {
        for (n, service) in services.iter().enumerate() {
            let licenses = &licenses;
            s.spawn(move || {
                for license in licenses.iter().skip(n).step_by(2) {
                    service.revoke(&license.id).unwrap();
                }
            });
        }
    });

    for service in &services {
        let list = service
            .sync(&[], "desk-1", NO_INSTALL_KEY)
            .unwrap()
            .revocations
            .unwrap();
        let install = shop.install("desk-1");
        let entitle::engine::Applied::Revocations { ids } = install.apply(&list).unwrap() else {
            panic!("not a revocation list");
        };
        for license in &licenses {
            assert!(ids.contains(&license.id), "{} not in {ids:?}", license.id);
        }
    }
}
