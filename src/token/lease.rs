//! Lease tokens: a license server's signed word that a client holds a
//! floating seat until an instant (docs/formats.md#lease-token-typ-lease).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ident::is_name;
use crate::time::Timestamp;
use crate::token::{self, Keyring, PublicKey, SigningKey, TokenType};

const WHAT: &str = "lease token";

/// The payload of a `typ: "lease"` token, signed by a license server's
/// lease key: `{"v": 1, "lease_id", "license_ids", "client", "feature"?,
/// "issued_at", "expires_at", "borrowed"}`.
///
/// A client holding the server's public key ([`entitle serve
/// --print-lease-pub`](crate::token) prints it) checks a lease offline
/// with [`LeaseToken::verify`]: a borrowed token (`borrowed: true`) is what
/// a laptop carries off the network. What it proves is that the server
/// holding that key granted the seat to `client` until `expires_at`; it
/// does not prove that the laptop presenting it is that client (README,
/// threat model).
///
/// ```
/// use entitle::token::{LeaseToken, SigningKey};
/// use entitle::Timestamp;
///
/// let server = SigningKey::from_seed(&[9; 32]);
/// let lease = LeaseToken::new(
///     "lease_1",
///     vec!["lic_1".into()],
///     "desk-7",
///     Some("cad"),
///     Timestamp::parse("2026-05-01T00:00:00Z").unwrap(),
///     Timestamp::parse("2026-05-08T00:00:00Z").unwrap(),
///     true,
/// );
/// let token = lease.sign(&server).unwrap();
/// let read = LeaseToken::verify(&token, server.public_key()).unwrap();
/// assert!(read.borrowed);
/// assert!(read.live_at(Timestamp::parse("2026-05-07T00:00:00Z").unwrap()));
/// assert!(!read.live_at(Timestamp::parse("2026-05-08T00:00:00Z").unwrap()));
/// let stranger = SigningKey::from_seed(&[4; 32]);
/// let err = LeaseToken::verify(&token, stranger.public_key()).unwrap_err();
/// assert_eq!(err.code(), "SIGNATURE_INVALID");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaseToken {
    /// Schema version: 1.
    pub v: u32,
    /// The lease on the server (for heartbeat, check-in, borrow).
    pub lease_id: String,
    /// The licenses whose floating seats the pool adds up.
    pub license_ids: Vec<String>,
    /// The client the seat is leased to.
    pub client: String,
    /// The feature pool, absent for the license-level pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// When the server signed it.
    pub issued_at: Timestamp,
    /// When the seat is free again unless renewed (or the borrow ends).
    pub expires_at: Timestamp,
    /// Borrowed: the seat is held without heartbeats until `expires_at`.
    pub borrowed: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LeaseToken {
    /// A lease token's payload, version 1.
    pub fn new(
        lease_id: impl Into<String>,
        license_ids: Vec<String>,
        client: impl Into<String>,
        feature: Option<&str>,
        issued_at: Timestamp,
        expires_at: Timestamp,
        borrowed: bool,
    ) -> Self {
        LeaseToken {
            v: 1,
            lease_id: lease_id.into(),
            license_ids,
            client: client.into(),
            feature: feature.map(str::to_owned),
            issued_at,
            expires_at,
            borrowed,
            extra: Map::new(),
        }
    }

    /// Reads and checks a lease payload.
    pub fn from_json(value: &Value) -> Result<Self> {
        let lease: LeaseToken = token::from_value(value, WHAT)?;
        if lease.v != 1 {
            return Err(Error::malformed(WHAT, "field `v` must be 1"));
        }
        let names = [("lease_id", &lease.lease_id), ("client", &lease.client)]
            .into_iter()
            .chain(lease.feature.iter().map(|f| ("feature", f)))
            .chain(lease.license_ids.iter().map(|id| ("license_ids", id)));
        for (field, text) in names {
            if !is_name(text) {
                return Err(Error::malformed(
                    WHAT,
                    format!("field `{field}` must hold 1 to 256 printable characters"),
                ));
            }
        }
        if lease.expires_at < lease.issued_at {
            return Err(Error::malformed(
                WHAT,
                "field `expires_at` is before `issued_at`",
            ));
        }
        Ok(lease)
    }

    /// Verifies a lease token (armored or bare) against the server's
    /// public key, and reads its payload. A token signed by any other key
    /// is `SIGNATURE_INVALID`; a token of another type is `WRONG_TYPE`.
    /// Whether the lease is still live is [`LeaseToken::live_at`]'s to say.
    pub fn verify(text: &str, server_key: &PublicKey) -> Result<Self> {
        let mut keyring = Keyring::new();
        keyring.add(server_key.clone());
        let verified = token::verify(text, &keyring, TokenType::Lease).map_err(|e| match e {
            // One key is trusted here: an unknown `kid` is a signature
            // that key did not make.
            Error::UnknownKey { .. } => Error::SignatureInvalid,
            other => other,
        })?;
        Self::from_json(&Value::Object(verified.payload().clone()))
    }

    /// Signs this lease with the server's lease key: the compact token.
    pub fn sign(&self, key: &SigningKey) -> Result<String> {
        let payload = serde_json::to_value(self)
            .map_err(|e| Error::malformed(WHAT, format!("it does not serialize: {e}")))?;
        token::sign(&payload, key, TokenType::Lease)
    }

    /// Whether the seat is held at `now`: from `issued_at` until
    /// `expires_at` (excluded). A clock set back before `issued_at` is not
    /// trusted to extend anything.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.issued_at <= now && now < self.expires_at
    }
}
