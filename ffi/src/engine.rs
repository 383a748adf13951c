//! `entitle_engine`: an install's engine on its state directory, and the
//! calls that change or read it.

use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use entitle::client::Client;
use entitle::token::PublicKey;

use entitle::store::FileStore;
use entitle::token::Keyring;
use entitle::Engine;

use crate::decision::entitle_decision;
use crate::error::{boundary, fail};
use crate::handle::{self, Handle, Kind};
use crate::options::entitle_options;
use crate::status::entitle_status;
use crate::strings::{optional_str_in, str_in, str_out};

/// An engine enforcing one product's licenses on this device: made by
/// [`entitle_engine_open`], released by [`entitle_engine_free`]. Safe to
/// use from several threads at once.
#[derive(Clone)]
pub struct entitle_engine {
    pub(crate) engine: Engine,
    /// The clients of license servers this engine took seats from, by
    /// address and key: one client per server, so that asking again for
    /// a pool while a lease of it lives shares that lease, as the
    /// engine's own leases do.
    pub(crate) servers: Arc<Mutex<Servers>>,
}

/// License servers' clients, by address and the key's PEM text.
type Servers = HashMap<(String, String), Arc<Client>>;

impl entitle_engine {
    /// The client of the server at `urls` (one address, or several
    /// redundant servers separated by whitespace, asked in that order)
    /// trusting `key_pem`, made on first use.
    pub(crate) fn server(&self, urls: &str, key_pem: &str) -> Result<Arc<Client>, entitle_status> {
        let urls: Vec<&str> = urls
            .split_whitespace()
            .map(|url| url.trim_end_matches('/'))
            .collect();
        let id = (urls.join(" "), key_pem.trim().to_owned());
        // A panic while the lock was held (caught at the boundary) left
        // the map whole: entries are inserted in one step.
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = servers.get(&id) {
            return Ok(Arc::clone(client));
        }
        let key = PublicKey::from_pem(key_pem)?;
        let client = Arc::new(Client::connect_any(&self.engine, &urls, key)?);
        servers.insert(id, Arc::clone(&client));
        Ok(client)
    }
}

impl Handle for entitle_engine {
    const KIND: Kind = Kind::Engine;
}

/// Opens the engine of `product` on the state directory `state_dir`
/// (made if missing; NULL keeps the state in memory only, for tests),
/// trusting the vendor's public keys in `trusted_keys_pem` (one or more
/// PEM `PUBLIC KEY` blocks, as `entitle keygen` writes them to
/// `VENDOR.pub`). On success `*engine_out` is the engine.
///
/// A state made by `entitle init` works as it is: the device it names
/// (`init --fingerprint`) is this one. The keys are the program's own,
/// whatever the state says. Fails with `ENTITLE_INVALID_ARGUMENT` (no key,
/// an empty product, a state of another product), `ENTITLE_MALFORMED` (a
/// key that does not read), `ENTITLE_STATE_CORRUPT`, `ENTITLE_IO_ERROR`.
///
/// # Safety
///
/// The strings are NULL or NUL-terminated; `engine_out` is NULL or points
/// to a writable `entitle_engine *`.
///
/// ```
/// use entitle_ffi::*;
/// use std::ffi::CString;
///
/// let vendor = entitle::token::SigningKey::generate().unwrap();
/// let pem = CString::new(vendor.public_key().to_pem()).unwrap();
/// let product = CString::new("acme-cad").unwrap();
/// let mut engine = std::ptr::null_mut();
/// let status = unsafe {
///     entitle_engine_open(product.as_ptr(), pem.as_ptr(), std::ptr::null(), &mut engine)
/// };
/// assert_eq!(status, entitle_status::ENTITLE_OK);
/// unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_engine_open(
    product: *const c_char,
    trusted_keys_pem: *const c_char,
    state_dir: *const c_char,
    engine_out: *mut *mut entitle_engine,
) -> entitle_status {
    // SAFETY: the caller's promises, passed on; no options.
    unsafe {
        entitle_engine_open_with(
            product,
            trusted_keys_pem,
            state_dir,
            std::ptr::null(),
            engine_out,
        )
    }
}

/// As [`entitle_engine_open`], telling the engine what `options` say of
/// this program: its version, release channel and release date (see
/// [`entitle_options_new`](crate::entitle_options_new)), which licenses
/// with `versions`, `channels` or `maintenance_until` are checked
/// against. `options` NULL is [`entitle_engine_open`]; a freed or made-up
/// handle is `ENTITLE_INVALID_HANDLE`. The options may be freed as soon
/// as this returns.
///
/// # Safety
///
/// As [`entitle_engine_open`]; `options` is NULL or a handle from
/// [`entitle_options_new`](crate::entitle_options_new).
///
/// ```
/// use entitle_ffi::*;
/// use std::ffi::CString;
/// use std::ptr;
///
/// let vendor = entitle::token::SigningKey::generate().unwrap();
/// let c = |s: &str| CString::new(s).unwrap();
/// // A license for versions 2.x of the stable channel.
/// let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
///     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
///     "versions": ">=2.0, <3", "channels": ["stable"], "features": [{"code": "export"}]}),
///     &vendor, entitle::token::TokenType::License).unwrap();
/// let pem = c(&vendor.public_key().to_pem());
///
/// let mut options = ptr::null_mut();
/// unsafe {
///     entitle_options_new(&mut options);
///     entitle_options_set_version(options, c("2.3.1").as_ptr());
///     entitle_options_set_channel(options, c("stable").as_ptr());
/// }
/// let mut engine = ptr::null_mut();
/// let status = unsafe {
///     entitle_engine_open_with(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), options,
///         &mut engine)
/// };
/// assert_eq!(status, entitle_status::ENTITLE_OK);
/// unsafe { entitle_options_free(options) };
/// unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let mut gate = ptr::null_mut();
/// unsafe { entitle_gate_new(engine, c("export").as_ptr(), &mut gate) };
/// assert_eq!(unsafe { entitle_gate_check(gate) }, 1);
/// unsafe { entitle_gate_free(gate) };
/// unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_engine_open_with(
    product: *const c_char,
    trusted_keys_pem: *const c_char,
    state_dir: *const c_char,
    options: *const entitle_options,
    engine_out: *mut *mut entitle_engine,
) -> entitle_status {
    boundary(|| {
        // SAFETY (all three): the caller's promise on the strings.
        let product = unsafe { str_in(product, "product") }?;
        let pems = unsafe { str_in(trusted_keys_pem, "trusted_keys_pem") }?;
        let state_dir = unsafe { optional_str_in(state_dir, "state_dir") }?;
        let options = if options.is_null() {
            None
        } else {
            Some(handle::get(options, "options")?)
        };
        if engine_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`engine_out` is NULL"));
        }
        let keyring = Keyring::from_pems(pem_blocks(pems))?;
        if pem_blocks(pems).next().is_none() {
            return Err(fail(
                entitle_status::ENTITLE_INVALID_ARGUMENT,
                "`trusted_keys_pem` holds no PEM public key: pass the vendor's `.pub` file's \
                 text (-----BEGIN PUBLIC KEY----- ...)",
            ));
        }
        let builder = Engine::builder(product).keyring(keyring);
        let builder = match &options {
            Some(options) => options.apply(builder),
            None => builder,
        };
        let builder = match state_dir {
            None => builder.in_memory(),
            Some(dir) => {
                let store = FileStore::create(dir)?;
                // The device `entitle init --fingerprint` named, so that
                // the activations made for it are found; the engine binds
                // it to this machine.
                let named = store.settings()?.install.and_then(|i| i.device);
                let builder = builder.store(store);
                match named {
                    Some(name) => builder.named_device(name),
                    None => builder,
                }
            }
        };
        let engine = builder.build()?;
        let handle = handle::into_raw(entitle_engine {
            engine,
            servers: Arc::default(),
        });
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { engine_out.write(handle) };
        Ok(())
    })
}

/// The PEM blocks of a text holding several.
fn pem_blocks(text: &str) -> impl Iterator<Item = &str> {
    const END: &str = "-----END PUBLIC KEY-----";
    text.split_inclusive(END)
        .filter(|block| block.contains(END))
}

/// Releases an engine. NULL does nothing. Gates and leases made from it
/// keep working (they hold the engine) until they are freed too.
///
/// # Safety
///
/// `engine` is NULL or a handle from [`entitle_engine_open`]; freeing it
/// twice is detected and ignored.
#[no_mangle]
pub unsafe extern "C" fn entitle_engine_free(engine: *mut entitle_engine) {
    boundary(|| {
        handle::release(engine, |_| {});
        Ok(())
    });
}

/// Runs `body` on the live engine `engine`.
fn with_engine(
    engine: *const entitle_engine,
    body: impl FnOnce(&Engine) -> Result<(), entitle_status>,
) -> entitle_status {
    boundary(|| body(&handle::get(engine, "engine")?.engine))
}

/// Verifies and installs a license (the armored file `entitle issue`
/// writes, or its token). Fails with the engine's code:
/// `ENTITLE_SIGNATURE_INVALID`, `ENTITLE_UNKNOWN_KEY`,
/// `ENTITLE_PRODUCT_MISMATCH`, `ENTITLE_LICENSE_REPLAYED`...
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `license_text` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn entitle_add_license(
    engine: *const entitle_engine,
    license_text: *const c_char,
) -> entitle_status {
    with_engine(engine, |engine| {
        // SAFETY: the caller's promise on the string.
        let text = unsafe { str_in(license_text, "license_text") }?;
        engine.add_license(text)?;
        Ok(())
    })
}

/// Activates this device for the node-locked licenses the install counts
/// (`ENTITLE_ACTIVATION_LIMIT` when full, `ENTITLE_CERTIFICATE_REQUIRED`
/// for a license only the vendor's certificate activates: send
/// [`entitle_request`]'s request to the vendor).
///
/// # Safety
///
/// `engine` is a live handle (or NULL).
#[no_mangle]
pub unsafe extern "C" fn entitle_activate_this_device(
    engine: *const entitle_engine,
) -> entitle_status {
    with_engine(engine, |engine| {
        engine.activate_this_device()?;
        Ok(())
    })
}

/// Writes this device's offline activation request (JSON, for the only
/// node-locked license installed; docs/formats.md#activation-request)
/// into `buf`. Each call makes a new request; its size is the same
/// from one call to the next, so asking the size first works.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `buf` is NULL or `len` writable
/// bytes; `needed` is NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn entitle_request(
    engine: *const entitle_engine,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> entitle_status {
    with_engine(engine, |engine| {
        let request = engine.activation_request(None)?;
        let text = serde_json::to_string_pretty(&request).map_err(|e| {
            fail(
                entitle_status::ENTITLE_INVALID_ARGUMENT,
                format!("cannot write the activation request: {e}"),
            )
        })?;
        // SAFETY: the caller's promise on `buf`, `len` and `needed`.
        unsafe { str_out(&text, buf, len, needed) }
    })
}

/// Applies a signed file from the vendor: a license, a machine
/// certificate (the answer to a request), a revocation list or a key
/// rotation.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `text` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn entitle_apply(
    engine: *const entitle_engine,
    text: *const c_char,
) -> entitle_status {
    with_engine(engine, |engine| {
        // SAFETY: the caller's promise on the string.
        let text = unsafe { str_in(text, "text") }?;
        engine.apply(text)?;
        Ok(())
    })
}

/// Whether `feature` may be used now, with why and until when, into
/// `*decision_out`. The same answer as a gate of the feature (this
/// program's leases and the meter count), at the cost of finding the
/// feature by name: for checks in a loop, make a gate once. The engine
/// keeps a gate for each name it was asked about, so names should come
/// from the program, not from its input.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `feature` is NULL or
/// NUL-terminated; `decision_out` is NULL or a writable
/// `entitle_decision`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
/// #     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z", "features": [
/// #     {"code": "export"}, {"code": "render", "consumption": {"max": 1}}]}),
/// #     &vendor, entitle::token::TokenType::License).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// # unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let mut decision = std::mem::MaybeUninit::<entitle_decision>::uninit();
/// let status = unsafe { entitle_check_feature(engine, c("export").as_ptr(), decision.as_mut_ptr()) };
/// assert_eq!(status, entitle_status::ENTITLE_OK);
/// let decision = unsafe { decision.assume_init() };
/// assert!(decision.allowed);
/// assert_eq!(decision.reason, entitle_status::ENTITLE_OK);
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_check_feature(
    engine: *const entitle_engine,
    feature: *const c_char,
    decision_out: *mut entitle_decision,
) -> entitle_status {
    with_engine(engine, |engine| {
        // SAFETY: the caller's promise on the string.
        let feature = unsafe { str_in(feature, "feature") }?;
        if decision_out.is_null() {
            return Err(fail(entitle_status::ENTITLE_NULL, "`decision_out` is NULL"));
        }
        let decision = entitle_decision::from(engine.feature(feature).check());
        // SAFETY: not NULL, writable by the caller's promise.
        unsafe { decision_out.write(decision) };
        Ok(())
    })
}

/// Records `amount` units of the metered `feature`, all or nothing
/// (`ENTITLE_CONSUMPTION_LIMIT` when they do not fit; nothing is charged
/// then). Durable before it returns.
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `feature` is NULL or
/// NUL-terminated.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
/// #     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z", "features": [
/// #     {"code": "export"}, {"code": "render", "consumption": {"max": 1}}]}),
/// #     &vendor, entitle::token::TokenType::License).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// # unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let render = c("render");
/// assert_eq!(unsafe { entitle_consume(engine, render.as_ptr(), 1) }, entitle_status::ENTITLE_OK);
/// assert_eq!(unsafe { entitle_consume(engine, render.as_ptr(), 1) },
///     entitle_status::ENTITLE_CONSUMPTION_LIMIT);
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_consume(
    engine: *const entitle_engine,
    feature: *const c_char,
    amount: u64,
) -> entitle_status {
    with_engine(engine, |engine| {
        // SAFETY: the caller's promise on the string.
        let feature = unsafe { str_in(feature, "feature") }?;
        engine.consume(feature, amount)?;
        Ok(())
    })
}

/// Writes the installed licenses as a JSON array into `buf`: each as
/// `entitle license list` shows it (`id`, `status`, `expires_at`,
/// `features` with their consumption and floating pools...).
///
/// # Safety
///
/// `engine` is a live handle (or NULL); `buf` is NULL or `len` writable
/// bytes; `needed` is NULL or a writable `size_t`.
///
/// ```
/// # use entitle_ffi::*;
/// # use std::ffi::CString;
/// # use std::ptr;
/// # let vendor = entitle::token::SigningKey::generate().unwrap();
/// # let c = |s: &str| CString::new(s).unwrap();
/// # let license = entitle::token::sign(&serde_json::json!({"v": 1, "id": "lic_1",
/// #     "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z", "features": [
/// #     {"code": "export"}, {"code": "render", "consumption": {"max": 1}}]}),
/// #     &vendor, entitle::token::TokenType::License).unwrap();
/// # let mut engine = ptr::null_mut();
/// # let pem = c(&vendor.public_key().to_pem());
/// # unsafe { entitle_engine_open(c("acme-cad").as_ptr(), pem.as_ptr(), ptr::null(), &mut engine) };
/// # unsafe { entitle_add_license(engine, c(&license).as_ptr()) };
/// let mut needed = 0usize;
/// let status = unsafe { entitle_license_info_json(engine, ptr::null_mut(), 0, &mut needed) };
/// assert_eq!(status, entitle_status::ENTITLE_BUFFER_TOO_SMALL);
/// let mut buf = vec![0 as std::ffi::c_char; needed];
/// let status = unsafe { entitle_license_info_json(engine, buf.as_mut_ptr(), buf.len(), &mut needed) };
/// assert_eq!(status, entitle_status::ENTITLE_OK);
/// let json = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
/// assert!(json.starts_with("[{\"id\":\"lic_1\""), "{json}");
/// # unsafe { entitle_engine_free(engine) };
/// ```
#[no_mangle]
pub unsafe extern "C" fn entitle_license_info_json(
    engine: *const entitle_engine,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> entitle_status {
    with_engine(engine, |engine| {
        let text = serde_json::to_string(&engine.license_infos()).map_err(|e| {
            fail(
                entitle_status::ENTITLE_INVALID_ARGUMENT,
                format!("cannot write the licenses as JSON: {e}"),
            )
        })?;
        // SAFETY: the caller's promise on `buf`, `len` and `needed`.
        unsafe { str_out(&text, buf, len, needed) }
    })
}
