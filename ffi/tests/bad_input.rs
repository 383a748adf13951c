//! The C entry points driven with what a careless or hostile caller
//! passes: NULL anywhere, bytes that are not UTF-8 (or not a license),
//! buffers of any size, handles freed, of another kind, or made up. Every
//! call must answer with a known status, leave a last error when it
//! fails, write its out-parameters only on success, and never crash.

mod common;

use std::ffi::{c_char, CString};
use std::ptr;

use common::{last_error, Vendor};
use entitle_ffi::entitle_status::*;
use entitle_ffi::*;
use proptest::prelude::*;

/// A string argument.
#[derive(Debug, Clone)]
enum Text {
    Null,
    /// Any bytes, cut at the first NUL.
    Bytes(Vec<u8>),
    /// A feature the licenses know.
    Feature(&'static str),
    /// A license the vendor signed.
    License,
}

/// Which handle a call gets.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Null,
    /// The n-th live one (modulo), if any.
    Live(usize),
    /// The n-th freed one, if any.
    Freed(usize),
    /// An address no handle ever had.
    MadeUp(usize),
    /// A live handle of another kind.
    OtherKind(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Open {
        product: Text,
        keys_valid: bool,
        keys: Text,
    },
    EngineFree(Pick),
    AddLicense(Pick, Text),
    Apply(Pick, Text),
    Activate(Pick),
    Request(Pick, usize, bool),
    Info(Pick, usize, bool),
    Check(Pick, Text, bool),
    Consume(Pick, Text, u64),
    GateNew(Pick, Text, bool),
    /// Only NULL or live gates: a freed gate's memory is not readable.
    GateCheck(Option<usize>),
    GateDecision(Pick, bool),
    GateFree(Pick),
    LeaseAcquire(Pick, Option<Text>, bool),
    /// An engine, the server's address, its key (valid or any text), the
    /// feature, and whether `lease_out` is NULL.
    LeaseFromServer(Pick, Url, Option<Text>, Option<Text>, bool),
    LeaseCheck(Pick, bool),
    LeaseId(Pick, usize, bool),
    LeaseExpires(Pick, bool),
    LeaseFree(Pick),
    OpenWith(Pick, bool),
    OptionsNew(bool),
    SetVersion(Pick, Text),
    SetChannel(Pick, Text),
    SetReleaseDate(Pick, i64),
    OptionsFree(Pick),
    UserAdd(Pick, Text, Text, bool),
    UserRemove(Pick, Text),
    CanAddUser(Pick, bool),
    Deactivate(Pick, Option<Text>, usize, bool),
    LastError(usize, bool),
    Message(u32),
}

/// Where a lease from a server is asked for.
#[derive(Debug, Clone)]
enum Url {
    /// A port on 127.0.0.1 nothing listens on.
    Closed,
    /// Any text.
    Text(Text),
}

fn url() -> impl Strategy<Value = Url> {
    prop_oneof![
        2 => Just(Url::Closed),
        1 => text().prop_map(Url::Text),
    ]
}

fn version() -> impl Strategy<Value = Text> {
    prop_oneof![
        3 => text(),
        2 => prop::sample::select(vec!["2.3.1", "1.0.0-beta.1", "stable", "2.3"]).prop_map(Text::Feature),
    ]
}

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        1 => Just(Text::Null),
        3 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Text::Bytes),
        3 => prop::sample::select(vec!["export", "render", "simulate", "nothing"]).prop_map(Text::Feature),
        2 => Just(Text::License),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        1 => Just(Pick::Null),
        6 => any::<usize>().prop_map(Pick::Live),
        2 => any::<usize>().prop_map(Pick::Freed),
        1 => (1usize..1 << 40).prop_map(|n| Pick::MadeUp(n << 4)),
        1 => any::<usize>().prop_map(Pick::OtherKind),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![Just(0usize), 1usize..8, Just(4096usize)];
    prop_oneof![
        2 => (text(), any::<bool>(), text()).prop_map(|(product, keys_valid, keys)| Op::Open { product, keys_valid, keys }),
        1 => pick().prop_map(Op::EngineFree),
        2 => (pick(), text()).prop_map(|(p, t)| Op::AddLicense(p, t)),
        1 => (pick(), text()).prop_map(|(p, t)| Op::Apply(p, t)),
        1 => pick().prop_map(Op::Activate),
        1 => (pick(), len.clone(), any::<bool>()).prop_map(|(p, n, z)| Op::Request(p, n, z)),
        2 => (pick(), len.clone(), any::<bool>()).prop_map(|(p, n, z)| Op::Info(p, n, z)),
        2 => (pick(), text(), any::<bool>()).prop_map(|(p, t, z)| Op::Check(p, t, z)),
        2 => (pick(), text(), 0u64..3).prop_map(|(p, t, n)| Op::Consume(p, t, n)),
        2 => (pick(), text(), any::<bool>()).prop_map(|(p, t, z)| Op::GateNew(p, t, z)),
        2 => proptest::option::of(any::<usize>()).prop_map(Op::GateCheck),
        1 => (pick(), any::<bool>()).prop_map(|(p, z)| Op::GateDecision(p, z)),
        1 => pick().prop_map(Op::GateFree),
        1 => (pick(), proptest::option::of(text()), any::<bool>()).prop_map(|(p, t, z)| Op::LeaseAcquire(p, t, z)),
        1 => (pick(), url(), proptest::option::of(text()), proptest::option::of(text()), any::<bool>())
            .prop_map(|(p, u, k, f, z)| Op::LeaseFromServer(p, u, k, f, z)),
        1 => (pick(), any::<bool>()).prop_map(|(p, z)| Op::LeaseCheck(p, z)),
        1 => (pick(), len.clone(), any::<bool>()).prop_map(|(p, n, z)| Op::LeaseId(p, n, z)),
        1 => (pick(), any::<bool>()).prop_map(|(p, z)| Op::LeaseExpires(p, z)),
        1 => pick().prop_map(Op::LeaseFree),
        1 => (pick(), any::<bool>()).prop_map(|(p, z)| Op::OpenWith(p, z)),
        1 => any::<bool>().prop_map(Op::OptionsNew),
        1 => (pick(), version()).prop_map(|(p, t)| Op::SetVersion(p, t)),
        1 => (pick(), text()).prop_map(|(p, t)| Op::SetChannel(p, t)),
        1 => (pick(), prop_oneof![Just(-1i64), Just(0), any::<i64>(), Just(i64::MAX)]).prop_map(|(p, d)| Op::SetReleaseDate(p, d)),
        1 => pick().prop_map(Op::OptionsFree),
        1 => (pick(), text(), text(), any::<bool>()).prop_map(|(p, u, t, z)| Op::UserAdd(p, u, t, z)),
        1 => (pick(), text()).prop_map(|(p, u)| Op::UserRemove(p, u)),
        1 => (pick(), any::<bool>()).prop_map(|(p, z)| Op::CanAddUser(p, z)),
        1 => (pick(), proptest::option::of(text()), len.clone(), any::<bool>()).prop_map(|(p, l, n, z)| Op::Deactivate(p, l, n, z)),
        1 => (len, any::<bool>()).prop_map(|(n, z)| Op::LastError(n, z)),
        1 => any::<u32>().prop_map(Op::Message),
    ]
}

/// The handles of one kind a run made: live, and freed.
struct Pool<T> {
    live: Vec<*mut T>,
    freed: Vec<*mut T>,
}

impl<T> Pool<T> {
    fn new() -> Self {
        Pool {
            live: Vec::new(),
            freed: Vec::new(),
        }
    }

    /// The handle `pick` names, and the status a call must fail with
    /// because of it (`None`: a live handle of this kind).
    fn get(&self, pick: Pick, others: &[*mut ()]) -> (*mut T, Option<entitle_status>) {
        match pick {
            Pick::Null => (ptr::null_mut(), Some(ENTITLE_NULL)),
            Pick::Live(n) if !self.live.is_empty() => (self.live[n % self.live.len()], None),
            Pick::Freed(n) if !self.freed.is_empty() => {
                let freed = self.freed[n % self.freed.len()];
                // An address freed and handed out again is live again.
                if self.live.contains(&freed) {
                    (freed, None)
                } else {
                    (freed, Some(ENTITLE_INVALID_HANDLE))
                }
            }
            Pick::OtherKind(n) if !others.is_empty() => (
                others[n % others.len()].cast(),
                Some(ENTITLE_INVALID_HANDLE),
            ),
            Pick::MadeUp(address) => (address as *mut T, Some(ENTITLE_INVALID_HANDLE)),
            _ => (ptr::null_mut(), Some(ENTITLE_NULL)),
        }
    }

    fn free(&mut self, handle: *mut T) {
        if let Some(i) = self.live.iter().position(|h| *h == handle) {
            self.live.swap_remove(i);
            self.freed.push(handle);
        }
    }
}

/// A string argument as C passes it: the CString to keep alive, and
/// whether it is a valid string at all (not NULL, UTF-8).
fn c_text(text: &Text, vendor: &Vendor) -> (Option<CString>, bool) {
    match text {
        Text::Null => (None, false),
        Text::Bytes(bytes) => {
            let cut: Vec<u8> = bytes.iter().copied().take_while(|b| *b != 0).collect();
            let utf8 = std::str::from_utf8(&cut).is_ok();
            (Some(CString::new(cut).expect("cut at NUL")), utf8)
        }
        Text::Feature(code) => (Some(CString::new(*code).expect("no NUL")), true),
        Text::License => (Some(vendor.license("lic_p", serde_json::json!({}))), true),
    }
}

fn ptr_of(text: &Option<CString>) -> *const c_char {
    text.as_ref().map_or(ptr::null(), |t| t.as_ptr())
}

/// What every failing call must leave: a known status and a message.
fn check_status(status: entitle_status) -> Result<(), TestCaseError> {
    prop_assert!(
        entitle_status::all().contains(&status),
        "unknown {}",
        status as u32
    );
    prop_assert!(status != ENTITLE_PANIC, "panicked: {}", last_error());
    if status != ENTITLE_OK {
        prop_assert!(!last_error().is_empty(), "{status:?} left no message");
    }
    Ok(())
}

/// A buffer call: the buffer is written only on success, and a short one
/// is told the size.
fn check_buffer(
    status: entitle_status,
    buf: &[c_char],
    needed: usize,
    needed_null: bool,
) -> Result<(), TestCaseError> {
    match status {
        ENTITLE_OK => {
            prop_assert!(needed >= 1 && needed <= buf.len());
            prop_assert_eq!(buf[needed - 1], 0);
        }
        ENTITLE_BUFFER_TOO_SMALL => {
            prop_assert!(!needed_null && needed > buf.len());
            prop_assert!(buf.iter().all(|b| *b == 0x5a));
        }
        _ => prop_assert!(buf.iter().all(|b| *b == 0x5a)),
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let vendor = Vendor::new();
    let mut engines: Pool<entitle_engine> = Pool::new();
    let mut gates: Pool<entitle_gate> = Pool::new();
    let mut leases: Pool<entitle_lease> = Pool::new();
    let mut options: Pool<entitle_options> = Pool::new();
    let closed = common::closed_url();
    let sentinel_options = 0x5a5a_5a50 as *mut entitle_options;
    let sentinel_engine = 0x5a5a_5a50 as *mut entitle_engine;
    let sentinel_gate = 0x5a5a_5a50 as *mut entitle_gate;
    let sentinel_lease = 0x5a5a_5a50 as *mut entitle_lease;
    for op in ops {
        let all: Vec<*mut ()> = engines
            .live
            .iter()
            .map(|h| h.cast())
            .chain(gates.live.iter().map(|h| h.cast()))
            .chain(leases.live.iter().map(|h| h.cast()))
            .chain(options.live.iter().map(|h| h.cast()))
            .collect();
        let others = |mine: &[*mut ()]| -> Vec<*mut ()> {
            all.iter().copied().filter(|h| !mine.contains(h)).collect()
        };
        let not_engines = others(&engines.live.iter().map(|h| h.cast()).collect::<Vec<_>>());
        let not_gates = others(&gates.live.iter().map(|h| h.cast()).collect::<Vec<_>>());
        let not_leases = others(&leases.live.iter().map(|h| h.cast()).collect::<Vec<_>>());
        let not_options = others(&options.live.iter().map(|h| h.cast()).collect::<Vec<_>>());
        unsafe {
            match op {
                Op::Open {
                    product,
                    keys_valid,
                    keys,
                } => {
                    let (product_c, _) = c_text(&product, &vendor);
                    let keys_c = if keys_valid {
                        Some(vendor.pem.clone())
                    } else {
                        c_text(&keys, &vendor).0
                    };
                    let mut out = sentinel_engine;
                    let status = entitle_engine_open(
                        ptr_of(&product_c),
                        ptr_of(&keys_c),
                        ptr::null(),
                        &mut out,
                    );
                    check_status(status)?;
                    if status == ENTITLE_OK {
                        prop_assert!(out != sentinel_engine && !out.is_null());
                        engines.live.push(out);
                    } else {
                        prop_assert_eq!(out, sentinel_engine);
                    }
                }
                Op::EngineFree(pick) => {
                    let (engine, _) = engines.get(pick, &not_engines);
                    entitle_engine_free(engine);
                    engines.free(engine);
                }
                Op::AddLicense(pick, text) | Op::Apply(pick, text) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let (text_c, _) = c_text(&text, &vendor);
                    let status = entitle_add_license(engine, ptr_of(&text_c));
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    let status = entitle_apply(engine, ptr_of(&text_c));
                    check_status(status)?;
                }
                Op::Activate(pick) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let status = entitle_activate_this_device(engine);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                }
                Op::Request(pick, len, needed_null) | Op::Info(pick, len, needed_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let mut buf = vec![0x5a as c_char; len];
                    let mut needed = 0usize;
                    let needed_ptr = if needed_null {
                        ptr::null_mut()
                    } else {
                        &mut needed as *mut usize
                    };
                    type Writer = unsafe extern "C" fn(
                        *const entitle_engine,
                        *mut c_char,
                        usize,
                        *mut usize,
                    ) -> entitle_status;
                    let writers: [Writer; 2] = [entitle_request, entitle_license_info_json];
                    for write in writers {
                        let status = write(engine, buf.as_mut_ptr(), len, needed_ptr);
                        check_status(status)?;
                        if let Some(bad) = bad {
                            prop_assert_eq!(status, bad);
                        }
                        check_buffer(status, &buf, needed, needed_null)?;
                        buf.fill(0x5a);
                    }
                }
                Op::Check(pick, feature, out_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let (feature_c, valid) = c_text(&feature, &vendor);
                    let before = entitle_decision {
                        allowed: true,
                        reason: ENTITLE_PANIC,
                        warning: ENTITLE_PANIC,
                        until_unix: -7,
                    };
                    let mut decision = before;
                    let out = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut decision as *mut _
                    };
                    let status = entitle_check_feature(engine, ptr_of(&feature_c), out);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    if status == ENTITLE_OK {
                        prop_assert!(valid && !out_null);
                        prop_assert_eq!(decision.allowed, decision.reason as u32 <= 3);
                    } else {
                        prop_assert_eq!(decision, before);
                    }
                }
                Op::Consume(pick, feature, amount) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let (feature_c, _) = c_text(&feature, &vendor);
                    let status = entitle_consume(engine, ptr_of(&feature_c), amount);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    if amount == 0 {
                        prop_assert!(status != ENTITLE_OK);
                    }
                }
                Op::GateNew(pick, feature, out_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let (feature_c, _) = c_text(&feature, &vendor);
                    let mut out = sentinel_gate;
                    let out_ptr = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut out as *mut _
                    };
                    let status = entitle_gate_new(engine, ptr_of(&feature_c), out_ptr);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    if status == ENTITLE_OK {
                        gates.live.push(out);
                    } else {
                        prop_assert_eq!(out, sentinel_gate);
                    }
                }
                Op::GateCheck(which) => {
                    let gate = match which {
                        Some(n) if !gates.live.is_empty() => gates.live[n % gates.live.len()],
                        _ => ptr::null_mut(),
                    };
                    let allowed = entitle_gate_check(gate);
                    prop_assert!(allowed == 0 || allowed == 1);
                    if gate.is_null() {
                        prop_assert_eq!(allowed, 0);
                    }
                }
                Op::GateDecision(pick, out_null) => {
                    let (gate, bad) = gates.get(pick, &not_gates);
                    let mut decision: entitle_decision = std::mem::zeroed();
                    let out = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut decision as *mut _
                    };
                    let status = entitle_gate_decision(gate, out);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    } else if !out_null {
                        prop_assert_eq!(status, ENTITLE_OK);
                        prop_assert_eq!(c_int_of(decision.allowed), entitle_gate_check(gate));
                    }
                }
                Op::GateFree(pick) => {
                    let (gate, _) = gates.get(pick, &not_gates);
                    entitle_gate_free(gate);
                    gates.free(gate);
                }
                Op::LeaseAcquire(pick, feature, out_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let feature_c = feature.map(|f| c_text(&f, &vendor).0);
                    let feature_ptr = feature_c.as_ref().map_or(ptr::null(), ptr_of);
                    let mut out = sentinel_lease;
                    let out_ptr = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut out as *mut _
                    };
                    let status = entitle_lease_acquire(engine, feature_ptr, out_ptr);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    if status == ENTITLE_OK {
                        leases.live.push(out);
                    } else {
                        prop_assert_eq!(out, sentinel_lease);
                    }
                }
                Op::LeaseFromServer(pick, url, key, feature, out_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let url_c = match &url {
                        Url::Closed => Some(closed.clone()),
                        Url::Text(text) => c_text(text, &vendor).0,
                    };
                    // None: a valid key (the vendor's, which signs no lease).
                    let key_c = match &key {
                        None => Some(vendor.pem.clone()),
                        Some(text) => c_text(text, &vendor).0,
                    };
                    let feature_c = feature.map(|f| c_text(&f, &vendor).0);
                    let feature_ptr = feature_c.as_ref().map_or(ptr::null(), ptr_of);
                    let mut out = sentinel_lease;
                    let out_ptr = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut out as *mut _
                    };
                    let status = entitle_lease_acquire_from_server(
                        engine,
                        ptr_of(&url_c),
                        ptr_of(&key_c),
                        feature_ptr,
                        out_ptr,
                    );
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    // No server anywhere: never a lease.
                    prop_assert!(status != ENTITLE_OK);
                    prop_assert_eq!(out, sentinel_lease);
                    if bad.is_none()
                        && !out_null
                        && matches!(url, Url::Closed)
                        && key.is_none()
                        && feature_c
                            .as_ref()
                            .is_none_or(|f| f.as_ref().is_some_and(|f| f.to_str().is_ok()))
                    {
                        prop_assert_eq!(status, ENTITLE_SERVER_UNREACHABLE, "{}", last_error());
                    }
                }
                Op::LeaseId(pick, len, needed_null) => {
                    let (lease, bad) = leases.get(pick, &not_leases);
                    let mut buf = vec![0x5a as c_char; len];
                    let mut needed = 0usize;
                    let needed_ptr = if needed_null {
                        ptr::null_mut()
                    } else {
                        &mut needed as *mut usize
                    };
                    let status = entitle_lease_id(lease, buf.as_mut_ptr(), len, needed_ptr);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    check_buffer(status, &buf, needed, needed_null)?;
                }
                Op::LeaseExpires(pick, out_null) => {
                    let (lease, bad) = leases.get(pick, &not_leases);
                    let mut ends = -7i64;
                    let out = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut ends as *mut i64
                    };
                    let status = entitle_lease_expires_unix(lease, out);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    if status == ENTITLE_OK {
                        prop_assert!(ends > 0);
                    } else {
                        prop_assert_eq!(ends, -7);
                    }
                }
                Op::OpenWith(pick, out_null) => {
                    let (opts, bad) = options.get(pick, &not_options);
                    // NULL options are allowed: as entitle_engine_open.
                    let bad = bad.filter(|_| !opts.is_null());
                    let mut out = sentinel_engine;
                    let out_ptr = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut out as *mut _
                    };
                    let status = entitle_engine_open_with(
                        c"acme-cad".as_ptr(),
                        vendor.pem.as_ptr(),
                        ptr::null(),
                        opts,
                        out_ptr,
                    );
                    check_status(status)?;
                    match bad {
                        Some(bad) => prop_assert_eq!(status, bad),
                        None if out_null => prop_assert_eq!(status, ENTITLE_NULL),
                        // Every value a setter took opens an engine.
                        None => prop_assert_eq!(status, ENTITLE_OK, "{}", last_error()),
                    }
                    if status == ENTITLE_OK {
                        prop_assert!(out != sentinel_engine && !out.is_null());
                        engines.live.push(out);
                    } else {
                        prop_assert_eq!(out, sentinel_engine);
                    }
                }
                Op::OptionsNew(out_null) => {
                    let mut out = sentinel_options;
                    let out_ptr = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut out as *mut _
                    };
                    let status = entitle_options_new(out_ptr);
                    check_status(status)?;
                    prop_assert_eq!(status == ENTITLE_OK, !out_null);
                    if status == ENTITLE_OK {
                        options.live.push(out);
                    } else {
                        prop_assert_eq!(out, sentinel_options);
                    }
                }
                Op::SetVersion(pick, text) | Op::SetChannel(pick, text) => {
                    let (opts, bad) = options.get(pick, &not_options);
                    let (text_c, valid) = c_text(&text, &vendor);
                    for set in [entitle_options_set_version, entitle_options_set_channel] {
                        let status = set(opts, ptr_of(&text_c));
                        check_status(status)?;
                        if let Some(bad) = bad {
                            prop_assert_eq!(status, bad);
                        } else if !valid {
                            prop_assert!(matches!(status, ENTITLE_NULL | ENTITLE_INVALID_UTF8));
                        }
                    }
                }
                Op::SetReleaseDate(pick, date) => {
                    let (opts, bad) = options.get(pick, &not_options);
                    let status = entitle_options_set_release_date(opts, date);
                    check_status(status)?;
                    match bad {
                        Some(bad) => prop_assert_eq!(status, bad),
                        None if date < 0 => prop_assert_eq!(status, ENTITLE_INVALID_ARGUMENT),
                        None => prop_assert_eq!(status, ENTITLE_OK),
                    }
                }
                Op::OptionsFree(pick) => {
                    let (opts, _) = options.get(pick, &not_options);
                    entitle_options_free(opts);
                    options.free(opts);
                }
                Op::UserAdd(pick, user, user_type, out_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let (user_c, user_valid) = c_text(&user, &vendor);
                    let (type_c, type_valid) = c_text(&user_type, &vendor);
                    let before = entitle_decision {
                        allowed: false,
                        reason: ENTITLE_PANIC,
                        warning: ENTITLE_PANIC,
                        until_unix: -7,
                    };
                    let mut decision = before;
                    let out = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut decision as *mut _
                    };
                    let status = entitle_user_add(engine, ptr_of(&user_c), ptr_of(&type_c), out);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    if status == ENTITLE_OK {
                        prop_assert!(user_valid && type_valid);
                        if !out_null {
                            prop_assert!(decision.allowed);
                        }
                    } else {
                        prop_assert_eq!(decision, before);
                    }
                }
                Op::UserRemove(pick, user) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let (user_c, _) = c_text(&user, &vendor);
                    let status = entitle_user_remove(engine, ptr_of(&user_c));
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                }
                Op::CanAddUser(pick, out_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let mut decision: entitle_decision = std::mem::zeroed();
                    let out = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut decision as *mut _
                    };
                    let status = entitle_can_add_user(engine, out);
                    check_status(status)?;
                    match bad {
                        Some(bad) => prop_assert_eq!(status, bad),
                        None if out_null => prop_assert_eq!(status, ENTITLE_NULL),
                        None => {
                            prop_assert_eq!(status, ENTITLE_OK);
                            prop_assert_eq!(decision.allowed, decision.reason as u32 <= 3);
                        }
                    }
                }
                Op::Deactivate(pick, license, len, needed_null) => {
                    let (engine, bad) = engines.get(pick, &not_engines);
                    let license_c = license.map(|l| c_text(&l, &vendor).0);
                    let license_ptr = license_c.as_ref().map_or(ptr::null(), ptr_of);
                    let mut buf = vec![0x5a as c_char; len];
                    let mut needed = 0usize;
                    let needed_ptr = if needed_null {
                        ptr::null_mut()
                    } else {
                        &mut needed as *mut usize
                    };
                    let status = entitle_deactivate_this_device(
                        engine,
                        license_ptr,
                        buf.as_mut_ptr(),
                        len,
                        needed_ptr,
                    );
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                    check_buffer(status, &buf, needed, needed_null)?;
                }
                Op::LeaseCheck(pick, out_null) => {
                    let (lease, bad) = leases.get(pick, &not_leases);
                    let mut decision: entitle_decision = std::mem::zeroed();
                    let out = if out_null {
                        ptr::null_mut()
                    } else {
                        &mut decision as *mut _
                    };
                    let status = entitle_lease_check(lease, out);
                    check_status(status)?;
                    if let Some(bad) = bad {
                        prop_assert_eq!(status, bad);
                    }
                }
                Op::LeaseFree(pick) => {
                    let (lease, _) = leases.get(pick, &not_leases);
                    entitle_lease_free(lease);
                    leases.free(lease);
                }
                Op::LastError(len, needed_null) => {
                    let mut buf = vec![0x5a as c_char; len];
                    let mut needed = 0usize;
                    let needed_ptr = if needed_null {
                        ptr::null_mut()
                    } else {
                        &mut needed as *mut usize
                    };
                    let status = entitle_last_error(buf.as_mut_ptr(), len, needed_ptr);
                    prop_assert!(matches!(
                        status,
                        ENTITLE_OK | ENTITLE_BUFFER_TOO_SMALL | ENTITLE_NULL
                    ));
                    prop_assert_eq!(status == ENTITLE_NULL, needed_null);
                    check_buffer(status, &buf, needed, needed_null)?;
                }
                Op::Message(number) => {
                    let words = std::ffi::CStr::from_ptr(entitle_reason_message(number));
                    prop_assert!(words.to_str().is_ok_and(|w| w.ends_with('.')));
                }
            }
        }
    }
    unsafe {
        for lease in leases.live.drain(..) {
            entitle_lease_free(lease);
        }
        for gate in gates.live.drain(..) {
            entitle_gate_free(gate);
        }
        for engine in engines.live.drain(..) {
            entitle_engine_free(engine);
        }
        for opts in options.live.drain(..) {
            entitle_options_free(opts);
        }
    }
    Ok(())
}

fn c_int_of(allowed: bool) -> std::ffi::c_int {
    std::ffi::c_int::from(allowed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_calls_with_bad_input_answers_with_statuses_never_a_crash(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        run(ops)?;
    }
}
