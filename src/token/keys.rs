//! Ed25519 keys in PEM, their RFC 7638 thumbprints, and the [`Keyring`].

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A vendor's public key, as the install trusts it, with its `kid`.
///
/// ```
/// use entitle::token::SigningKey;
///
/// let key = SigningKey::generate().unwrap();
/// let public = key.public_key();
/// let pem = public.to_pem();
/// assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
/// let back = entitle::token::PublicKey::from_pem(&pem).unwrap();
/// assert_eq!(back.kid(), public.kid());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    kid: String,
}

impl PublicKey {
    /// Reads a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), as
    /// `openssl pkey -pubout` writes for an Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
            Error::malformed(
                "public key",
                format!("expected a PEM Ed25519 public key (-----BEGIN PUBLIC KEY-----): {e}"),
            )
        })?;
        Ok(PublicKey::from_verifying_key(key))
    }

    /// A public key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| Error::malformed("public key", "the 32 bytes are not an Ed25519 point"))?;
        Ok(PublicKey::from_verifying_key(key))
    }

    /// A public key from the base64url (no padding) of its 32 bytes: how
    /// key rotations, activation requests and machine certificates carry
    /// one (the JWK `x` of RFC 8037).
    ///
    /// ```
    /// use entitle::token::{PublicKey, SigningKey};
    /// let key = SigningKey::from_seed(&[7; 32]);
    /// let x = key.public_key().to_base64url();
    /// assert_eq!(PublicKey::from_base64url(&x).unwrap().kid(), key.kid());
    /// assert_eq!(PublicKey::from_base64url("AAAA").unwrap_err().code(), "MALFORMED");
    /// ```
    pub fn from_base64url(text: &str) -> Result<Self> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| Error::malformed("public key", "it is not base64url without padding"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::malformed("public key", "an Ed25519 public key is 32 bytes"))?;
        PublicKey::from_bytes(&bytes)
    }

    /// The base64url (no padding) of the 32 bytes.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.as_bytes())
    }

    fn from_verifying_key(key: ed25519_dalek::VerifyingKey) -> Self {
        let kid = thumbprint(key.as_bytes());
        PublicKey { key, kid }
    }

    /// The key's id: its RFC 7638 JWK thumbprint (base64url SHA-256).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> String {
        // Encoding 32 known-good bytes cannot fail; fall back to an empty
        // string rather than panic should the encoder ever change.
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// Checks a raw Ed25519 signature of `message` with strict verification
    /// (RFC 8032 plus the refusal of non-canonical `S` and of small-order
    /// keys and `R`), the check every token gets.
    ///
    /// # Errors
    ///
    /// [`Error::SignatureInvalid`], whatever the reason.
    ///
    /// ```
    /// use entitle::token::SigningKey;
    ///
    /// let key = SigningKey::from_seed(&[7; 32]);
    /// let signature = entitle::token::hazmat::sign_bytes(&key, b"hello");
    /// let err = key.public_key().verify_bytes(b"hellO", &signature).unwrap_err();
    /// assert_eq!(err.code(), "SIGNATURE_INVALID");
    /// ```
    pub fn verify_bytes(&self, message: &[u8], signature: &[u8; 64]) -> Result<()> {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| Error::SignatureInvalid)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).finish()
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: base64url (no
/// padding) of SHA-256 over `{"crv":"Ed25519","kty":"OKP","x":"<x>"}`.
///
/// ```
/// // RFC 8037 appendix A.3: the thumbprint of its example key.
/// let x = [0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9,
///          0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02,
///          0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a];
/// assert_eq!(entitle::token::thumbprint(&x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
/// ```
pub fn thumbprint(public_key: &[u8; 32]) -> String {
    let jwk = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

/// A vendor's private signing key. Never printed: its `Debug` shows the
/// `kid` only, and its bytes are zeroed when it is dropped.
///
/// ```
/// use entitle::token::SigningKey;
///
/// let key = SigningKey::generate().unwrap();
/// assert!(!format!("{key:?}").contains("PRIVATE"));
/// let pem = key.to_pem();
/// let back = SigningKey::from_pem(&pem).unwrap();
/// assert_eq!(back.kid(), key.kid());
/// ```
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut()).map_err(|e| {
            Error::io(
                "reading the system random generator",
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The key whose 32-byte secret seed is `seed` (RFC 8032 "private key").
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying_key(key.verifying_key());
        SigningKey { key, public }
    }

    /// Reads a PEM PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`), as
    /// `openssl genpkey -algorithm ed25519` writes.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
            // Do not echo any of the input: it is a secret.
            Error::malformed(
                "private key",
                "expected a PEM PKCS#8 Ed25519 private key (-----BEGIN PRIVATE KEY-----), as `openssl genpkey -algorithm ed25519` writes",
            )
        })?;
        let public = PublicKey::from_verifying_key(key.verifying_key());
        Ok(SigningKey { key, public })
    }

    /// PEM PKCS#8, zeroed when dropped: the RFC 8410 form that
    /// `openssl genpkey -algorithm ed25519` writes (version 1, the seed
    /// only).
    ///
    /// ```
    /// let pem = entitle::token::SigningKey::from_seed(&[7; 32]).to_pem();
    /// // The DER prefix of a v1 Ed25519 PrivateKeyInfo, as OpenSSL writes it.
    /// assert!(pem.contains("\nMC4CAQAwBQYDK2VwBCIEI"));
    /// ```
    pub fn to_pem(&self) -> Zeroizing<String> {
        // Not ed25519-dalek's own `to_pkcs8_pem`: it writes the v2 form with
        // the public key attached, which OpenSSL 3.0 and Python's
        // `cryptography` refuse to read (curve25519-dalek issue #627).
        let seed_only = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        seed_only
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| Zeroizing::new(pem.as_str().to_owned()))
            .unwrap_or_default()
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The `kid` of the matching public key.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The raw Ed25519 signature of `message`: [`hazmat::sign_bytes`].
    ///
    /// [`hazmat::sign_bytes`]: crate::token::hazmat::sign_bytes
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

/// The public keys an install trusts, by `kid`. Holding several lets a
/// vendor rotate keys without breaking installed licenses.
///
/// ```
/// use entitle::token::{Keyring, SigningKey};
///
/// let old = SigningKey::generate().unwrap();
/// let new = SigningKey::generate().unwrap();
/// let mut keyring = Keyring::new();
/// keyring.add(old.public_key().clone());
/// keyring.add(new.public_key().clone());
/// assert!(keyring.get(new.kid()).is_some());
/// assert_eq!(keyring.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: FxHashMap<String, PublicKey>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// A keyring of the PEM public keys in `pems`.
    pub fn from_pems<'a>(pems: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut keyring = Keyring::new();
        for pem in pems {
            keyring.add(PublicKey::from_pem(pem)?);
        }
        Ok(keyring)
    }

    /// Trusts `key` (under its thumbprint `kid`).
    pub fn add(&mut self, key: PublicKey) {
        self.keys.insert(key.kid.clone(), key);
    }

    /// Trusts the key with this `kid` no longer.
    pub fn remove(&mut self, kid: &str) -> Option<PublicKey> {
        self.keys.remove(kid)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }
}
