//! The vendor's books: the state in which a vendor without a licensing
//! server counts the activations of its customers' air-gapped installs,
//! frees a slot on an install's signed deactivation receipt, and keeps the
//! usage reports installs sign (`docs/semantics.md`, `docs/formats.md`).
//!
//! [`Books`] is a role of its own, opened on a store of its own: an
//! [`Engine`] is an install, and has none of these methods. The two meet
//! only through files: the install's [`ActivationRequest`], the
//! certificate the vendor signs for it, and the receipts and reports the
//! install signs with its own key.
//!
//! ```
//! use entitle::books::Books;
//! use entitle::token::{armor, sign, SigningKey, TokenType};
//! use entitle::Engine;
//!
//! let vendor = SigningKey::generate()?;
//! let license = sign(&serde_json::json!({
//!     "v": 1, "id": "lic_1", "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
//!     "activations": {"max": 1, "counted_by": "vendor"},
//!     "features": [{"code": "export"}]
//! }), &vendor, TokenType::License)?;
//!
//! // The customer's air-gapped install asks for an activation.
//! let install = Engine::builder("acme-cad").in_memory()
//!     .trust(vendor.public_key().clone())
//!     .fingerprint("desk-1")
//!     .virtual_machine(false)
//!     .build()?;
//! install.add_license(&license)?;
//! let request = install.activation_request(None)?;
//!
//! // The vendor counts it in its books, then signs the certificate.
//! let books = Books::builder("acme-cad").in_memory()
//!     .trust(vendor.public_key().clone())
//!     .build()?;
//! books.add_license(&license)?;
//! books.record_issued_certificate(&request, None)?;
//! let certificate = sign(&serde_json::json!({
//!     "v": 1, "license_id": "lic_1", "fingerprint": request.fingerprint,
//!     "issued_at": books.now().to_string(), "install_key": request.install_key
//! }), &vendor, TokenType::Machine)?;
//! install.apply(&armor(&certificate, TokenType::Machine))?;
//! assert!(install.check_feature("export").allowed());
//!
//! // The install retires the device offline; its receipt frees the slot.
//! let receipt = install.deactivate_with_receipt("desk-1", None)?;
//! books.accept_receipt(&receipt.token)?;
//! assert!(books.activations().is_empty());
//! # Ok::<(), entitle::Error>(())
//! ```
//!
//! An install has none of the books' methods: each of these fails to
//! compile.
//!
//! ```compile_fail
//! # let install = entitle::Engine::builder("acme-cad").in_memory().build()?;
//! # let request = install.activation_request(None)?;
//! install.record_issued_certificate(&request, None)?;
//! # Ok::<(), entitle::Error>(())
//! ```
//!
//! ```compile_fail
//! # let install = entitle::Engine::builder("acme-cad").in_memory().build()?;
//! install.accept_receipt("a receipt")?;
//! # Ok::<(), entitle::Error>(())
//! ```
//!
//! ```compile_fail
//! # let install = entitle::Engine::builder("acme-cad").in_memory().build()?;
//! install.ingest_report("a report")?;
//! # Ok::<(), entitle::Error>(())
//! ```

#[cfg(feature = "server")]
pub mod online;

use crate::clock::{Clock, Timestamp};
use crate::engine::{Engine, EngineBuilder, LicenseInfo, Page, Query};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::token::{Keyring, PublicKey};

pub use crate::engine::airgap::{AcceptedReceipt, IngestedReport, SequenceGap};
pub use crate::engine::{ActivationInfo, ActivationRequest};

/// The vendor's books for one product: activations counted for customers'
/// devices, receipts accepted, reports ingested. Cheap to clone (clones
/// share everything); `Send + Sync`.
///
/// Open them with [`Books::builder`], on a store of their own (never an
/// install's state).
///
/// ```
/// use entitle::books::Books;
/// use entitle::store::FileStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let books = Books::builder("acme-cad")
///     .store(FileStore::create(dir.path())?)
///     .build()?;
/// assert_eq!(books.product(), "acme-cad");
/// assert!(books.activations().is_empty());
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Clone)]
pub struct Books {
    /// The state and its writer. The books have no device of their own,
    /// so no install-side answer it could give means anything here: only
    /// the books' methods reach it.
    engine: Engine,
}

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Books")
            .field("engine", &self.engine)
            .finish()
    }
}

/// Builds [`Books`]: the vendor keys they trust, their clock, and the
/// store they keep their state in (required).
///
/// ```
/// use entitle::books::Books;
/// use entitle::token::SigningKey;
/// use entitle::{ManualClock, Timestamp};
///
/// let vendor = SigningKey::generate()?;
/// let books = Books::builder("acme-cad")
///     .in_memory()
///     .trust(vendor.public_key().clone())
///     .clock(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z")?))
///     .background_refresh(false)
///     .build()?;
/// assert_eq!(books.now().to_string(), "2026-01-01T00:00:00Z");
/// # Ok::<(), entitle::Error>(())
/// ```
#[derive(Debug)]
pub struct BooksBuilder {
    engine: EngineBuilder,
    has_store: bool,
}

impl BooksBuilder {
    /// Trusts one more vendor key: licenses added to the books must be
    /// signed by a trusted key.
    ///
    /// ```
    /// # let vendor = entitle::token::SigningKey::generate()?;
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .trust(vendor.public_key().clone())
    ///     .build()?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn trust(mut self, key: PublicKey) -> Self {
        self.engine = self.engine.trust(key);
        self
    }

    /// Trusts every key of `keyring` (replacing any trusted before).
    ///
    /// ```
    /// use entitle::token::{Keyring, SigningKey};
    /// let mut keyring = Keyring::new();
    /// keyring.add(SigningKey::generate()?.public_key().clone());
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .keyring(keyring)
    ///     .build()?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.engine = self.engine.keyring(keyring);
        self
    }

    /// The clock (default: the system clock). The books date what they
    /// record by it, and flag a report dated more than a day after it.
    ///
    /// ```
    /// use entitle::{ManualClock, Timestamp};
    /// let clock = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z")?);
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .clock(clock.clone())
    ///     .build()?;
    /// clock.advance(60);
    /// assert_eq!(books.now().to_string(), "2026-01-01T00:01:00Z");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.engine = self.engine.clock(clock);
        self
    }

    /// Where the books live: a [`FileStore`](crate::store::FileStore)
    /// directory, or a `PgStore` namespace that several of the vendor's
    /// processes share (they count exactly together). One of `store(..)`
    /// and [`in_memory`](Self::in_memory) is required.
    ///
    /// ```
    /// use entitle::store::FileStore;
    /// let dir = tempfile::tempdir().unwrap();
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .store(FileStore::create(dir.path())?)
    ///     .build()?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn store<S: Store>(mut self, store: S) -> Self {
        self.engine = self.engine.store(store);
        self.has_store = true;
        self
    }

    /// Keeps the books in memory only, lost when they are dropped: for
    /// tests. Every activation counted is forgotten.
    ///
    /// ```
    /// let books = entitle::books::Books::builder("acme-cad").in_memory().build()?;
    /// assert!(books.licenses().is_empty());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.engine = self.engine.in_memory();
        self.has_store = true;
        self
    }

    /// Whether a background thread picks up, every second, what other
    /// processes sharing the store recorded (default: on). Without it,
    /// call [`Books::refresh`] before reading; what the books record is
    /// always counted against the store's latest state.
    ///
    /// ```
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .background_refresh(false)
    ///     .build()?;
    /// books.refresh()?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn background_refresh(mut self, on: bool) -> Self {
        self.engine = self.engine.background_refresh(on);
        self
    }

    /// Opens the store and reads the books. Refused when no store was
    /// given (`INVALID_ARGUMENT`, naming the calls), when the store holds
    /// another product's state, or when it cannot be read.
    ///
    /// ```
    /// let missing = entitle::books::Books::builder("acme-cad").build().unwrap_err();
    /// assert!(missing.to_string().contains(".in_memory()"));
    /// ```
    pub fn build(self) -> Result<Books> {
        if !self.has_store {
            return Err(Error::InvalidArgument(
                "the books have nowhere to keep their state: call \
                 .store(FileStore::create(dir)?) to keep the activations they count, or \
                 .in_memory() to keep them only while the books live"
                    .into(),
            ));
        }
        Ok(Books {
            engine: self.engine.build()?,
        })
    }
}

impl Books {
    /// Starts building the books of `product`.
    ///
    /// ```
    /// let books = entitle::books::Books::builder("acme-cad").in_memory().build()?;
    /// assert_eq!(books.product(), "acme-cad");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn builder(product: impl Into<String>) -> BooksBuilder {
        // The books are no device: nothing they do depends on the machine
        // they run on, and they never detect one.
        BooksBuilder {
            engine: Engine::builder(product)
                .without_machine_id()
                .virtual_machine(false),
            has_store: false,
        }
    }

    /// The product these books keep.
    ///
    /// ```
    /// let books = entitle::books::Books::builder("acme-cad").in_memory().build()?;
    /// assert_eq!(books.product(), "acme-cad");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn product(&self) -> &str {
        self.engine.product()
    }

    /// The current time by the books' clock.
    ///
    /// ```
    /// use entitle::{ManualClock, Timestamp};
    /// let at = Timestamp::parse("2026-01-01T00:00:00Z")?;
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .clock(ManualClock::new(at))
    ///     .build()?;
    /// assert_eq!(books.now(), at);
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn now(&self) -> Timestamp {
        self.engine.now()
    }

    /// Records a customer's license (armored or a bare token), so that
    /// the books count its activations against its `max`. Re-adding the
    /// same token does nothing and succeeds; a newer serial replaces it.
    ///
    /// Refused with `PRODUCT_MISMATCH`, `LICENSE_REVOKED` (removed for
    /// good here), `LICENSE_REPLAYED` (an older serial), or the
    /// verification errors (a key the books do not trust).
    ///
    /// ```
    /// use entitle::token::{sign, SigningKey, TokenType};
    /// let vendor = SigningKey::generate()?;
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .trust(vendor.public_key().clone())
    ///     .build()?;
    /// let license = sign(&serde_json::json!({
    ///     "v": 1, "id": "lic_1", "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
    ///     "activations": {"max": 2, "counted_by": "vendor"}
    /// }), &vendor, TokenType::License)?;
    /// assert_eq!(books.add_license(&license)?, "lic_1");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn add_license(&self, token: &str) -> Result<String> {
        self.engine.add_license(token)
    }

    /// Removes a customer's license from the books, returning what it
    /// was. A `hard` removal leaves a tombstone: the id can never be added
    /// again (`LICENSE_REVOKED`); a soft one refuses an id that is not
    /// there (`LICENSE_NOT_FOUND`).
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # let vendor = SigningKey::generate()?;
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z"}), &vendor, TokenType::License)?;
    /// books.add_license(&license)?;
    /// let removed = books.remove_license("lic_1", false)?.unwrap();
    /// assert_eq!(removed.id, "lic_1");
    /// assert!(books.licenses().is_empty());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn remove_license(&self, id: &str, hard: bool) -> Result<Option<LicenseInfo>> {
        self.engine.remove_license(id, hard)
    }

    /// The customers' licenses in the books, by id, each with its
    /// activations counted here (`activations.used`) and transfers.
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # let vendor = SigningKey::generate()?;
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z",
    /// #     "activations": {"max": 2, "counted_by": "vendor"}}), &vendor, TokenType::License)?;
    /// books.add_license(&license)?;
    /// let licenses = books.licenses();
    /// assert_eq!(licenses[0].activations.as_ref().unwrap().max, Some(2));
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn licenses(&self) -> Vec<LicenseInfo> {
        self.engine.license_infos()
    }

    /// A page of the licenses the books hold, filtered, ordered and cut as
    /// `query` says ([`license_query`](crate::engine::license_query)
    /// reads one from text, as the admin API takes it).
    ///
    /// ```
    /// # use entitle::books::Books;
    /// let books = Books::builder("acme").in_memory().build()?;
    /// let query = entitle::engine::license_query(None, Some("id"), Some(10), None)?;
    /// let page = books.license_page(&query)?;
    /// assert!(page.items.is_empty() && page.next_cursor.is_none());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn license_page(&self, query: &Query) -> Result<Page<LicenseInfo>> {
        self.engine.licenses(query)
    }

    /// The vendor's side of an offline activation: records that a machine
    /// certificate is being issued for the request's device, so that it
    /// counts toward the license's `max` activations. Call it before
    /// signing the certificate: a device over `max` is refused, and
    /// nothing should be signed then.
    ///
    /// The books count whatever the license's `counted_by` says: they are
    /// the authority. A device counts by its fingerprint and install key:
    /// the same pair again (a certificate issued again) counts once; the
    /// install key is kept, and the device's receipts and reports are
    /// checked against it. `expires_at` is the certificate's end, after
    /// which the device counts no longer.
    ///
    /// Refused with `LICENSE_NOT_FOUND` (add the license first),
    /// `INVALID_ARGUMENT` (a license that is not node-locked) or
    /// `ACTIVATION_LIMIT`.
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # use entitle::Engine;
    /// # let vendor = SigningKey::generate()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z",
    /// #     "activations": {"max": 1, "counted_by": "vendor"}}), &vendor, TokenType::License)?;
    /// # let install = |fingerprint: &str| -> entitle::Result<Engine> {
    /// #     let engine = Engine::builder("acme-cad").in_memory()
    /// #         .trust(vendor.public_key().clone()).fingerprint(fingerprint)
    /// #         .virtual_machine(false).build()?;
    /// #     engine.add_license(&license)?;
    /// #     Ok(engine)
    /// # };
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # books.add_license(&license)?;
    /// let request = install("desk-1")?.activation_request(None)?;
    /// books.record_issued_certificate(&request, None)?;
    /// books.record_issued_certificate(&request, None)?; // the same device: counted once
    ///
    /// let another = install("desk-2")?.activation_request(None)?;
    /// let refused = books.record_issued_certificate(&another, None).unwrap_err();
    /// assert_eq!(refused.code(), "ACTIVATION_LIMIT");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn record_issued_certificate(
        &self,
        request: &ActivationRequest,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        self.engine.record_issued_certificate(request, expires_at)
    }

    /// Takes a deactivation receipt an install signed (armored or bare):
    /// verified against the install key recorded for its device, it frees
    /// that activation and counts a transfer, so the license's slot can
    /// go to another device. A receipt is accepted once.
    ///
    /// Refused with `RECEIPT_INVALID` (forged, altered, another
    /// install's, or for a device these books do not hold activated),
    /// `RECEIPT_REPLAYED` (accepted before) or `TRANSFER_LIMIT`.
    ///
    /// ```
    /// # use entitle::token::{armor, sign, SigningKey, TokenType};
    /// # use entitle::Engine;
    /// # let vendor = SigningKey::generate()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z",
    /// #     "activations": {"max": 1, "counted_by": "vendor"}}), &vendor, TokenType::License)?;
    /// # let install = Engine::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).fingerprint("desk-1")
    /// #     .virtual_machine(false).build()?;
    /// # install.add_license(&license)?;
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # books.add_license(&license)?;
    /// # let request = install.activation_request(None)?;
    /// # books.record_issued_certificate(&request, None)?;
    /// # let certificate = sign(&serde_json::json!({"v": 1, "license_id": "lic_1",
    /// #     "fingerprint": "desk-1", "issued_at": "2026-01-01T00:00:00Z",
    /// #     "install_key": request.install_key}), &vendor, TokenType::Machine)?;
    /// # install.apply(&armor(&certificate, TokenType::Machine))?;
    /// // The install retired desk-1 offline and the receipt was carried here.
    /// let receipt = install.deactivate_with_receipt("desk-1", None)?;
    /// let accepted = books.accept_receipt(&receipt.token)?;
    /// assert_eq!(accepted.transfers, 1);
    /// assert!(books.activations().is_empty());
    /// assert_eq!(books.accept_receipt(&receipt.token).unwrap_err().code(), "RECEIPT_REPLAYED");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn accept_receipt(&self, text: &str) -> Result<AcceptedReceipt> {
        self.engine.accept_receipt(text)
    }

    /// Takes a usage report an install signed (armored or bare): verified
    /// against an install key recorded for its device, and kept. What it
    /// returns says what the books learned: a gap in the sequence
    /// ([`IngestedReport::missing`]), a report that does not follow the
    /// last one from the device ([`IngestedReport::fork`]: a restored or
    /// copied install), one dated more than a day ahead
    /// ([`IngestedReport::clock_ahead`]).
    ///
    /// Refused with `REPORT_INVALID` (forged, altered, another install's,
    /// or from a device whose key these books never recorded) or
    /// `REPORT_REPLAYED` (a sequence at or below the last one taken from
    /// the device).
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # use entitle::Engine;
    /// # let vendor = SigningKey::generate()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z",
    /// #     "activations": {"max": 1, "counted_by": "vendor"}}), &vendor, TokenType::License)?;
    /// # let install = Engine::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).fingerprint("desk-1")
    /// #     .virtual_machine(false).build()?;
    /// # install.add_license(&license)?;
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # books.add_license(&license)?;
    /// // The request the vendor answered carried the install's key.
    /// books.record_issued_certificate(&install.activation_request(None)?, None)?;
    /// let report = install.usage_report()?;
    /// let ingested = books.ingest_report(&report.token)?;
    /// assert_eq!(ingested.report.sequence, 1);
    /// assert!(ingested.missing.is_empty());
    /// assert_eq!(books.ingest_report(&report.token).unwrap_err().code(), "REPORT_REPLAYED");
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn ingest_report(&self, text: &str) -> Result<IngestedReport> {
        self.engine.ingest_report(text)
    }

    /// Frees a device's slot by hand, for every license the books count
    /// it under, counting one transfer each (`TRANSFER_LIMIT` when none
    /// are left): for a device the customer lost, or one the books
    /// recorded before installs had keys (no receipt can free it).
    /// `NOT_ACTIVATED` when the books hold no activation of it.
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # use entitle::Engine;
    /// # let vendor = SigningKey::generate()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z",
    /// #     "activations": {"max": 1, "counted_by": "vendor"}}), &vendor, TokenType::License)?;
    /// # let install = Engine::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).fingerprint("desk-1")
    /// #     .virtual_machine(false).build()?;
    /// # install.add_license(&license)?;
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # books.add_license(&license)?;
    /// books.record_issued_certificate(&install.activation_request(None)?, None)?;
    /// assert_eq!(books.deactivate("desk-1")?, ["lic_1"]);
    /// assert!(books.activations().is_empty());
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn deactivate(&self, fingerprint: &str) -> Result<Vec<String>> {
        self.engine.deactivate(fingerprint)
    }

    /// Every device the books count or counted, live or lapsed (a
    /// certificate that ended), with the install key recorded for it.
    ///
    /// ```
    /// # use entitle::token::{sign, SigningKey, TokenType};
    /// # use entitle::Engine;
    /// # let vendor = SigningKey::generate()?;
    /// # let license = sign(&serde_json::json!({"v": 1, "id": "lic_1", "product": "acme-cad",
    /// #     "issued_at": "2026-01-01T00:00:00Z",
    /// #     "activations": {"max": 1, "counted_by": "vendor"}}), &vendor, TokenType::License)?;
    /// # let install = Engine::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).fingerprint("desk-1")
    /// #     .virtual_machine(false).build()?;
    /// # install.add_license(&license)?;
    /// # let books = entitle::books::Books::builder("acme-cad").in_memory()
    /// #     .trust(vendor.public_key().clone()).build()?;
    /// # books.add_license(&license)?;
    /// let request = install.activation_request(None)?;
    /// books.record_issued_certificate(&request, None)?;
    /// let counted = books.activations();
    /// assert_eq!(counted[0].fingerprint, "desk-1");
    /// assert_eq!(counted[0].install_key, request.install_key);
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn activations(&self) -> Vec<ActivationInfo> {
        self.engine.activations()
    }

    /// Picks up what other processes sharing the store recorded. A
    /// background thread does it every second unless the builder turned
    /// it off ([`BooksBuilder::background_refresh`]).
    ///
    /// ```
    /// let books = entitle::books::Books::builder("acme-cad")
    ///     .in_memory()
    ///     .background_refresh(false)
    ///     .build()?;
    /// books.refresh()?;
    /// # Ok::<(), entitle::Error>(())
    /// ```
    pub fn refresh(&self) -> Result<()> {
        self.engine.refresh()
    }
}
