//! The install's side of the vendor's online service (`entitle serve
//! --books`, docs/http.md#the-vendors-service): activation by license
//! key, by a user's login, or as a trial; deactivation; and a sync that
//! brings newer licenses, revocations, key rotations and the certificates
//! the vendor withdrew.
//!
//! Nothing the service says grants by being said: every license and
//! certificate it answers is a token signed by the vendor, verified here
//! against the keys the engine trusts, exactly as a file would be (a
//! license through [`Engine::add_license`], a certificate through the
//! same checks as [`Engine::apply`], and it must be for this device and
//! bound to this install's key). A fake or hijacked service, or one
//! signing with another key, grants nothing. What the service can do
//! unsigned is take away: a sync's `withdrawn` names certificates by
//! their id ([`certificate_id`](crate::license::certificate_id)), which
//! only the vendor and this install know.

use std::io::Read as _;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::{encode, retry_after, server_error, REQUEST_TIMEOUT};
use crate::clock::Timestamp;
use crate::engine::{Applied, Engine};
use crate::error::{Error, Result};
use crate::license::{License, MachineCertificate, VerifiedLicense};
use crate::token::{self, TokenType};

/// The largest answer read from the service: a sync's licenses and lists
/// fit in far less; more is not the service's answer.
const MAX_ANSWER_BYTES: u64 = 4 << 20;

/// Who refuses, in messages.
const WHO: &str = "the vendor's service";

/// The vendor's online service, at one address.
///
/// Making one reaches nothing yet; each engine method is one request.
/// `https://` goes through rustls, checking the server's certificate
/// against the Mozilla roots; plain `http://` is accepted only to this
/// machine (tests, a local proxy), since over a network a license key,
/// a password and the answers must not travel in the clear.
///
/// ```
/// use entitle::client::VendorClient;
/// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
/// assert_eq!(vendor.url(), "https://licensing.example.com");
/// assert!(VendorClient::new("http://127.0.0.1:8750").is_ok());
/// let refused = VendorClient::new("http://licensing.example.com").unwrap_err();
/// assert_eq!(refused.code(), "INVALID_ARGUMENT");
/// ```
#[derive(Clone)]
pub struct VendorClient {
    base: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for VendorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorClient")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

/// A device activated through the vendor's service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OnlineActivation {
    /// The license installed and activated.
    pub license_id: String,
    /// This device.
    pub fingerprint: String,
    /// The service counted the device now (`201`); `false` when it had
    /// counted it before and sent a fresh certificate (`200`).
    pub newly_counted: bool,
    /// When the certificate's activation ends, if it does: sync before
    /// then for a fresh one.
    pub expires_at: Option<Timestamp>,
}

/// A device deactivated through the vendor's service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OnlineDeactivation {
    /// This device.
    pub fingerprint: String,
    /// The licenses it was deactivated for, one receipt each.
    pub license_ids: Vec<String>,
    /// A receipt was sent again: the device had been deactivated here
    /// before (a run whose receipt did not reach the service, or one
    /// that did).
    pub again: bool,
}

/// What a sync with the vendor's service applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SyncOutcome {
    /// Licenses installed or replaced by a newer issue.
    pub licenses: Vec<String>,
    /// License ids the applied revocation list revokes.
    pub revoked: Vec<String>,
    /// `kid`s trusted from now on, by an applied key rotation.
    pub trusted_keys: Vec<String>,
    /// `kid`s trusted no longer, by an applied key rotation.
    pub retired_keys: Vec<String>,
    /// Activations withdrawn: the vendor freed their slots.
    pub withdrawn: Vec<WithdrawnActivation>,
    /// Tokens in the answer that did not verify or apply: each granted
    /// nothing.
    pub refused: Vec<RefusedToken>,
}

impl SyncOutcome {
    /// How many tokens and withdrawals took effect.
    ///
    /// ```
    /// let outcome = entitle::client::SyncOutcome::default();
    /// assert_eq!(outcome.applied(), 0);
    /// ```
    pub fn applied(&self) -> usize {
        self.licenses.len()
            + usize::from(!self.revoked.is_empty())
            + usize::from(!self.trusted_keys.is_empty() || !self.retired_keys.is_empty())
            + self.withdrawn.len()
    }
}

/// An activation the vendor withdrew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WithdrawnActivation {
    /// The license.
    pub license_id: String,
    /// The device.
    pub fingerprint: String,
}

/// A token a sync refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RefusedToken {
    /// What it claimed to be ("license `lic_1`", "revocation list"...).
    pub what: String,
    /// Why, as an error code ([`Error::code`]).
    pub code: &'static str,
    /// Why, in words.
    pub message: String,
}

/// A license assigned to a user, as the service lists them, its token
/// verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct UserLicense {
    /// The license, as verified.
    pub license: License,
    /// Its compact token.
    pub token: String,
    /// The user it is assigned to, and their activations.
    pub user: VendorUser,
}

/// A user of the vendor's service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct VendorUser {
    /// Their id at the service.
    pub id: String,
    /// Their email.
    pub email: String,
    /// First name, if given.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name, if given.
    #[serde(default)]
    pub last_name: Option<String>,
    /// How many devices they may activate, if limited.
    #[serde(default)]
    pub max_activations: Option<u64>,
    /// How many they have activated.
    #[serde(default)]
    pub total_activations: u64,
}

/// A refusal with the code the service sent, before it became an
/// [`Error`]: some callers act on a code the mapping does not keep.
struct Refusal {
    code: Option<String>,
    error: Error,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        refusal.error
    }
}

impl VendorClient {
    /// The service at `url`: `https://HOST[:PORT][/PATH]`, or
    /// `http://` to a loopback address (`127.0.0.0/8`, `::1`,
    /// `localhost`). Anything else is `INVALID_ARGUMENT`, saying why.
    /// No connection is made.
    ///
    /// ```
    /// use entitle::client::VendorClient;
    /// assert!(VendorClient::new("https://example.com/licensing/").is_ok());
    /// assert!(VendorClient::new("http://[::1]:8750").is_ok());
    /// assert!(VendorClient::new("http://localhost:8750").is_ok());
    /// assert!(VendorClient::new("http://10.0.0.5:8750").is_err());
    /// assert!(VendorClient::new("ftp://example.com").is_err());
    /// ```
    pub fn new(url: &str) -> Result<VendorClient> {
        let base = checked_base(url)?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            // A redirect is not followed: it could lead off https, and
            // the service never answers one.
            .redirects(0)
            .build();
        Ok(VendorClient { base, agent })
    }

    /// The service's address, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), Refusal> {
        let url = format!("{}{path}", self.base);
        self.answer(self.agent.post(&url).send_json(body))
    }

    fn answer(
        &self,
        sent: std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<(u16, Value), Refusal> {
        let unreachable = |detail: String| Refusal {
            code: None,
            error: Error::ServerUnreachable {
                url: self.base.clone(),
                detail,
            },
        };
        match sent {
            Ok(response) => {
                let status = response.status();
                if !(200..300).contains(&status) {
                    return Err(unreachable(format!(
                        "it answered {status}, which the vendor's service never does (a proxy \
                         or a redirect?)"
                    )));
                }
                let value = read_json(response)
                    .map_err(|e| unreachable(format!("its answer is not the service's: {e}")))?;
                Ok((status, value))
            }
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = retry_after(&response);
                let body = read_json(response).unwrap_or(Value::Null);
                let code = body["error"]["code"].as_str().map(str::to_owned);
                let error = match server_error(status, &body, retry_after, WHO) {
                    Some(error) => error,
                    None if status == 429 => Error::RateLimited {
                        retry_after_secs: retry_after.unwrap_or(60),
                    },
                    None => {
                        return Err(unreachable(format!(
                            "it answered {status} without an error body"
                        )))
                    }
                };
                Err(Refusal { code, error })
            }
            Err(ureq::Error::Transport(transport)) => Err(unreachable(transport.to_string())),
        }
    }

    /// The licenses of `product` assigned to the user `email`, as the
    /// service lists them (`GET /v1/user/licenses`), each token verified
    /// against `engine`'s trusted keys: a token that does not verify
    /// fails the call. Installs nothing.
    ///
    /// ```no_run
    /// # use entitle::{client::VendorClient, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
    /// for item in vendor.user_licenses(&engine, "ada@example.com", "secret").unwrap() {
    ///     println!("{} ({} devices activated)", item.license.id, item.user.total_activations);
    /// }
    /// ```
    pub fn user_licenses(
        &self,
        engine: &Engine,
        email: &str,
        password: &str,
    ) -> Result<Vec<UserLicense>> {
        check_credential("email", email)?;
        check_credential("password", password)?;
        let url = format!(
            "{}/v1/user/licenses?product={}",
            self.base,
            encode(engine.product())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
        let sent = self
            .agent
            .get(&url)
            .set("Authorization", &format!("Basic {basic}"))
            .call();
        let (_, answer) = self.answer(sent)?;
        let items = answer
            .as_array()
            .ok_or_else(|| malformed("its list of a user's licenses is not an array"))?;
        let keyring = engine.keyring();
        let mut licenses = Vec::with_capacity(items.len());
        for item in items {
            let text = item["token"]
                .as_str()
                .ok_or_else(|| malformed("a listed license has no `token`"))?;
            let verified = VerifiedLicense::verify(text, &keyring)?;
            let user: VendorUser = serde_json::from_value(item["user"].clone())
                .map_err(|e| malformed(format!("a listed license's `user`: {e}")))?;
            licenses.push(UserLicense {
                license: verified.license().clone(),
                token: verified.token().to_owned(),
                user,
            });
        }
        Ok(licenses)
    }
}

/// The base URL, if the service may be reached there.
fn checked_base(url: &str) -> Result<String> {
    let shown: String = url.chars().take(200).collect();
    let refuse = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "`{shown}` cannot be the vendor's service: {why}"
        )))
    };
    let base = url.trim().trim_end_matches('/');
    if base.chars().any(|c| c.is_whitespace() || c.is_control()) || base.contains(['?', '#']) {
        return refuse("write https://HOST[:PORT][/PATH], with no spaces, query or fragment");
    }
    let (secure, rest) = if let Some(rest) = base.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = base.strip_prefix("http://") {
        (false, rest)
    } else {
        return refuse("write https://HOST[:PORT]");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("an address holding a user name or password is not accepted; give the license key or login to the command instead");
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return refuse("it names no host; write https://HOST[:PORT]");
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !secure && !loopback {
        return refuse(
            "plain http:// is accepted only to this machine (127.0.0.1, ::1, localhost); over \
             a network the license key, the password and the answers must travel encrypted: \
             write https://",
        );
    }
    Ok(base.to_owned())
}

/// An answer's JSON, read up to [`MAX_ANSWER_BYTES`].
fn read_json(response: ureq::Response) -> std::result::Result<Value, String> {
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_ANSWER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_ANSWER_BYTES {
        return Err(format!("it is over {MAX_ANSWER_BYTES} bytes"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON ({e})"))
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::malformed("answer of the vendor's service", detail)
}

/// A license key, email or password as given: something, and not absurd.
fn check_credential(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() || value.len() > 1024 {
        return Err(Error::InvalidArgument(format!(
            "the {what} is empty or longer than 1024 bytes; give the one the vendor sent"
        )));
    }
    Ok(())
}

/// `error`, saying that the device was deactivated here and its receipt
/// kept, though the service did not take it.
fn receipt_not_sent(error: Error, fingerprint: &str, license_id: &str) -> Error {
    let note = format!(
        "device `{fingerprint}` is deactivated here for license `{license_id}` and its receipt is \
         kept in this install's state, but the vendor's service did not take it: deactivate \
         online again to send it again, or carry it to the vendor (`entitle deactivate \
         --receipt FILE` writes it)"
    );
    match error {
        Error::ServerUnreachable { url, detail } => Error::ServerUnreachable {
            url,
            detail: format!("{detail}; {note}"),
        },
        Error::Denied {
            reason,
            message,
            retry_at,
        } => Error::Denied {
            reason,
            message: format!("{message}; {note}"),
            retry_at,
        },
        Error::ReceiptInvalid { detail } => Error::ReceiptInvalid {
            detail: format!("{detail}; {note}"),
        },
        Error::Unauthorized(message) => Error::Unauthorized(format!("{message}; {note}")),
        Error::InvalidArgument(message) => Error::InvalidArgument(format!("{message}; {note}")),
        Error::Malformed { what, detail } => Error::Malformed {
            what,
            detail: format!("{detail}; {note}"),
        },
        // The rest carry no words of their own to add to; they keep their
        // code, and the receipt is kept all the same.
        other => other,
    }
}

impl Engine {
    /// Activates this device with a license key the user typed
    /// (`POST /v1/activations`): the service picks the key's license,
    /// counts the device and answers the license and a machine
    /// certificate, both installed here after they verify (see
    /// [`VendorClient`]).
    ///
    /// Refused as the service refuses: `ACTIVATION_LIMIT`,
    /// `VM_NOT_ALLOWED`, `UNAUTHORIZED` (no license has this key),
    /// `RATE_LIMITED`; `SERVER_UNREACHABLE`; `SIGNATURE_INVALID` or
    /// `UNKNOWN_KEY` when the answer is not signed by a key this install
    /// trusts, `FINGERPRINT_MISMATCH` when its certificate is for another
    /// device or install. Nothing is installed unless both tokens verify.
    ///
    /// ```no_run
    /// # use entitle::{client::VendorClient, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
    /// match engine.activate_online(&vendor, "ABCDE-FGHJK-MNPQR-STVWX-YZ012") {
    ///     Ok(done) => println!("activated for {}", done.license_id),
    ///     Err(e) => eprintln!("{}", e.user_message()),
    /// }
    /// ```
    pub fn activate_online(&self, vendor: &VendorClient, key: &str) -> Result<OnlineActivation> {
        check_credential("license key", key)?;
        let request = self.request_text()?;
        let body = json!({"request": request, "key": key.trim()});
        self.activate_through(vendor, "/v1/activations", &body)
    }

    /// Activates this device with the license assigned to a user of the
    /// service, who logs in with `email` and `password`; otherwise as
    /// [`activate_online`](Self::activate_online). A wrong login is
    /// `UNAUTHORIZED`; a user with no license of this product is refused
    /// with the service's words.
    ///
    /// ```no_run
    /// # use entitle::{client::VendorClient, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
    /// let done = engine.activate_online_user(&vendor, "ada@example.com", "secret").unwrap();
    /// assert!(engine.is_activated(&done.license_id));
    /// ```
    pub fn activate_online_user(
        &self,
        vendor: &VendorClient,
        email: &str,
        password: &str,
    ) -> Result<OnlineActivation> {
        check_credential("email", email)?;
        check_credential("password", password)?;
        let request = self.request_text()?;
        let body = json!({
            "request": request,
            "user": {"email": email.trim(), "password": password},
        });
        self.activate_through(vendor, "/v1/activations", &body)
    }

    /// Starts this device's trial (`POST /v1/trials`): the service answers
    /// a trial license node-locked to this device and its certificate,
    /// installed here after they verify. One trial per device and
    /// product: `TRIAL_USED` after that.
    ///
    /// ```no_run
    /// # use entitle::{client::VendorClient, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
    /// match engine.start_trial_online(&vendor) {
    ///     Ok(trial) => println!("trial until {:?}", trial.expires_at),
    ///     Err(e) if e.code() == "TRIAL_USED" => println!("buy a license"),
    ///     Err(e) => eprintln!("{}", e.user_message()),
    /// }
    /// ```
    pub fn start_trial_online(&self, vendor: &VendorClient) -> Result<OnlineActivation> {
        let request = self.request_text()?;
        let body = json!({"request": request});
        self.activate_through(vendor, "/v1/trials", &body)
            .map_err(|e| match (e, self.fingerprint()) {
                (Error::TrialUsed { .. }, Some(own)) => Error::TrialUsed {
                    fingerprint: own.to_owned(),
                },
                (other, _) => other,
            })
    }

    /// Deactivates this device for every license it is activated for,
    /// signing a receipt for each with the install key
    /// ([`deactivate_with_receipt`](Self::deactivate_with_receipt)) and
    /// posting it (`POST /v1/deactivations`), which frees its slot at the
    /// vendor. The deactivation here comes first and is durable with its
    /// receipt: when the post fails, the error says so and the receipt
    /// stays kept, and calling this again sends it again. A receipt the
    /// service took before counts as sent.
    ///
    /// ```no_run
    /// # use entitle::{client::VendorClient, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
    /// let done = engine.deactivate_online(&vendor).unwrap();
    /// println!("freed {:?}", done.license_ids);
    /// ```
    pub fn deactivate_online(&self, vendor: &VendorClient) -> Result<OnlineDeactivation> {
        let fingerprint = self
            .fingerprint()
            .ok_or_else(crate::device::unknown)?
            .to_owned();
        let mut licenses: Vec<Option<String>> = Vec::new();
        for activation in self.activations() {
            let id = Some(activation.license_id);
            if activation.fingerprint == fingerprint && !licenses.contains(&id) {
                licenses.push(id);
            }
        }
        if licenses.is_empty() {
            // Deactivated before: the kept receipt, sent again.
            licenses.push(None);
        }
        let mut done = OnlineDeactivation {
            fingerprint: fingerprint.clone(),
            license_ids: Vec::new(),
            again: false,
        };
        for license in licenses {
            let issued = self.deactivate_with_receipt(&fingerprint, license.as_deref())?;
            let license_id = issued.receipt.license_id.clone();
            let (compact, _) = token::dearmor(&issued.token)?;
            match vendor.post("/v1/deactivations", &json!({"receipt": compact})) {
                Ok(_) => {}
                // Taken before: its slot is free already.
                Err(refusal) if refusal.code.as_deref() == Some("RECEIPT_REPLAYED") => {}
                Err(refusal) => {
                    return Err(receipt_not_sent(refusal.error, &fingerprint, &license_id))
                }
            }
            done.again |= issued.again;
            done.license_ids.push(license_id);
        }
        Ok(done)
    }

    /// Syncs with the vendor's service (`POST /v1/sync`): sends the ids
    /// of the licenses installed, this device's fingerprint and the
    /// install key; applies what comes back, each token through the same
    /// verification as a file (a key rotation first, since it may be what
    /// the rest is signed with; then revocations; then licenses); and
    /// deletes this install's activations whose certificate the vendor
    /// withdrew. A token that does not verify or apply grants nothing and
    /// is listed in [`SyncOutcome::refused`]; the others still apply.
    ///
    /// A service that cannot be reached is `SERVER_UNREACHABLE`, and
    /// nothing changes: every right held offline stays.
    ///
    /// ```no_run
    /// # use entitle::{client::VendorClient, Engine};
    /// # let engine = Engine::builder("acme").in_memory().build().unwrap();
    /// let vendor = VendorClient::new("https://licensing.example.com").unwrap();
    /// match engine.sync_online(&vendor) {
    ///     Ok(outcome) => println!("{} applied, {} refused", outcome.applied(), outcome.refused.len()),
    ///     Err(e) if e.code() == "SERVER_UNREACHABLE" => {} // offline: try later
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// ```
    pub fn sync_online(&self, vendor: &VendorClient) -> Result<SyncOutcome> {
        let fingerprint = self.fingerprint().ok_or_else(crate::device::unknown)?;
        let install_key = self.install_key().ok_or_else(|| {
            Error::InvalidArgument(
                "this install has no install key; open it again (the key is made when the state \
                 is opened) and retry"
                    .into(),
            )
        })?;
        let license_ids: Vec<String> = self.license_infos().into_iter().map(|l| l.id).collect();
        let body = json!({
            "license_ids": license_ids,
            "fingerprint": fingerprint,
            "install_key": install_key.to_base64url(),
        });
        let (_, answer) = vendor.post("/v1/sync", &body)?;
        // The whole answer's shape first: a garbled one applies nothing.
        let licenses = strings(&answer, "licenses")?;
        let withdrawn = strings(&answer, "withdrawn")?;
        let revocations = optional_string(&answer, "revocations")?;
        let keys = optional_string(&answer, "keys")?;

        let mut outcome = SyncOutcome::default();
        let mut refused = Vec::new();
        if let Some(text) = keys {
            let applied = token::verify(text, &self.keyring(), TokenType::Keys)
                .and_then(|_| self.apply(text));
            match applied {
                Ok(Applied::Keys { trusted, retired }) => {
                    outcome.trusted_keys = trusted;
                    outcome.retired_keys = retired;
                }
                Ok(_) => {}
                Err(e) => refused.push(refused_token("key rotation".into(), &e)),
            }
        }
        if let Some(text) = revocations {
            match self.apply_revocations(text) {
                Ok(ids) => outcome.revoked = ids,
                Err(e) => refused.push(refused_token("revocation list".into(), &e)),
            }
        }
        for text in licenses {
            let verified = match VerifiedLicense::verify(text, &self.keyring()) {
                Ok(verified) => verified,
                Err(e) => {
                    refused.push(refused_token("license".into(), &e));
                    continue;
                }
            };
            let id = verified.id.clone();
            if self.installed_license_token(&id).as_deref() == Some(verified.token()) {
                continue;
            }
            match self.add_license(text) {
                Ok(_) => outcome.licenses.push(id),
                Err(e) => refused.push(refused_token(format!("license `{id}`"), &e)),
            }
        }
        let ids: Vec<String> = withdrawn.iter().map(|id| (*id).to_owned()).collect();
        for (license_id, fingerprint) in self.withdraw_certificates(&ids)? {
            outcome.withdrawn.push(WithdrawnActivation {
                license_id,
                fingerprint,
            });
        }
        outcome.refused = refused;
        Ok(outcome)
    }

    /// This device's activation request naming no license, as the text
    /// the service reads.
    fn request_text(&self) -> Result<String> {
        let request = self.activation_request_for_any_license()?;
        serde_json::to_string(&request).map_err(|e| {
            Error::InvalidArgument(format!("cannot write the activation request: {e}"))
        })
    }

    /// Posts an activation or a trial and installs its answer.
    fn activate_through(
        &self,
        vendor: &VendorClient,
        path: &str,
        body: &Value,
    ) -> Result<OnlineActivation> {
        let (status, answer) = vendor.post(path, body)?;
        let license_text = answer["license"]
            .as_str()
            .ok_or_else(|| malformed("it has no `license` token"))?;
        let certificate_text = answer["certificate"]
            .as_str()
            .ok_or_else(|| malformed("it has no `certificate` token"))?;
        // Both verified, and the certificate found to be this install's,
        // before either is installed: a forged or misdirected answer
        // leaves nothing behind.
        let keyring = self.keyring();
        let license = VerifiedLicense::verify(license_text, &keyring)?;
        if license.product != self.product() {
            return Err(Error::ProductMismatch {
                what: format!("license `{}` from the vendor's service", license.id),
                expected: self.product().to_owned(),
                found: license.product.clone(),
            });
        }
        let verified = token::verify(certificate_text, &keyring, TokenType::Machine)?;
        let certificate =
            MachineCertificate::from_json(&Value::Object(verified.payload().clone()))?;
        if certificate.license_id != license.id {
            return Err(malformed(format!(
                "its certificate is for license `{}`, but its license is `{}`",
                certificate.license_id, license.id
            )));
        }
        self.certificate_is_ours(&certificate)?;
        self.add_license(license_text)?;
        let applied = self.apply_certificate(certificate_text)?;
        Ok(OnlineActivation {
            license_id: applied.license_id,
            fingerprint: applied.fingerprint,
            newly_counted: status == 201,
            expires_at: applied.expires_at,
        })
    }
}

fn refused_token(what: String, error: &Error) -> RefusedToken {
    RefusedToken {
        what,
        code: error.code(),
        message: error.to_string(),
    }
}

/// The answer's array of strings `field` (absent: none).
fn strings<'a>(answer: &'a Value, field: &str) -> Result<Vec<&'a str>> {
    match &answer[field] {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| malformed(format!("`{field}` holds something not a string")))
            })
            .collect(),
        _ => Err(malformed(format!("`{field}` is not an array"))),
    }
}

/// The answer's optional string `field`.
fn optional_string<'a>(answer: &'a Value, field: &str) -> Result<Option<&'a str>> {
    match &answer[field] {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        _ => Err(malformed(format!("`{field}` is not a token"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_off_this_machine() {
        for url in [
            "http://127.0.0.1:1",
            "http://127.8.9.10",
            "http://[::1]:8750/",
            "http://LOCALHOST:8750",
            "https://example.com",
            "https://[2001:db8::1]:443/v",
        ] {
            assert!(checked_base(url).is_ok(), "{url}");
        }
        for url in [
            "http://example.com",
            "http://10.0.0.1",
            "http://[2001:db8::1]",
            "http://127.0.0.1.example.com",
            "http://localhost.example.com",
            "http://user:pw@127.0.0.1",
            "https://",
            "https://example.com?x=1",
            "ftp://127.0.0.1",
            "127.0.0.1:8750",
        ] {
            let refused = checked_base(url).unwrap_err();
            assert_eq!(refused.code(), "INVALID_ARGUMENT", "{url}");
        }
        assert!(checked_base("http://example.com")
            .unwrap_err()
            .to_string()
            .contains("https://"));
    }
}
