//! A blocking client of a license server (`entitle serve`, docs/http.md),
//! behind the `client` feature: a desktop application on a LAN takes its
//! floating seat from the server and holds it with the same
//! [`LeaseGuard`] an engine hands out.
//!
//! A client is made from the application's own [`Engine`] (its install,
//! holding the license the server serves): it takes seats under that
//! engine's client id, so a retry, or a second client made from the same
//! engine, asks for the same seat rather than another; and the seats it
//! holds count in that engine's gates, so the program gates every feature
//! the one way, `engine.feature(code).check()`.
//!
//! Every lease the server answers is a signed token, verified here with
//! the server's public key (`entitle serve --print-lease-pub`) before the
//! guard believes it; one that does not verify is `LEASE_KEY_MISMATCH`,
//! and its seat is checked in. The guard heartbeats on a background
//! thread at a third of the lease, checks the seat in when the last clone
//! is dropped, rides out a server that is unreachable until its lease ends
//! (the server keeps leases across a restart, so the next heartbeat finds
//! it again; a lease that lapsed meanwhile is taken again when a seat is
//! free). A server that cannot be reached is `SERVER_UNREACHABLE`, naming
//! its address.
//!
//! Redundant servers (docs/http.md#redundant-servers): a client made with
//! [`Client::connect_any`] knows several servers sharing one PostgreSQL
//! namespace, and moves to the next when the one it uses cannot be
//! reached or answers `503`: its lease, heartbeats and check-in carry on
//! there. A refusal (a `4xx`) is an answer, never a reason to ask another.
//!
//! The vendor's online service (`entitle serve --books`) is reached
//! through a [`VendorClient`]: an install activates by license key, login
//! or trial, deactivates and syncs with [`Engine::activate_online`] and
//! its siblings, and believes only what verifies against the keys it
//! trusts (docs/http.md#the-vendors-service).
//!
//! A laptop leaving the network borrows its seat
//! ([`Client::borrow`]), saves the token, and later holds it offline with
//! [`LeaseGuard::borrowed`] until the borrow ends, judging time by the
//! application's own [`Engine`] and its clock guard (a clock set back is
//! `CLOCK_TAMPERED`, not a longer trip). The server holds the seat until
//! the borrow ends: it cannot be checked in early (`LEASE_BORROWED`).
//!
//! ```no_run
//! use entitle::client::Client;
//! use entitle::store::FileStore;
//! use entitle::token::PublicKey;
//! use entitle::Engine;
//!
//! # fn main() -> entitle::Result<()> {
//! # let vendor_key = entitle::token::SigningKey::from_seed(&[1; 32]).public_key().clone();
//! # let license_file = String::new();
//! // The application's install, holding the license the server serves.
//! let engine = Engine::builder("acme-cad")
//!     .trust(vendor_key)
//!     .store(FileStore::open("/var/lib/acme-cad")?)
//!     .build()?;
//! // Shipped with the application, or configured by the administrator.
//! let server_key = PublicKey::from_pem(&std::fs::read_to_string("lease.pub").unwrap())?;
//! let client = Client::connect(&engine, "http://licenses.lan:8740", server_key)?;
//!
//! // On start: take a seat of the `cad` pool, or tell the user why not.
//! let seat = match client.lease(Some("cad")) {
//!     Ok(seat) => seat,
//!     Err(e) => {
//!         eprintln!("{}", e.user_message());
//!         return Ok(());
//!     }
//! };
//! // Before each licensed action, the one gate (the seat counts in it):
//! let cad = engine.feature("cad");
//! if cad.check().allowed() {
//!     // ... the feature works
//! }
//! // Before a trip: borrow for a week and keep the token.
//! let token = client.borrow(&seat, 7 * 86_400)?;
//! std::fs::write("cad.lease", &token).unwrap();
//! drop(seat); // the borrow keeps the seat on the server until it ends
//!
//! // On the train, no network: the borrowed seat counts in the same gate.
//! let saved = std::fs::read_to_string("cad.lease").unwrap();
//! let trip = entitle::LeaseGuard::borrowed(&engine, &saved, client.server_key())?;
//! assert!(cad.check().allowed());
//! # drop(trip);
//! # Ok(())
//! # }
//! ```

mod vendor;

pub use vendor::{
    OnlineActivation, OnlineDeactivation, RefusedToken, SyncOutcome, UserLicense, VendorClient,
    VendorUser, WithdrawnActivation,
};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::decision::Reason;
use crate::engine::lease::{Holder, Place, WeakGuard};
use crate::engine::{Engine, Lease, LeaseGuard};
use crate::error::{Error, Result};
use crate::token::{LeaseToken, PublicKey};

/// How long one request may take, unless it waits in the server's line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A license server and the key its leases are signed with.
///
/// Connecting reaches nothing yet: the first lease does, so an
/// application starts (and holds a borrowed token) with no server around.
pub struct Client {
    remote: Arc<Remote>,
    engine: Engine,
    guards: Mutex<rustc_hash::FxHashMap<Option<String>, WeakGuard>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("urls", &self.remote.bases)
            .field("client_id", &self.remote.client_id)
            .finish()
    }
}

/// What a guard's heartbeat thread shares with the client.
struct Remote {
    /// The servers, in the order given; at least one.
    bases: Vec<String>,
    /// The index in `bases` of the server asked first: the last one that
    /// answered.
    current: AtomicUsize,
    agent: ureq::Agent,
    server_key: PublicKey,
    client_id: String,
}

impl Client {
    /// A client of the server at `url` (`http://host:port`) for the
    /// program `engine` is the install of, trusting leases signed by
    /// `server_key`. It takes seats under the engine's client id
    /// ([`Engine::client_id`]: this device's fingerprint and the engine
    /// instance, so a node-locked license on the server counts this
    /// device), the same for every client made from the engine: a retry
    /// asks for the seat it may already hold, never a second one. The
    /// seats it holds count in the engine's gates.
    ///
    /// ```
    /// use entitle::{client::Client, Engine};
    /// let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let key = entitle::token::SigningKey::from_seed(&[9; 32]);
    /// let client = Client::connect(&engine, "http://127.0.0.1:8740",
    ///     key.public_key().clone()).unwrap();
    /// assert_eq!(client.client_id(), engine.client_id());
    /// let again = Client::connect(&engine, "http://127.0.0.1:8740/", key.public_key().clone());
    /// assert_eq!(again.unwrap().client_id(), engine.client_id());
    /// assert!(Client::connect(&engine, "ftp://x", key.public_key().clone()).is_err());
    /// ```
    pub fn connect(engine: &Engine, url: &str, server_key: PublicKey) -> Result<Client> {
        Client::connect_any(engine, &[url], server_key)
    }

    /// A client of redundant servers (docs/http.md#redundant-servers):
    /// several `entitle serve` sharing one PostgreSQL namespace, which all
    /// sign leases with the same key (by default the install's own, kept
    /// in the shared state). Requests go to the first server until it
    /// cannot be reached or answers `503` (stopping, its database out of
    /// reach); then to the next, which stays the one asked first while it
    /// answers. A refusal is final and is not asked of another server.
    /// `SERVER_UNREACHABLE` only when none answers, naming each.
    ///
    /// ```
    /// use entitle::{client::Client, Engine};
    /// let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let key = entitle::token::SigningKey::from_seed(&[9; 32]).public_key().clone();
    /// let client = Client::connect_any(&engine,
    ///     &["http://10.0.0.5:8740", "http://10.0.0.6:8740/"], key.clone()).unwrap();
    /// assert_eq!(client.urls(), ["http://10.0.0.5:8740", "http://10.0.0.6:8740"]);
    /// assert_eq!(client.current_url(), "http://10.0.0.5:8740");
    /// let none: [&str; 0] = [];
    /// assert!(Client::connect_any(&engine, &none, key).is_err());
    /// ```
    pub fn connect_any(
        engine: &Engine,
        urls: &[impl AsRef<str>],
        server_key: PublicKey,
    ) -> Result<Client> {
        if urls.is_empty() {
            return Err(Error::InvalidArgument(
                "no license server given: name at least one, http://HOST:PORT".into(),
            ));
        }
        let mut bases = Vec::with_capacity(urls.len());
        for url in urls {
            let url = url.as_ref();
            let base = url.trim_end_matches('/');
            let valid = (base.starts_with("http://") || base.starts_with("https://"))
                && base.len() > "https://".len()
                && !base.chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                return Err(Error::InvalidArgument(format!(
                    "`{}` is not a license server's address: write http://HOST:PORT",
                    url.chars().take(200).collect::<String>()
                )));
            }
            bases.push(base.to_owned());
        }
        let client_id = engine.client_id().to_owned();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .build();
        Ok(Client {
            remote: Arc::new(Remote {
                bases,
                current: AtomicUsize::new(0),
                agent,
                server_key,
                client_id,
            }),
            engine: engine.clone(),
            guards: Mutex::new(Default::default()),
        })
    }

    /// The same client under another id (a user, a host name): the
    /// server leases seats by client id, and the same id renews its seat.
    pub fn with_client_id(self, client_id: &str) -> Result<Client> {
        crate::ident::check("a client id", client_id)?;
        let remote = Remote {
            bases: self.remote.bases.clone(),
            current: AtomicUsize::new(self.remote.current.load(Ordering::Relaxed)),
            agent: self.remote.agent.clone(),
            server_key: self.remote.server_key.clone(),
            client_id: client_id.to_owned(),
        };
        Ok(Client {
            remote: Arc::new(remote),
            engine: self.engine,
            guards: Mutex::new(Default::default()),
        })
    }

    /// The id this client takes seats under.
    pub fn client_id(&self) -> &str {
        &self.remote.client_id
    }

    /// The servers this client knows, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.remote.bases
    }

    /// The server asked first now: the first given, or the last one that
    /// answered after another could not.
    pub fn current_url(&self) -> &str {
        self.remote.base()
    }

    /// The key the server's leases must be signed with.
    pub fn server_key(&self) -> &PublicKey {
        &self.remote.server_key
    }

    /// Takes a floating seat from the server's pool of `feature` (or the
    /// license-level pool) and holds it until the returned guard and all
    /// its clones are dropped; while it does, the engine's gates of the
    /// pool's features count it. Asking again for the same pool while a
    /// guard lives returns that guard.
    ///
    /// Fails as the server refuses (`FLOATING_EXHAUSTED` with `retry_at`
    /// when every seat is taken, `NOT_LICENSED`...), with
    /// `LEASE_KEY_MISMATCH` when the lease is not signed by the configured
    /// server key (the seat is checked in), and with `SERVER_UNREACHABLE`
    /// when the server cannot be reached.
    pub fn lease(&self, feature: Option<&str>) -> Result<LeaseGuard> {
        self.lease_waiting(feature, Duration::ZERO)
    }

    /// As [`lease`](Self::lease), but when every seat is taken, waits in
    /// the server's first-come, first-served line for the pool up to
    /// `wait` (whole seconds; at most the server's `--max-wait-secs`, or
    /// it refuses with `INVALID_ARGUMENT`) and takes the first seat freed
    /// for it. Still `FLOATING_EXHAUSTED` when none was freed in time.
    /// The call blocks meanwhile: make it off the user interface's thread.
    ///
    /// ```no_run
    /// # use entitle::{client::Client, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// # let key = entitle::token::SigningKey::from_seed(&[9; 32]).public_key().clone();
    /// let client = Client::connect(&engine, "http://licenses.lan:8740", key).unwrap();
    /// let seat = client.lease_waiting(Some("cad"), std::time::Duration::from_secs(60));
    /// ```
    pub fn lease_waiting(&self, feature: Option<&str>, wait: Duration) -> Result<LeaseGuard> {
        let mut guards = self.guards.lock();
        guards.retain(|_, weak| weak.upgrade().is_some());
        let key = feature.map(str::to_owned);
        if let Some(guard) = guards.get(&key).and_then(WeakGuard::upgrade) {
            return Ok(guard);
        }
        let lease = self.remote.take(feature, wait.as_secs())?;
        let guard = LeaseGuard::hold(
            Box::new(Arc::clone(&self.remote)),
            feature,
            lease,
            &self.engine,
            Place::Outside,
        )?;
        guards.insert(key, guard.weak());
        Ok(guard)
    }

    /// Borrows the seat `guard` holds for `secs` seconds: the server keeps
    /// it without heartbeats until then. Returns the signed lease token
    /// (`borrowed: true`), to be saved and held offline with
    /// [`LeaseGuard::borrowed`]. `BORROW_NOT_ALLOWED` or
    /// `BORROW_TOO_LONG` per the server's licenses; `LEASE_EXPIRED` if
    /// the guard holds no lease now.
    pub fn borrow(&self, guard: &LeaseGuard, secs: i64) -> Result<String> {
        let Some(lease) = guard.lease() else {
            return Err(Error::denied(
                Reason::LeaseExpired,
                "this guard holds no lease to borrow now; take a seat first",
            ));
        };
        let path = format!("/v1/leases/{}/borrow", encode(&lease.id));
        let answer = self
            .remote
            .call("POST", &path, Some(json!({"secs": secs})))?;
        let (_, token) = self.remote.verified(&answer, Some(&lease.id))?;
        Ok(token)
    }
}

/// A path segment, percent-encoded where it must be.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Remote {
    /// The server asked first.
    fn base(&self) -> &str {
        let current = self.current.load(Ordering::Relaxed);
        self.bases.get(current).unwrap_or(&self.bases[0])
    }

    /// One request: the answer's JSON, or the server's error as this
    /// crate's (a refusal keeps its code; an unreachable server, a 5xx or
    /// a garbled answer is `SERVER_UNREACHABLE`, which a guard rides out).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.call_within(method, path, body, None)
    }

    /// As [`call`](Self::call), allowing `extra` beyond the usual timeout
    /// (a checkout waiting in the server's line).
    fn call_within(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: Option<Duration>,
    ) -> Result<Value> {
        let first = self.current.load(Ordering::Relaxed);
        let count = self.bases.len();
        let mut failures = Vec::new();
        for step in 0..count {
            let index = (first + step) % count;
            let base = &self.bases[index];
            match self.call_one(base, method, path, body.clone(), extra) {
                // Every request is safe to ask again of another server
                // sharing the state: a checkout by the same client renews
                // its seat, a heartbeat renews, a check-in of a seat
                // already free is `LEASE_NOT_FOUND`.
                Err(Error::ServerUnreachable { detail, .. }) => failures.push((base, detail)),
                answered => {
                    if step > 0 {
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return answered;
                }
            }
        }
        Err(match failures.as_slice() {
            [(url, detail)] => Error::ServerUnreachable {
                url: (*url).clone(),
                detail: detail.clone(),
            },
            all => Error::ServerUnreachable {
                url: self.bases.join(", "),
                detail: all
                    .iter()
                    .map(|(url, detail)| format!("{url}: {detail}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        })
    }

    /// One request to the server at `base`.
    fn call_one(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: Option<Duration>,
    ) -> Result<Value> {
        let url = format!("{base}{path}");
        let mut request = self.agent.request(method, &url);
        if let Some(extra) = extra {
            request = request.timeout(REQUEST_TIMEOUT + extra);
        }
        let sent = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let unreachable = |detail: String| Error::ServerUnreachable {
            url: base.to_owned(),
            detail,
        };
        match sent {
            Ok(response) => response
                .into_json::<Value>()
                .map_err(|e| unreachable(format!("its answer is not JSON: {e}"))),
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = retry_after(&response);
                let body: Value = response.into_json().unwrap_or(Value::Null);
                Err(
                    server_error(status, &body, retry_after, "the license server").unwrap_or_else(
                        || unreachable(format!("it answered {status} without an error body")),
                    ),
                )
            }
            Err(ureq::Error::Transport(transport)) => Err(unreachable(transport.to_string())),
        }
    }

    /// The verified lease in an answer: its token checked with the
    /// server's key, for this client, and (when given) this lease id.
    fn verified(&self, answer: &Value, lease_id: Option<&str>) -> Result<(Lease, String)> {
        let text = answer["token"]
            .as_str()
            .ok_or_else(|| Error::malformed("lease answer", "it has no `token`"))?;
        let token = match LeaseToken::verify(text, &self.server_key) {
            Err(Error::SignatureInvalid | Error::UnknownKey { .. }) => {
                // The server is not the one configured, or the key is
                // wrong: give the seat back rather than hold one that no
                // check here can believe (each retry would take another).
                if let Some(id) = answer["id"].as_str() {
                    let _ = self.call("DELETE", &format!("/v1/leases/{}", encode(id)), None);
                }
                return Err(Error::LeaseKeyMismatch {
                    url: self.base().to_owned(),
                });
            }
            other => other?,
        };
        if token.client != self.client_id
            || lease_id.is_some_and(|id| id != token.lease_id)
            || answer["id"].as_str() != Some(token.lease_id.as_str())
        {
            return Err(Error::malformed(
                "lease answer",
                "its token is for another client or lease",
            ));
        }
        Ok((Lease::from_token(&token), text.to_owned()))
    }
}

impl Remote {
    /// Takes a seat of `feature`'s pool, waiting up to `wait_secs` in the
    /// server's line when every seat is taken.
    fn take(&self, feature: Option<&str>, wait_secs: u64) -> Result<Lease> {
        let mut body = json!({"client": self.client_id});
        if let Some(feature) = feature {
            body["feature"] = json!(feature);
        }
        let extra = (wait_secs > 0).then(|| {
            body["wait_secs"] = json!(wait_secs);
            Duration::from_secs(wait_secs)
        });
        let answer = self.call_within("POST", "/v1/leases", Some(body), extra)?;
        Ok(self.verified(&answer, None)?.0)
    }
}

impl Holder for Arc<Remote> {
    fn checkout(&self, feature: Option<&str>) -> Result<Lease> {
        self.take(feature, 0)
    }

    fn heartbeat(&self, lease_id: &str) -> Result<Lease> {
        let path = format!("/v1/leases/{}/heartbeat", encode(lease_id));
        let answer = self.call("POST", &path, Some(json!({})))?;
        Ok(self.verified(&answer, Some(lease_id))?.0)
    }

    fn checkin(&self, lease_id: &str) -> Result<()> {
        let path = format!("/v1/leases/{}", encode(lease_id));
        self.call("DELETE", &path, None).map(drop)
    }

    fn now(&self) -> Timestamp {
        SystemClock.now()
    }
}

/// The server's `{"error": {"code", "message", "retry_at"?}}` as an
/// [`Error`]: a refusal by policy keeps its reason, a refused credential
/// or trial its own variant; anything the client cannot act on but retry
/// (a 5xx) is `None`, an outage. `who` names the server in the message
/// ("the license server", "the vendor's service"); `retry_after` is the
/// answer's `Retry-After` header, in seconds. One mapping for both
/// clients, so a code means the same whichever server sent it.
pub(crate) fn server_error(
    status: u16,
    body: &Value,
    retry_after: Option<u64>,
    who: &str,
) -> Option<Error> {
    if status >= 500 {
        return None;
    }
    let error = &body["error"];
    let code = error["code"].as_str()?;
    let said = error["message"].as_str().unwrap_or(code);
    let message = format!("{who} refused: {said}");
    let retry_at = error["retry_at"]
        .as_str()
        .and_then(|t| Timestamp::parse(t).ok());
    // A refusal's reason: one that allows is no refusal, whatever was sent.
    Some(
        match Reason::from_code(code).filter(|reason| !reason.allows()) {
            Some(reason) => Error::Denied {
                reason,
                message,
                retry_at,
            },
            None => match code {
                "SIGNATURE_INVALID" => Error::SignatureInvalid,
                "MALFORMED" | "TOO_LARGE" => {
                    Error::malformed("request to the license server", message)
                }
                "UNAUTHORIZED" => {
                    // Our servers word it as this error's own display does:
                    // keep only what they refused, so that the advice is given
                    // once ("not authorized: ... says: wrong email or password;
                    // check ...").
                    let worded = Error::Unauthorized("\0".into()).to_string();
                    let (prefix, suffix) = worded.split_once('\0').unwrap_or((worded.as_str(), ""));
                    let said = said
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.strip_suffix(suffix))
                        .unwrap_or(said);
                    Error::Unauthorized(format!("{who} says: {said}"))
                }
                "RATE_LIMITED" => Error::RateLimited {
                    // Without the header, a minute: what the service's limit
                    // counts over (docs/http.md#the-vendors-service).
                    retry_after_secs: retry_after
                        .or_else(|| error["retry_after_secs"].as_u64())
                        .unwrap_or(60),
                },
                "TRIAL_USED" => Error::TrialUsed {
                    // Filled in by the caller, who knows its device.
                    fingerprint: error["fingerprint"].as_str().unwrap_or_default().to_owned(),
                },
                _ => Error::InvalidArgument(format!("{message} ({code})")),
            },
        },
    )
}

/// An answer's `Retry-After` header in seconds (the HTTP-date form is
/// not used by these servers, and reads as absent).
pub(crate) fn retry_after(response: &ureq::Response) -> Option<u64> {
    response
        .header("retry-after")
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_credential_is_worded_once() {
        // As the vendor's service words it: the error's own display.
        let said = Error::Unauthorized("wrong email or password".into()).to_string();
        let body = json!({"error": {"code": "UNAUTHORIZED", "message": said}});
        let error = server_error(401, &body, None, "the vendor's service").unwrap();
        let shown = error.to_string();
        assert_eq!(error.code(), "UNAUTHORIZED");
        assert_eq!(shown.matches("not authorized").count(), 1, "{shown}");
        assert_eq!(shown.matches("check the license key").count(), 1, "{shown}");
        assert!(
            shown.contains("the vendor's service says: wrong email or password;"),
            "{shown}"
        );
        // Another server's own words are kept whole.
        let body = json!({"error": {"code": "UNAUTHORIZED", "message": "token expired"}});
        let shown = server_error(401, &body, None, "the vendor's service")
            .unwrap()
            .to_string();
        assert!(shown.contains("says: token expired;"), "{shown}");
    }

    #[test]
    fn server_refusals_keep_their_reason_and_outages_are_io() {
        let body = json!({"error": {"code": "FLOATING_EXHAUSTED", "message": "all 2 in use",
            "retry_at": "2026-01-01T00:10:00Z"}});
        match server_error(409, &body, None, "the license server") {
            Some(Error::Denied {
                reason, retry_at, ..
            }) => {
                assert_eq!(reason, Reason::FloatingExhausted);
                assert_eq!(retry_at, Timestamp::parse("2026-01-01T00:10:00Z").ok());
            }
            other => panic!("{other:?}"),
        }
        assert!(server_error(503, &body, None, "the license server").is_none());
        assert!(server_error(400, &Value::Null, None, "the license server").is_none());
        assert_eq!(encode("lease_1a/../x"), "lease_1a%2F..%2Fx");
    }
}
