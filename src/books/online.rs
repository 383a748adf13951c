//! The vendor's online service over its books (docs/http.md#the-vendors-service):
//! licenses issued with a key a person can type, activations counted
//! across all of a customer's machines as they happen, user accounts
//! with logins, one trial per device, deactivation, and sync.
//!
//! [`Service`] is the whole of it as a library; `entitle serve --books`
//! is an HTTP shell around one. Everything that grants is a token the
//! vendor key signs here and the install verifies like any file, so a
//! fake server grants nothing an install accepts.
//!
//! Every decision that counts is taken inside one mutation of the books
//! (their writer lock, on the latest committed state): two services over
//! one PostgreSQL namespace count exactly. Only a password is checked
//! outside it, against the account as last read, since argon2id is slow
//! on purpose; the account is then looked up again inside.
//!
//! ```
//! use entitle::books::online::{Credential, Service};
//! use entitle::books::Books;
//! use entitle::token::SigningKey;
//! use entitle::Engine;
//!
//! let vendor = SigningKey::generate()?;
//! let public = vendor.public_key().clone();
//! let books = Books::builder("acme-cad").in_memory().trust(public.clone()).build()?;
//! let service = Service::new(books, vendor)?;
//! let issued = service.issue(
//!     r#"{"product": "acme-cad", "activations": {"max": 2, "counted_by": "vendor"},
//!         "features": [{"code": "export"}]}"#,
//!     &[],
//! )?;
//!
//! // The customer types the key on a machine.
//! let install = Engine::builder("acme-cad").in_memory()
//!     .trust(public)
//!     .fingerprint("desk-1")
//!     .virtual_machine(false)
//!     .build()?;
//! // What `Engine::activate_online` sends: a request naming no license yet.
//! let request = serde_json::json!({
//!     "v": 1, "license_id": "", "fingerprint": "desk-1", "hostname": "desk",
//!     "nonce": "n-1", "created_at": "2026-01-01T00:00:00Z", "vm": false,
//!     "install_key": install.install_key().unwrap().to_base64url(),
//! }).to_string();
//! let typed = issued.key.to_string().to_lowercase();
//! let answer = service.activate(&request, &Credential::Key(typed.parse()?), None)?;
//! install.add_license(&answer.license)?;
//! install.apply(&answer.certificate)?;
//! assert!(install.check_feature("export").allowed());
//! assert!(answer.created);
//! # Ok::<(), entitle::Error>(())
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::Books;
use crate::clock::Timestamp;
use crate::engine::devices::{plan_free, plan_record_certificate};
use crate::engine::licenses::{plan_add, plan_revocations, still_trusted};
use crate::engine::state::State;
use crate::engine::ActivationRequest;
use crate::engine::{ActivationInfo, LicenseInfo};
use crate::error::{Error, Result};
use crate::license::{
    certificate_id, IssueWarning, License, LicenseKey, LicenseUsage, RevocationList,
    VerifiedLicense,
};
use crate::store::{BooksRecord, Change, SignedKind};
use crate::token::{self, SigningKey, TokenType};

/// The kinds of record the service keeps in its books
/// ([`BooksRecord::kind`]).
mod kind {
    /// A license key's SHA-256 (hex) → the license id.
    pub const KEY: &str = "key";
    /// A license id → nothing: the license has a key (so its id alone
    /// activates or fetches nothing).
    pub const KEYED: &str = "keyed";
    /// An account's email (lower case) → [`Account`](super::StoredAccount) as JSON.
    pub const ACCOUNT: &str = "account";
    /// `license_id \n email` → nothing: the license is assigned to the
    /// account.
    pub const ASSIGNED: &str = "assigned";
    /// `license_id \n device` → the account email that activated it; the
    /// device as the books count it (its fingerprint, or the key they keep
    /// a second install claiming that fingerprint under).
    pub const ACTIVATED_BY: &str = "activated_by";
    /// `license_id \n fingerprint` → the ids of the certificates signed for
    /// the device, as a JSON array.
    pub const CERTIFICATES: &str = "certificates";
    /// A certificate id → `license_id \n fingerprint`: the vendor freed
    /// the device's slot, and its install learns so at its next sync.
    pub const WITHDRAWN: &str = "withdrawn";
    /// A device's fingerprint → the id of the trial license it was given.
    pub const TRIAL: &str = "trial";
}

/// The largest activation request the service reads (as the offline one).
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The longest password taken: argon2id's cost grows with it, and a
/// megabyte of password is an attack, not a secret.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The shortest password an account may be given.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// How a device asks to be activated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credential {
    /// A license key, as the customer typed it: the key's license.
    Key(LicenseKey),
    /// A user's login: a license assigned to the account (the one the
    /// request names, or the only one of this product).
    User {
        /// The account's email (case does not matter).
        email: String,
        /// Its password.
        password: String,
    },
    /// Nothing but the license id in the request: only for a license
    /// issued without a key or users (added to the books as a file), whose
    /// customer holds the signed license.
    LicenseId,
}

/// What an activation gave the device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activated {
    /// The license activated.
    pub license_id: String,
    /// The license, as the vendor signed it (compact).
    pub license: String,
    /// The machine certificate for the device (compact).
    pub certificate: String,
    /// The device was counted now (`false`: it was counted already, and
    /// this is a fresh certificate).
    pub created: bool,
}

/// A license the service issued.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// Its id.
    pub id: String,
    /// The key the customer types; the books keep only its hash, so this
    /// is the one time it is shown.
    pub key: LicenseKey,
    /// The license, as signed (compact).
    pub token: String,
    /// What the vendor should know about it (see [`IssueWarning`]).
    pub warnings: Vec<IssueWarning>,
}

/// What an install learns at a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Synced {
    /// The current issue of each license the install named that the books
    /// hold (compact tokens).
    pub licenses: Vec<String>,
    /// The latest revocation list (compact), if the vendor revoked any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocations: Option<String>,
    /// The latest key rotation (compact), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
    /// The ids ([`certificate_id`]) of this device's certificates whose
    /// slot the vendor freed.
    pub withdrawn: Vec<String>,
}

/// One license as the vendor sees it ([`Service::license_detail`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LicenseDetail {
    /// Its summary.
    pub license: LicenseInfo,
    /// The devices activated on it.
    pub activations: Vec<ActivationInfo>,
    /// The latest usage each device reported for it.
    pub usage: Vec<ReportedUsage>,
}

/// What a device last reported of a license's use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReportedUsage {
    /// The device.
    pub fingerprint: String,
    /// The report's sequence number.
    pub sequence: u64,
    /// When the install made the report.
    pub created_at: Timestamp,
    /// The license's use, as reported.
    #[serde(flatten)]
    pub usage: LicenseUsage,
}

/// An account: a person who logs in to activate the licenses assigned
/// to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Its email, in lower case: what it logs in with.
    pub email: String,
    /// First name (words).
    pub first_name: Option<String>,
    /// Last name (words).
    pub last_name: Option<String>,
    /// The most devices this person may have activated at once, over all
    /// of their licenses (`None`: only the licenses' own limits).
    pub max_activations: Option<u32>,
    /// Whether a password is set (without one, the account cannot log in).
    pub can_log_in: bool,
}

/// A new account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NewAccount {
    /// Its email.
    pub email: String,
    /// Its password (at least [`MIN_PASSWORD_CHARS`] characters); without
    /// one the account cannot log in until it is given one.
    #[serde(default)]
    pub password: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The most devices at once over all of the person's licenses.
    #[serde(default)]
    pub max_activations: Option<u32>,
}

impl NewAccount {
    /// An account for `email`, with no password yet.
    ///
    /// ```
    /// let account = entitle::books::online::NewAccount::new("ada@example.com")
    ///     .password("correct horse battery");
    /// assert_eq!(account.email, "ada@example.com");
    /// ```
    pub fn new(email: impl Into<String>) -> Self {
        NewAccount {
            email: email.into(),
            ..NewAccount::default()
        }
    }

    /// Sets its password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the most devices the person may have activated at once.
    pub fn max_activations(mut self, max: u32) -> Self {
        self.max_activations = Some(max);
        self
    }
}

/// A license assigned to a user, as the user sees it when logged in.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UserLicense {
    /// The license as signed (compact).
    pub token: String,
    /// Its document.
    pub license: License,
    /// The user.
    pub user: Account,
    /// The devices the user has activated, over all of their licenses.
    pub total_activations: u32,
}

/// An account as the books keep it: with its password's argon2id hash
/// (PHC string), never the password.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAccount {
    id: String,
    email: String,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    max_activations: Option<u32>,
}

impl StoredAccount {
    fn public(&self) -> Account {
        Account {
            id: self.id.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            max_activations: self.max_activations,
            can_log_in: self.password_hash.is_some(),
        }
    }
}

/// The vendor's online service: its books, the key it signs with, and
/// the trial it gives. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Service {
    books: Books,
    signer: Arc<SigningKey>,
    trial: Option<Arc<Map<String, Value>>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("product", &self.books.product())
            .field("kid", &self.signer.kid())
            .field("trial", &self.trial.is_some())
            .finish()
    }
}

impl Service {
    /// The service over `books`, signing with `signer`, which the books
    /// must trust (what it signs is added to them, and verified there as
    /// an install would). `INVALID_ARGUMENT` otherwise.
    ///
    /// ```
    /// use entitle::books::{online::Service, Books};
    /// let vendor = entitle::token::SigningKey::generate()?;
    /// let other = entitle::token::SigningKey::generate()?;
    /// let books = Books::builder("acme").in_memory().trust(vendor.public_key().clone()).build()?;
    /// assert!(Service::new(books.clone(), vendor).is_ok());
    /// assert_eq!(Service::new(books, other).unwrap_err().code(), "INVALID_ARGUMENT");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn new(books: Books, signer: SigningKey) -> Result<Self> {
        let kid = signer.kid().to_owned();
        let trusted = books
            .engine
            .read_state(|state, _| state.keyring.get(&kid).is_some())?;
        if !trusted {
            return Err(Error::InvalidArgument(format!(
                "the books do not trust the vendor key {kid}: give the books the key's public \
                 half (`entitle init --pub`), or sign with a key they trust"
            )));
        }
        Ok(Service {
            books,
            signer: Arc::new(signer),
            trial: None,
        })
    }

    /// Gives a trial from `spec` (a license spec as `entitle issue` takes
    /// it, for the books' product, with `trial: true` and `trial_secs`):
    /// each device asking gets a license of its own, made from the spec,
    /// node-locked to it. Without one, trials are refused.
    ///
    /// ```
    /// use entitle::books::{online::Service, Books};
    /// let vendor = entitle::token::SigningKey::generate()?;
    /// let books = Books::builder("acme").in_memory().trust(vendor.public_key().clone()).build()?;
    /// let service = Service::new(books, vendor)?.trial_spec(
    ///     r#"{"product": "acme", "trial": true, "trial_secs": 1209600,
    ///         "features": [{"code": "export"}]}"#,
    /// )?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn trial_spec(mut self, spec: &str) -> Result<Self> {
        let (license, document) = License::from_spec(spec, self.books.now())?;
        if license.product != self.books.product() {
            return Err(Error::ProductMismatch {
                what: format!("license spec `{}`", license.id),
                expected: self.books.product().to_owned(),
                found: license.product,
            });
        }
        if !license.trial || license.trial_secs.is_none() {
            return Err(Error::InvalidArgument(
                "a trial spec needs `\"trial\": true` and `trial_secs` (how long each device's \
                 trial runs from its first use)"
                    .into(),
            ));
        }
        let mut document = document;
        // Each device's trial is a license of its own.
        document.remove("id");
        document.remove("issued_at");
        self.trial = Some(Arc::new(document));
        Ok(self)
    }

    /// The books the service keeps.
    pub fn books(&self) -> &Books {
        &self.books
    }

    /// Issues a license from `spec` (as `entitle issue` takes it, for the
    /// books' product) with a key to type, assigned to the accounts
    /// `users` (which must exist), and adds it to the books, all in one
    /// step.
    ///
    /// ```
    /// # use entitle::books::{online::Service, Books};
    /// # let vendor = entitle::token::SigningKey::generate()?;
    /// # let books = Books::builder("acme").in_memory().trust(vendor.public_key().clone()).build()?;
    /// # let service = Service::new(books, vendor)?;
    /// let issued = service.issue(r#"{"product": "acme", "activations": {"max": 3}}"#, &[])?;
    /// assert_eq!(issued.key.to_string().len(), 29);
    /// // Counted by installs, a limit binds only what one install sees.
    /// assert_eq!(issued.warnings[0].code(), "ACTIVATIONS_COUNTED_BY_INSTALL");
    /// assert_eq!(service.books().licenses()[0].id, issued.id);
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn issue(&self, spec: &str, users: &[&str]) -> Result<Issued> {
        let (license, document) = License::from_spec(spec, self.books.now())?;
        if license.product != self.books.product() {
            return Err(Error::ProductMismatch {
                what: format!("license spec `{}`", license.id),
                expected: self.books.product().to_owned(),
                found: license.product,
            });
        }
        let unknown = license.unknown_fields(&document);
        if !unknown.is_empty() {
            let fields: Vec<String> = unknown.iter().map(ToString::to_string).collect();
            return Err(Error::malformed("license spec", fields.join("; ")));
        }
        let token = token::sign(&Value::Object(document), &self.signer, TokenType::License)?;
        let key = LicenseKey::generate()?;
        let users: Vec<String> = users.iter().map(|u| normal_email(u)).collect();
        let verified = self.verify_own(&token)?;
        let id = license.id.clone();
        self.books.engine.mutate(|plan| {
            let mut changes = plan_add(plan, verified.clone())?;
            changes.push(put(kind::KEY, key.hash(), &id));
            changes.push(put(kind::KEYED, id.clone(), ""));
            for email in &users {
                account_in(plan.state, email)?;
                changes.push(put(kind::ASSIGNED, pair(&id, email), ""));
            }
            Ok((changes, ()))
        })?;
        Ok(Issued {
            id,
            key,
            token,
            warnings: license.issue_warnings(),
        })
    }

    /// Activates the device of `request` (the JSON text of an
    /// [`ActivationRequest`]; its `license_id` may be empty when the
    /// credential names the license) and signs its certificate, which
    /// ends at `expires_at` if given. The same device again (its
    /// fingerprint and install key) is counted once and gets a fresh
    /// certificate; a device claiming a fingerprint the books hold under
    /// another install key is another device.
    ///
    /// Refused with `UNAUTHORIZED` (a key no license has, a wrong email or
    /// password), `LICENSE_NOT_FOUND`, `ACTIVATION_LIMIT` (the license's,
    /// or the account's `max_activations`), `VM_NOT_ALLOWED`,
    /// `PRODUCT_MISMATCH`, `MALFORMED`; nothing is counted then.
    pub fn activate(
        &self,
        request: &str,
        credential: &Credential,
        expires_at: Option<Timestamp>,
    ) -> Result<Activated> {
        let mut request = read_request(request)?;
        let by_user = match credential {
            Credential::User { email, password } => {
                let email = normal_email(email);
                self.log_in(&email, password)?;
                Some(email)
            }
            _ => None,
        };
        let asked = std::mem::take(&mut request.license_id);
        let signer = Arc::clone(&self.signer);
        self.books.engine.mutate(|plan| {
            let state = plan.state;
            let license_id = match credential {
                Credential::Key(key) => {
                    let id = state
                        .books
                        .get(&(kind::KEY.to_owned(), key.hash()))
                        .ok_or_else(|| Error::Unauthorized("no license has this key".into()))?;
                    if !asked.is_empty() && asked != *id {
                        return Err(Error::InvalidArgument(format!(
                            "the request is for license `{asked}`, the key for another one; \
                             send a request without a license id, or the key of `{asked}`"
                        )));
                    }
                    id.clone()
                }
                Credential::User { .. } => {
                    let email = by_user.as_deref().unwrap_or_default();
                    user_license(state, email, &asked, plan.now)?
                }
                Credential::LicenseId => {
                    if asked.is_empty() {
                        return Err(Error::InvalidArgument(
                            "the request names no license: give a license key or log in".into(),
                        ));
                    }
                    if guarded(state, &asked) {
                        return Err(Error::Unauthorized(format!(
                            "license `{asked}` is activated with its key or by logging in"
                        )));
                    }
                    asked.clone()
                }
            };
            let installed =
                state
                    .licenses
                    .get(&license_id)
                    .ok_or_else(|| Error::LicenseNotFound {
                        id: license_id.clone(),
                    })?;
            if installed.revoked {
                return Err(Error::LicenseRevoked {
                    id: license_id.clone(),
                });
            }
            let mut request = request.clone();
            request.license_id = license_id.clone();
            let device = pair(&license_id, &request.fingerprint);
            let (mut changes, created) = plan_record_certificate(plan, &request, expires_at)?;
            // The device as the license counts it: a second install
            // claiming a known fingerprint is kept under a key of its own,
            // and is another device for the account too.
            let counted = changes
                .iter()
                .find_map(|change| match change {
                    Change::PutActivation(record) => Some(pair(&license_id, &record.fingerprint)),
                    _ => None,
                })
                .unwrap_or_else(|| device.clone());
            if let Some(email) = &by_user {
                check_account_limit(state, email, &counted, created, plan.now)?;
            }
            let certificate = sign_certificate(&signer, &request, plan.now, expires_at)?;
            let mut ids: Vec<String> = state
                .books
                .get(&(kind::CERTIFICATES.to_owned(), device.clone()))
                .and_then(|ids| serde_json::from_str(ids).ok())
                .unwrap_or_default();
            let id = certificate_id(&certificate);
            // Signed within the second of one the vendor withdrew, for
            // the same device and install, a certificate is that one
            // again: granted anew, it is withdrawn no longer (else the
            // install's next sync would take back what it was just given).
            let withdrawn = (kind::WITHDRAWN.to_owned(), id.clone());
            if state.books.contains_key(&withdrawn) {
                changes.push(Change::DeleteBooksRecord {
                    kind: withdrawn.0,
                    key: withdrawn.1,
                });
            }
            // The same certificate again (signed within the same second)
            // is listed once.
            if !ids.contains(&id) {
                ids.push(id);
            }
            changes.push(put(kind::CERTIFICATES, device.clone(), &json_text(&ids)));
            if let Some(email) = &by_user {
                changes.push(put(kind::ACTIVATED_BY, counted, email));
            }
            Ok((
                changes,
                Activated {
                    license_id: license_id.clone(),
                    license: installed.verified.token().to_owned(),
                    certificate,
                    created,
                },
            ))
        })
    }

    /// The devices counted against the limit an activation of `request`
    /// with `credential` met, and that limit: the account's
    /// `max_activations` when a login's account is full, else the
    /// license's. `None` when the license or the limit cannot be told
    /// (what `used` and `max` of an `ACTIVATION_LIMIT` answer say; the
    /// login is not checked again, as this follows a refusal that
    /// checked it).
    pub(crate) fn activation_counts(
        &self,
        request: &str,
        credential: &Credential,
    ) -> Option<(u64, u64)> {
        let asked = read_request(request).ok()?.license_id;
        self.books
            .engine
            .read_state(|state, now| {
                let license_id = match credential {
                    Credential::Key(key) => state
                        .books
                        .get(&(kind::KEY.to_owned(), key.hash()))?
                        .clone(),
                    Credential::User { email, .. } => {
                        let email = normal_email(email);
                        let account = account_in(state, &email).ok()?;
                        if let Some(max) = account.max_activations {
                            let used = activations_of(state, &email, now);
                            if used >= max {
                                return Some((u64::from(used), u64::from(max)));
                            }
                        }
                        user_license(state, &email, &asked, now).ok()?
                    }
                    Credential::LicenseId => asked.clone(),
                };
                let max = state.licenses.get(&license_id)?.verified.activations?.max?;
                let used = state.devices_for(&license_id, now).count();
                Some((u64::try_from(used).unwrap_or(u64::MAX), u64::from(max)))
            })
            .ok()
            .flatten()
    }

    /// Gives the device of `request` its trial: a license made from the
    /// trial spec, node-locked to the device, with its certificate. One
    /// per device and product, whatever became of the install
    /// (`TRIAL_USED`); `INVALID_ARGUMENT` without a trial spec;
    /// `VM_NOT_ALLOWED` for a virtual machine when the spec has
    /// `prevent_vm`, before the device's trial is spent.
    pub fn start_trial(&self, request: &str) -> Result<Activated> {
        let Some(spec) = self.trial.clone() else {
            return Err(Error::InvalidArgument(
                "this service gives no trials (it was started without a trial spec)".into(),
            ));
        };
        let mut request = read_request(request)?;
        // As for any activation (docs/formats.md#activation-request): the
        // trial would grant nothing there, and the device has one.
        if request.vm && spec.get("prevent_vm").and_then(Value::as_bool) == Some(true) {
            return Err(Error::denied(
                crate::decision::Reason::VmNotAllowed,
                "this product's trial may not run on a virtual machine",
            ));
        }
        let mut document = (*spec).clone();
        let id = crate::engine::random_id("lic_");
        document.insert("id".into(), Value::from(id.clone()));
        document.insert(
            "issued_at".into(),
            Value::from(self.books.now().to_rfc3339()),
        );
        document.insert(
            "activations".into(),
            json!({"max": 1, "counted_by": "vendor"}),
        );
        let token = token::sign(&Value::Object(document), &self.signer, TokenType::License)?;
        let verified = self.verify_own(&token)?;
        request.license_id = id.clone();
        let signer = Arc::clone(&self.signer);
        self.books.engine.mutate(|plan| {
            let fingerprint = &request.fingerprint;
            if plan
                .state
                .books
                .contains_key(&(kind::TRIAL.to_owned(), fingerprint.clone()))
            {
                return Err(Error::TrialUsed {
                    fingerprint: fingerprint.clone(),
                });
            }
            let mut changes = plan_add(plan, verified.clone())?;
            // The license is not in `plan.state` yet: count the device as
            // the only one of a license just made.
            let certificate = sign_certificate(&signer, &request, plan.now, None)?;
            changes.extend(crate::engine::devices::recorded(&request, plan.now, None));
            changes.push(put(kind::TRIAL, fingerprint.clone(), &id));
            changes.push(put(
                kind::CERTIFICATES,
                pair(&id, fingerprint),
                &json_text(&[certificate_id(&certificate)]),
            ));
            Ok((
                changes,
                Activated {
                    license_id: id.clone(),
                    license: token.clone(),
                    certificate,
                    created: true,
                },
            ))
        })
    }

    /// What the install of `fingerprint` holding `install_key` (base64url)
    /// learns at a sync: the current issue of each license in
    /// `license_ids` it may have, the latest revocation list and key
    /// rotation, and the certificates of its device the vendor withdrew.
    ///
    /// A license activated with its key or by logging in is sent only to
    /// a device the books hold activated on it with that install key: its
    /// id alone does not fetch it. Another license (added to the books as
    /// a file) is sent to whoever names it, as its customer holds it.
    pub fn sync(
        &self,
        license_ids: &[String],
        fingerprint: &str,
        install_key: &str,
    ) -> Result<Synced> {
        self.books.engine.read_state(|state, _| {
            let wanted: BTreeSet<&str> = license_ids.iter().map(String::as_str).collect();
            let may_have = |id: &str| {
                !guarded(state, id)
                    || state
                        .activations
                        .get(&(id.to_owned(), fingerprint.to_owned()))
                        .is_some_and(|a| a.install_key.as_deref() == Some(install_key))
            };
            let licenses = state
                .licenses
                .iter()
                .filter(|(id, _)| wanted.contains(id.as_str()) && may_have(id))
                .map(|(_, l)| l.verified.token().to_owned())
                .collect();
            // Several taken in one second are told apart by when they
            // were signed, then by how many licenses they name: each list
            // `revoke` signs names every license revoked before it.
            let latest = |kind: SignedKind| {
                state
                    .signed
                    .iter()
                    .filter(|r| r.kind == kind)
                    .max_by_key(|r| (r.added_at, signed_order(&r.token)))
                    .map(|r| r.token.clone())
            };
            let withdrawn = state
                .books
                .range((kind::WITHDRAWN.to_owned(), String::new())..)
                .take_while(|((k, _), _)| k == kind::WITHDRAWN)
                .filter(|(_, device)| {
                    wanted.contains(first_of(device)) && second_of(device) == fingerprint
                })
                .map(|((_, id), _)| id.clone())
                .collect();
            Synced {
                licenses,
                revocations: latest(SignedKind::Revocations),
                keys: latest(SignedKind::Keys),
                withdrawn,
            }
        })
    }

    /// One license as the vendor sees it: its summary, the devices
    /// activated on it, and the latest usage each device reported for it.
    /// `LICENSE_NOT_FOUND` when the books do not hold it.
    ///
    /// ```
    /// # use entitle::books::{online::Service, Books};
    /// # let vendor = entitle::token::SigningKey::generate()?;
    /// # let books = Books::builder("acme").in_memory().trust(vendor.public_key().clone()).build()?;
    /// # let service = Service::new(books, vendor)?;
    /// let issued = service.issue(r#"{"product": "acme"}"#, &[])?;
    /// let detail = service.license_detail(&issued.id)?;
    /// assert_eq!(detail.license.id, issued.id);
    /// assert!(detail.activations.is_empty() && detail.usage.is_empty());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn license_detail(&self, license_id: &str) -> Result<LicenseDetail> {
        let license = self
            .books
            .licenses()
            .into_iter()
            .find(|l| l.id == license_id)
            .ok_or_else(|| Error::LicenseNotFound {
                id: license_id.to_owned(),
            })?;
        let activations = self
            .books
            .activations()
            .into_iter()
            .filter(|a| a.license_id == license_id)
            .collect();
        let usage = self.books.engine.read_state(|state, _| {
            // The latest report of each device (the map is ordered by
            // device, then sequence).
            let mut latest: std::collections::BTreeMap<&str, &crate::store::ReportRecord> =
                std::collections::BTreeMap::new();
            for record in state.reports.values() {
                latest.insert(&record.fingerprint, record);
            }
            latest
                .values()
                .filter_map(|record| {
                    let report =
                        crate::license::UsageReport::read_unverified(&record.token).ok()?;
                    let usage = report.licenses.into_iter().find(|l| l.id == license_id)?;
                    Some(ReportedUsage {
                        fingerprint: record.fingerprint.clone(),
                        sequence: record.sequence,
                        created_at: Timestamp::from_unix(record.created_at),
                        usage,
                    })
                })
                .collect()
        })?;
        Ok(LicenseDetail {
            license,
            activations,
            usage,
        })
    }

    /// Frees the slot of device `fingerprint` on `license_id` (a customer
    /// lost the machine): counts a transfer, and withdraws the device's
    /// certificates, which its install learns at its next sync. Returns
    /// the ids withdrawn. `NOT_ACTIVATED` when the books hold no
    /// activation of it; `TRANSFER_LIMIT` when none are left.
    pub fn free(&self, license_id: &str, fingerprint: &str) -> Result<Vec<String>> {
        self.books.engine.mutate(|plan| {
            let mut changes = plan_free(plan, license_id, fingerprint)?;
            let device = pair(license_id, fingerprint);
            let ids: Vec<String> = plan
                .state
                .books
                .get(&(kind::CERTIFICATES.to_owned(), device.clone()))
                .and_then(|ids| serde_json::from_str(ids).ok())
                .unwrap_or_default();
            for id in &ids {
                changes.push(put(kind::WITHDRAWN, id.clone(), &device));
            }
            // Each install freed (the device, and any other claiming its
            // fingerprint) is no longer one of its account's devices.
            let freed: Vec<Change> = changes
                .iter()
                .filter_map(|change| match change {
                    Change::DeleteActivation { fingerprint, .. } => {
                        Some(Change::DeleteBooksRecord {
                            kind: kind::ACTIVATED_BY.into(),
                            key: pair(license_id, fingerprint),
                        })
                    }
                    _ => None,
                })
                .collect();
            changes.extend(freed);
            changes.push(Change::DeleteBooksRecord {
                kind: kind::CERTIFICATES.into(),
                key: device,
            });
            Ok((changes, ids))
        })
    }

    /// Revokes `license_id`: signs a revocation list of every license the
    /// books hold revoked, this one with them, and keeps it; installs
    /// apply it at their next sync. Returns the list (compact).
    pub fn revoke(&self, license_id: &str) -> Result<String> {
        let signer = Arc::clone(&self.signer);
        // Signed inside the mutation, from what the books hold revoked
        // then: a list signed from an earlier read would leave out a
        // license another service over the same books revoked meanwhile,
        // and the latest list is what installs get.
        self.books.engine.mutate(|plan| {
            let state = plan.state;
            if !state.licenses.contains_key(license_id) {
                return Err(Error::LicenseNotFound {
                    id: license_id.to_owned(),
                });
            }
            let ids: BTreeSet<&str> = state
                .licenses
                .iter()
                .filter(|(_, l)| l.revoked)
                .map(|(id, _)| id.as_str())
                .chain(state.tombstones.keys().map(String::as_str))
                .chain(std::iter::once(license_id))
                .collect();
            let document = json!({
                "v": 1,
                "product": state.product.as_deref().unwrap_or(plan.config.product.as_str()),
                "issued_at": Timestamp::from_unix(plan.now).to_rfc3339(),
                "ids": ids,
            });
            let list = RevocationList::from_json(&document)?;
            let token = token::sign(&document, &signer, TokenType::Revocations)?;
            still_trusted(plan, signer.kid())?;
            Ok((plan_revocations(plan, &list, &token)?, token))
        })
    }

    /// Opens an account. `INVALID_ARGUMENT` for an email that is not one,
    /// a password shorter than [`MIN_PASSWORD_CHARS`], or an account that
    /// exists.
    ///
    /// ```
    /// # use entitle::books::{online::{NewAccount, Service}, Books};
    /// # let vendor = entitle::token::SigningKey::generate()?;
    /// # let books = Books::builder("acme").in_memory().trust(vendor.public_key().clone()).build()?;
    /// # let service = Service::new(books, vendor)?;
    /// let account = service.add_account(NewAccount::new("Ada@Example.com").password("a long secret"))?;
    /// assert_eq!(account.email, "ada@example.com");
    /// assert!(account.can_log_in);
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn add_account(&self, account: NewAccount) -> Result<Account> {
        let email = normal_email(&account.email);
        check_email(&email)?;
        let password_hash = account.password.as_deref().map(hash_password).transpose()?;
        let stored = StoredAccount {
            id: crate::engine::random_id("usr_"),
            email: email.clone(),
            password_hash,
            first_name: account.first_name,
            last_name: account.last_name,
            max_activations: account.max_activations,
        };
        let value = serde_json::to_string(&stored)
            .map_err(|e| Error::InvalidArgument(format!("the account does not serialize ({e})")))?;
        self.books.engine.mutate(|plan| {
            if plan
                .state
                .books
                .contains_key(&(kind::ACCOUNT.to_owned(), email.clone()))
            {
                return Err(Error::InvalidArgument(format!(
                    "an account for {email} exists already"
                )));
            }
            Ok((vec![put(kind::ACCOUNT, email.clone(), &value)], ()))
        })?;
        Ok(stored.public())
    }

    /// Every account, by email.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        self.books.engine.read_state(|state, _| {
            records(state, kind::ACCOUNT)
                .filter_map(|(_, v)| serde_json::from_str::<StoredAccount>(v).ok())
                .map(|a| a.public())
                .collect()
        })
    }

    /// Assigns `license_id` to the account of `email`: the person may then
    /// activate it by logging in. `LICENSE_NOT_FOUND`, `USER_NOT_FOUND`.
    pub fn assign(&self, license_id: &str, email: &str) -> Result<()> {
        let email = normal_email(email);
        self.books.engine.mutate(|plan| {
            if !plan.state.licenses.contains_key(license_id) {
                return Err(Error::LicenseNotFound {
                    id: license_id.to_owned(),
                });
            }
            account_in(plan.state, &email)?;
            Ok((vec![put(kind::ASSIGNED, pair(license_id, &email), "")], ()))
        })
    }

    /// The licenses assigned to the account that logs in with `email` and
    /// `password`, with the account and how many devices it has activated.
    /// `UNAUTHORIZED` for a wrong email or password.
    pub fn user_licenses(&self, email: &str, password: &str) -> Result<Vec<UserLicense>> {
        let email = normal_email(email);
        let account = self.log_in(&email, password)?;
        self.books.engine.read_state(|state, now| {
            let total = activations_of(state, &email, now);
            records(state, kind::ASSIGNED)
                .filter(|(key, _)| second_of(key) == email)
                .filter_map(|(key, _)| state.licenses.get(first_of(key)))
                .map(|l| UserLicense {
                    token: l.verified.token().to_owned(),
                    license: l.verified.license().clone(),
                    user: account.public(),
                    total_activations: total,
                })
                .collect()
        })
    }

    /// Checks a login against the account as last read: `UNAUTHORIZED`
    /// alike for an unknown email and a wrong password (the time taken is
    /// the same: a made-up hash is checked for an unknown email).
    fn log_in(&self, email: &str, password: &str) -> Result<StoredAccount> {
        let account = self
            .books
            .engine
            .read_state(|state, _| account_in(state, email).ok())?;
        let hash = account.as_ref().and_then(|a| a.password_hash.clone());
        let good = verify_password(password, hash.as_deref());
        match account {
            Some(account) if good && hash.is_some() => Ok(account),
            _ => Err(Error::Unauthorized("wrong email or password".into())),
        }
    }

    /// Verifies a token this service signed, as the books will.
    fn verify_own(&self, token: &str) -> Result<VerifiedLicense> {
        let keyring = self
            .books
            .engine
            .read_state(|s, _| Arc::clone(&s.keyring))?;
        VerifiedLicense::verify(token, &keyring)
    }
}

/// Where a revocation list or key rotation this service keeps stands
/// among those kept in the same second: its `issued_at`, then how many
/// ids it names. Read unverified, only to order them: each was verified
/// when the books took it, and an install verifies what it is sent.
fn signed_order(token: &str) -> (i64, usize) {
    let Ok(token) = token::decode_unverified(token) else {
        return (i64::MIN, 0);
    };
    let issued_at = token
        .payload
        .get("issued_at")
        .and_then(Value::as_str)
        .and_then(|t| Timestamp::parse(t).ok())
        .map_or(i64::MIN, Timestamp::unix);
    let ids = token
        .payload
        .get("ids")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    (issued_at, ids)
}

/// A request as the service takes it: JSON, at most 16 KiB; its license
/// id may be empty (the credential names the license).
fn read_request(text: &str) -> Result<ActivationRequest> {
    if text.len() > MAX_REQUEST_BYTES {
        return Err(Error::TooLarge {
            what: "activation request",
            size: text.len(),
            limit: MAX_REQUEST_BYTES,
        });
    }
    let value = token::parse_strict_json(text.as_bytes(), "activation request")?;
    let mut request: ActivationRequest = serde_path_to_error::deserialize(&value).map_err(|e| {
        Error::malformed(
            "activation request",
            format!("field `{}`: {}", e.path(), e.inner()),
        )
    })?;
    // Checked as the offline request is, with a stand-in id when empty.
    let empty = request.license_id.is_empty();
    if empty {
        request.license_id = "-".into();
    }
    let text = serde_json::to_string(&request)
        .map_err(|e| Error::malformed("activation request", e.to_string()))?;
    let mut request = ActivationRequest::from_json_text(&text)?;
    if empty {
        request.license_id.clear();
    }
    Ok(request)
}

/// Whether `license_id` is activated only with its key or by logging in
/// (it has a key, or users assigned).
fn guarded(state: &State, license_id: &str) -> bool {
    let keyed = (kind::KEYED.to_owned(), license_id.to_owned());
    let assigned = (kind::ASSIGNED.to_owned(), format!("{license_id}\n"));
    state.books.contains_key(&keyed)
        || state
            .books
            .range(assigned.clone()..)
            .next()
            .is_some_and(|((k, key), _)| *k == assigned.0 && key.starts_with(&assigned.1))
}

/// Signs the machine certificate for `request`'s device.
fn sign_certificate(
    signer: &SigningKey,
    request: &ActivationRequest,
    now: i64,
    expires_at: Option<Timestamp>,
) -> Result<String> {
    let mut document = json!({
        "v": 1,
        "license_id": request.license_id,
        "fingerprint": request.fingerprint,
        "issued_at": Timestamp::from_unix(now).to_rfc3339(),
    });
    if let Some(end) = expires_at {
        document["expires_at"] = json!(end.to_rfc3339());
    }
    if let Some(key) = &request.install_key {
        document["install_key"] = json!(key);
    }
    if let Some(machine) = &request.machine {
        document["machine"] = json!(machine);
    }
    crate::license::MachineCertificate::from_json(&document)?;
    token::sign(&document, signer, TokenType::Machine)
}

/// The license a user's login activates: the one the request names, if
/// assigned to them; else the only one assigned (or the first in force
/// of several).
fn user_license(state: &State, email: &str, asked: &str, now: i64) -> Result<String> {
    let assigned: Vec<&str> = records(state, kind::ASSIGNED)
        .filter(|(key, _)| second_of(key) == email)
        .map(|(key, _)| first_of(key))
        .filter(|id| state.licenses.contains_key(*id))
        .collect();
    if !asked.is_empty() {
        return if assigned.contains(&asked) {
            Ok(asked.to_owned())
        } else {
            Err(Error::LicenseNotFound {
                id: asked.to_owned(),
            })
        };
    }
    let in_force = |id: &&&str| {
        state.licenses.get(**id).is_some_and(|l| {
            !l.revoked
                && l.verified
                    .license()
                    .expires_at
                    .is_none_or(|end| now < end.unix())
        })
    };
    assigned
        .iter()
        .find(in_force)
        .or(assigned.first())
        .map(|id| (*id).to_owned())
        .ok_or_else(|| Error::LicenseNotFound {
            id: format!("(none assigned to {email})"),
        })
}

/// Refuses a device over the account's `max_activations` (a device it
/// has already is no new one). `device` is `license \n key` with the key
/// the books count the device under; `created`, whether the license
/// counts it now.
fn check_account_limit(
    state: &State,
    email: &str,
    device: &str,
    created: bool,
    now: i64,
) -> Result<()> {
    let Ok(account) = account_in(state, email) else {
        return Err(Error::Unauthorized("wrong email or password".into()));
    };
    let Some(max) = account.max_activations else {
        return Ok(());
    };
    // A record left by a device since lapsed is no device the account has.
    let already = !created
        && state
            .books
            .get(&(kind::ACTIVATED_BY.to_owned(), device.to_owned()))
            .is_some_and(|by| by == email);
    if !already && activations_of(state, email, now) >= max {
        return Err(Error::denied(
            crate::decision::Reason::ActivationLimit,
            format!("{email} has activated the {max} devices their account allows; free one first"),
        ));
    }
    Ok(())
}

/// The devices an account has activated that still count.
fn activations_of(state: &State, email: &str, now: i64) -> u32 {
    let count = records(state, kind::ACTIVATED_BY)
        .filter(|(_, by)| *by == email)
        .filter(|(device, _)| {
            state
                .devices_for(first_of(device), now)
                .any(|(key, _)| key == second_of(device))
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn account_in(state: &State, email: &str) -> Result<StoredAccount> {
    state
        .books
        .get(&(kind::ACCOUNT.to_owned(), email.to_owned()))
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(|| Error::UserNotFound {
            id: email.to_owned(),
        })
}

/// The records of one kind, as (key, value).
fn records<'a>(state: &'a State, of: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    state
        .books
        .range((of.to_owned(), String::new())..)
        .take_while(move |((k, _), _)| k == of)
        .map(|((_, key), value)| (key.as_str(), value.as_str()))
}

fn put(kind: &str, key: impl Into<String>, value: &str) -> Change {
    Change::PutBooksRecord(BooksRecord::new(kind, key, value))
}

/// Two names in one key: a newline, which neither an id, a fingerprint
/// nor an email may hold.
fn pair(a: &str, b: &str) -> String {
    format!("{a}\n{b}")
}

fn first_of(key: &str) -> &str {
    key.split('\n').next().unwrap_or(key)
}

fn second_of(key: &str) -> &str {
    key.split('\n').nth(1).unwrap_or("")
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(email: &str) -> Result<()> {
    let shaped = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if shaped {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "`{}` is not an email address",
            email.chars().take(64).collect::<String>()
        )))
    }
}

/// The argon2id hash of a password (PHC string, with a random salt).
fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidArgument(format!(
            "a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes long"
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| Error::InvalidArgument(format!("no randomness for a salt ({e})")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| Error::InvalidArgument(format!("salt ({e})")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::InvalidArgument(format!("the password cannot be hashed ({e})")))
}

/// Whether `password` matches `hash`; with no hash, a made-up one is
/// checked, so that an unknown account takes as long as a wrong password.
fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static DECOY: once_cell::sync::Lazy<Option<String>> =
        once_cell::sync::Lazy::new(|| hash_password("decoy password, never matched").ok());
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Some(hash) = hash.or(DECOY.as_deref()) else {
        return false;
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && hash_is_real(hash, DECOY.as_deref())
}

fn hash_is_real(hash: &str, decoy: Option<&str>) -> bool {
    Some(hash) != decoy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("correct horsf", Some(&hash)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("correct horse", Some("not a hash")));
        assert!(hash_password("short").is_err());
        assert!(hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn emails_are_checked_and_compared_in_lower_case() {
        assert_eq!(normal_email("  Ada@Example.COM "), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email("ada@example.com").is_ok());
    }
}
