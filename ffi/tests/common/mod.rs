//! What the tests of the C ABI share: a vendor, its licenses, and the
//! calls made as C makes them.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use entitle::token::{sign, SigningKey, TokenType};
use entitle_ffi::*;

/// A vendor key and the text of its public key.
pub struct Vendor {
    pub key: SigningKey,
    pub pem: CString,
}

impl Vendor {
    pub fn new() -> Vendor {
        let key = SigningKey::generate().expect("a key");
        let pem = CString::new(key.public_key().to_pem()).expect("PEM has no NUL");
        Vendor { key, pem }
    }

    /// A license of `acme-cad`: `export` plain, `render` metered (3 units),
    /// `simulate` floating (1 seat), plus `extra` fields.
    pub fn license(&self, id: &str, extra: serde_json::Value) -> CString {
        let mut doc = serde_json::json!({
            "v": 1, "id": id, "product": "acme-cad", "issued_at": "2026-01-01T00:00:00Z",
            "features": [
                {"code": "export"},
                {"code": "render", "consumption": {"max": 3}},
                {"code": "simulate", "floating": {"seats": 1, "lease_secs": 600}}
            ]
        });
        if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
            doc.extend(extra.clone());
        }
        let token = sign(&doc, &self.key, TokenType::License).expect("signed");
        CString::new(token).expect("a token has no NUL")
    }

    /// An engine on `dir` (None: in memory), opened through the C ABI.
    pub fn open(&self, dir: Option<&std::path::Path>) -> *mut entitle_engine {
        let product = c("acme-cad");
        let dir = dir.map(|d| c(d.to_str().expect("a UTF-8 temp dir")));
        let mut engine = ptr::null_mut();
        let status = unsafe {
            entitle_engine_open(
                product.as_ptr(),
                self.pem.as_ptr(),
                dir.as_ref().map_or(ptr::null(), |d| d.as_ptr()),
                &mut engine,
            )
        };
        assert_eq!(status, entitle_status::ENTITLE_OK, "{}", last_error());
        assert!(!engine.is_null());
        engine
    }
}

pub fn c(text: &str) -> CString {
    CString::new(text).expect("no NUL")
}

/// This thread's last error, through `entitle_last_error`.
pub fn last_error() -> String {
    let mut needed = 0usize;
    let status = unsafe { entitle_last_error(ptr::null_mut(), 0, &mut needed) };
    assert!(matches!(
        status,
        entitle_status::ENTITLE_OK | entitle_status::ENTITLE_BUFFER_TOO_SMALL
    ));
    let mut buf = vec![0 as c_char; needed];
    let status = unsafe { entitle_last_error(buf.as_mut_ptr(), buf.len(), &mut needed) };
    assert_eq!(status, entitle_status::ENTITLE_OK);
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .expect("UTF-8")
        .to_owned()
}

/// A text out of a function that writes into a caller's buffer, asking the
/// size first as a C program does.
pub fn text_out(
    call: impl Fn(*mut c_char, usize, *mut usize) -> entitle_status,
) -> Result<String, entitle_status> {
    let mut needed = 0usize;
    match call(ptr::null_mut(), 0, &mut needed) {
        entitle_status::ENTITLE_BUFFER_TOO_SMALL => {}
        other => return Err(other),
    }
    let mut buf = vec![0 as c_char; needed];
    let mut again = 0usize;
    match call(buf.as_mut_ptr(), buf.len(), &mut again) {
        entitle_status::ENTITLE_OK => {}
        other => return Err(other),
    }
    assert_eq!(again, needed);
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .expect("UTF-8")
        .to_owned())
}

pub fn decision_of(engine: *const entitle_engine, feature: &str) -> entitle_decision {
    let feature = c(feature);
    let mut decision = entitle_decision {
        allowed: false,
        reason: entitle_status::ENTITLE_UNKNOWN_ERROR,
        warning: entitle_status::ENTITLE_UNKNOWN_ERROR,
        until_unix: -1,
    };
    let status = unsafe { entitle_check_feature(engine, feature.as_ptr(), &mut decision) };
    assert_eq!(status, entitle_status::ENTITLE_OK, "{}", last_error());
    decision
}

/// A license server (`entitle serve`'s own code) on 127.0.0.1, a free
/// port, in this test's process, over an in-memory install holding the
/// vendor's license `lic_server`. It serves until the test process ends.
pub struct LeaseServer {
    /// `http://127.0.0.1:PORT`.
    pub url: CString,
    /// The key its leases are signed with, as `--print-lease-pub` prints it.
    pub key_pem: CString,
    /// The install it serves (its leases are the server's).
    pub engine: entitle::Engine,
}

impl LeaseServer {
    pub fn start(vendor: &Vendor) -> LeaseServer {
        let engine = entitle::Engine::builder("acme-cad")
            .trust(vendor.key.public_key().clone())
            .in_memory()
            .build()
            .expect("the server's install");
        let license = vendor.license("lic_server", serde_json::json!({}));
        engine
            .add_license(license.to_str().expect("UTF-8"))
            .expect("the server's license");
        let key = engine.install_key().expect("an install key");
        let served = engine.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let config = entitle::server::ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
            let _ = entitle::server::run(served, config, move |addr| {
                let _ = tx.send(addr);
            });
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server listens");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        LeaseServer {
            url: c(&format!("http://{addr}")),
            key_pem: c(&key.to_pem()),
            engine,
        }
    }
}

/// A URL where nothing listens: a port bound, then closed.
pub fn closed_url() -> CString {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    c(&format!("http://{addr}"))
}
