//! The vendor's commands: make keys, issue and revoke licenses, verify and
//! inspect tokens, answer offline activation requests. Only `respond`
//! touches a state directory, and only a vendor's own, when named.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::builder::NonEmptyStringValueParser;
use clap::error::ErrorKind;
use clap::{Args, Subcommand};
use entitle::engine::ActivationRequest;
use entitle::license::{KeyRotation, License, MachineCertificate, RevocationList};
use entitle::token::{self, Keyring, PublicKey, SigningKey, TokenType, MAX_TOKEN_BYTES};
use entitle::{Error, Timestamp};
use serde_json::{json, Value};

use crate::files;
use crate::output::{self, Failure, Outcome};
use crate::state::open_books;
use crate::Globals;

/// The vendor side of `entitle`.
#[derive(Debug, Subcommand)]
pub enum VendorCommand {
    /// Make a new signing key pair: PREFIX.key (private) and PREFIX.pub.
    Keygen(KeygenArgs),
    /// Sign a license document (a JSON spec) into an armored license file.
    Issue(IssueArgs),
    /// Check a token's signature and document; print what it says.
    Verify(VerifyArgs),
    /// Show a token's header and payload WITHOUT checking its signature.
    Inspect(InspectArgs),
    /// Sign a revocation list: these license ids may never be used again.
    Revoke(RevokeArgs),
    /// Answer an offline activation request with a machine certificate.
    Respond(RespondArgs),
    /// Sign a key rotation: installs trusting KEY trust the new keys (and
    /// no longer the retired ones) once they apply it.
    Rotate(RotateArgs),
}

/// `entitle keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write PREFIX.key (PKCS#8 PEM, private) and PREFIX.pub (SPKI PEM).
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Replace existing key files (licenses signed with the old key then
    /// verify only against the old public key).
    #[arg(long)]
    force: bool,
}

/// `entitle issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The private key (PEM PKCS#8), from `entitle keygen` or openssl.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The `kid` to put in the header; defaults to the key's RFC 7638
    /// thumbprint, which is how installs find the key.
    #[arg(long, value_name = "KID", value_parser = NonEmptyStringValueParser::new())]
    kid: Option<String>,
    /// The license document as JSON; `v`, `issued_at` and a random `id`
    /// are filled in when missing.
    #[arg(long, value_name = "FILE.json")]
    spec: PathBuf,
    /// Write the armored license here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Sign a spec with fields this version does not know (fields for a
    /// newer version of entitle): installs keep them but ignore them.
    /// Without it such a spec is refused, since a misspelt field would
    /// be ignored too.
    #[arg(long)]
    allow_unknown: bool,
}

/// `entitle verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The vendor public keys to trust (PEM); repeat or list several.
    #[arg(long = "pub", value_name = "FILE", required = true, num_args = 1..)]
    public_keys: Vec<PathBuf>,
    /// The token to check (armored or bare).
    #[arg(value_name = "TOKEN_FILE")]
    token: Option<PathBuf>,
}

/// `entitle inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token to decode (armored or bare).
    #[arg(value_name = "TOKEN_FILE")]
    token: PathBuf,
}

/// `entitle revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The private key (PEM PKCS#8) that signs the list.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// A license id to revoke; repeat or list several.
    #[arg(long = "id", value_name = "ID", required = true, num_args = 1.., value_parser = NonEmptyStringValueParser::new())]
    ids: Vec<String>,
    /// The product whose installs the list is for. Only a list naming the
    /// install's product can clear a clock alarm there (docs/semantics.md#clock-rollback).
    #[arg(long, value_name = "CODE", value_parser = NonEmptyStringValueParser::new())]
    product: Option<String>,
    /// Write the armored revocation list here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `entitle rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// A private key (PEM PKCS#8) the installs trust now: it signs the
    /// rotation.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// New public keys to trust (PEM); repeat or list several.
    #[arg(long = "pub", value_name = "FILE", num_args = 1..)]
    public_keys: Vec<PathBuf>,
    /// The kid of a key to trust no longer; repeat or list several.
    #[arg(long, value_name = "KID", num_args = 1.., value_parser = NonEmptyStringValueParser::new())]
    retire: Vec<String>,
    /// The product whose installs the rotation is for. Only a rotation
    /// naming the install's product can clear a clock alarm there.
    #[arg(long, value_name = "CODE", value_parser = NonEmptyStringValueParser::new())]
    product: Option<String>,
    /// Write the armored rotation here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `entitle respond`.
#[derive(Debug, Args)]
pub struct RespondArgs {
    /// The private key (PEM PKCS#8) that signs the certificate.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The request the customer sent (from `entitle request`).
    #[arg(long, value_name = "FILE")]
    request: PathBuf,
    /// The activation ends at this instant [default: never].
    #[arg(long, value_name = "RFC3339", value_parser = crate::parse_time)]
    expires: Option<Timestamp>,
    /// Write the armored certificate here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs one vendor command.
pub fn run(command: VendorCommand, globals: &Globals) -> Result<Outcome, Failure> {
    match command {
        VendorCommand::Keygen(args) => Ok(keygen(&args)?),
        VendorCommand::Issue(args) => Ok(issue(&args, globals)?),
        VendorCommand::Verify(args) => {
            let (public_keys, token) = args.files()?;
            Ok(verify(public_keys, token)?)
        }
        VendorCommand::Inspect(args) => Ok(inspect(&args.token)?),
        VendorCommand::Revoke(args) => Ok(revoke(&args, globals)?),
        VendorCommand::Respond(args) => respond(&args, globals),
        VendorCommand::Rotate(args) => rotate(&args, globals),
    }
}

fn keygen(args: &KeygenArgs) -> Result<Outcome, Error> {
    let private_path = with_suffix(&args.out, ".key");
    let public_path = with_suffix(&args.out, ".pub");
    if !args.force {
        for (path, what) in [(&private_path, "private key"), (&public_path, "public key")] {
            if files::exists(path) {
                return Err(Error::Io {
                    context: format!("refusing to overwrite the {what} `{}`", path.display()),
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "it already exists; choose another --out PREFIX, or pass --force to \
                         replace it (licenses signed with the old key then verify only against \
                         the old public key)",
                    ),
                });
            }
        }
    }
    let key = SigningKey::generate()?;
    if args.force {
        files::remove_if_present(&private_path, "private key")?;
        files::remove_if_present(&public_path, "public key")?;
    }
    files::create_new(&private_path, "private key", &key.to_pem(), true)?;
    let public_pem = key.public_key().to_pem();
    if let Err(e) = files::create_new(&public_path, "public key", &public_pem, false) {
        // A private key whose public half was never written is of no use
        // and is a secret lying about: take it back.
        let _ = std::fs::remove_file(&private_path);
        return Err(e);
    }
    let kid = key.kid();
    let human = format!(
        "kid: {kid}\n\
         Wrote {private} (private: keep it secret and backed up)\n\
         and {public} (public: ship it with your application).\n\
         Next: write a license spec (JSON) and sign it:\n  \
         entitle issue --key {private} --spec license.json --out license.lic",
        private = private_path.display(),
        public = public_path.display(),
    );
    Ok(Outcome::new(
        json!({
            "kid": kid,
            "private_key": private_path.display().to_string(),
            "public_key": public_path.display().to_string(),
        }),
        human,
    ))
}

fn issue(args: &IssueArgs, globals: &Globals) -> Result<Outcome, Error> {
    let key = read_signing_key(&args.key)?;
    let spec = files::read_text(&args.spec, "license spec")?;
    let (license, document) =
        License::from_spec(&spec, globals.now()).map_err(|e| in_file(e, &args.spec))?;
    let unknown = license.unknown_fields(&document);
    if !unknown.is_empty() && !args.allow_unknown {
        let fields: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        return Err(in_file(
            Error::Malformed {
                what: "license spec",
                detail: format!(
                    "{}. Installs keep fields they do not know but ignore them, so this license \
                     would not do what the spec says: correct the names, or pass \
                     --allow-unknown to sign them as they are (fields for a newer version of \
                     entitle)",
                    fields.join("; ")
                ),
            },
            &args.spec,
        ));
    }
    let document = Value::Object(document);

    let kid = args.kid.as_deref().unwrap_or(key.kid());
    let compact = token::sign_with_kid(&document, &key, kid, TokenType::License)?;
    let armored = armor_checked(&compact, TokenType::License, "signed license")?;

    let mut warnings: Vec<(&str, String)> = unknown
        .iter()
        .map(|field| {
            (
                "UNKNOWN_FIELD",
                format!("{field}: signed as given; installs keep it but ignore it"),
            )
        })
        .collect();
    warnings.extend(
        license
            .issue_warnings()
            .iter()
            .map(|warning| (warning.code(), warning.to_string())),
    );
    if kid != key.kid() {
        warnings.push((
            "KID_NOT_THUMBPRINT",
            format!(
                "the header names kid `{kid}`, but installs know this key as `{}` (its RFC 7638 \
                 thumbprint): `entitle` installs will refuse this license with UNKNOWN_KEY; only \
                 other JOSE verifiers that use your kid will accept it.",
                key.kid()
            ),
        ));
    }

    let mut result = json!({
        "id": license.id,
        "kid": kid,
        "warnings": warnings
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message}))
            .collect::<Vec<_>>(),
    });
    let versions = license.versions.as_ref().map(ToString::to_string);
    result["versions"] = json!(versions);
    result["channels"] = json!(license.channels);
    let mut summary = format!(
        "Issued license `{}` for product `{}`, signed by kid {kid}.",
        license.id, license.product
    );
    if let Some(limits) = output::version_limits(versions.as_deref(), license.channels.as_deref()) {
        summary.push_str(&format!("\nFor {limits} only."));
    }
    let mut outcome = match &args.out {
        Some(out) => {
            files::write_text(out, "license", &armored)?;
            result["out"] = json!(out.display().to_string());
            let human = format!(
                "{summary}\nWrote {out}.\n\
                 Next: check it with `entitle verify --pub {public} {out}`, then send {out} \
                 to the customer, who installs it with `entitle license add {out}`.",
                out = out.display(),
                public = public_key_hint(&args.key),
            );
            Outcome::new(result, human)
        }
        None => Outcome::new(result, armored.clone()).with_note(format!(
            "{summary}\nThe license is on stdout; save it with --out FILE (or redirect) and \
             send it to the customer, who installs it with `entitle license add FILE`."
        )),
    };
    for (_, message) in warnings {
        outcome = outcome.with_warning(message);
    }
    Ok(with_token(outcome, &armored, &compact))
}

fn verify(public_keys: &[PathBuf], token_path: &Path) -> Result<Outcome, Error> {
    let mut keyring = Keyring::new();
    for path in public_keys {
        let pem = files::read_text(path, "public key file")?;
        keyring.add(PublicKey::from_pem(&pem).map_err(|e| in_file(e, path))?);
    }
    let text = files::read_text(token_path, "token file")?;
    let token = token::verify_any(&text, &keyring, None)?;
    let payload = Value::Object(token.payload().clone());
    // A good signature over a bad document is still a bad token: check the
    // document as the engine would before saying "valid".
    let (summary, next) = match token.typ() {
        TokenType::License => {
            let license = License::from_json(&payload)?;
            (
                format!(
                    "license `{}` for product `{}`, serial {}, issued {}",
                    license.id, license.product, license.serial, license.issued_at
                ),
                "Next: send it to the customer, who installs it with `entitle license add FILE`.",
            )
        }
        TokenType::Machine => {
            let certificate = MachineCertificate::from_json(&payload)?;
            (
                format!(
                    "activation of license `{}` on device `{}`, issued {}",
                    certificate.license_id, certificate.fingerprint, certificate.issued_at
                ),
                "Next: the customer applies it on that device with `entitle apply FILE`.",
            )
        }
        TokenType::Revocations => {
            let list = RevocationList::from_json(&payload)?;
            (
                format!(
                    "revocation of {} license id(s){}, issued {}",
                    list.ids.len(),
                    for_product(list.product.as_deref()),
                    list.issued_at
                ),
                "Next: apply it on each install with `entitle apply FILE`.",
            )
        }
        TokenType::Keys => {
            let rotation = KeyRotation::from_json(&payload)?;
            (
                format!(
                    "key rotation{} trusting {} key(s) and retiring {}, issued {}",
                    for_product(rotation.product.as_deref()),
                    rotation.keys.len(),
                    rotation.retire.len(),
                    rotation.issued_at
                ),
                "Next: apply it on each install with `entitle apply FILE`.",
            )
        }
        other => {
            return Err(Error::WrongType {
                expected: "license, machine, revocations or keys",
                found: other.as_str().to_owned(),
            })
        }
    };
    let human = format!(
        "VALID {typ} token, signed by kid {kid}: {summary}.\n{payload}\n{next}",
        typ = token.typ(),
        kid = token.kid(),
        payload = pretty(&payload),
    );
    Ok(Outcome::new(
        json!({
            "valid": true,
            "kid": token.kid(),
            "typ": token.typ().as_str(),
            "payload": payload,
        }),
        human,
    ))
}

fn inspect(token_path: &Path) -> Result<Outcome, Error> {
    let text = files::read_text(token_path, "token file")?;
    let token = token::decode_unverified(&text)?;
    let header = Value::Object(token.header);
    let payload = Value::Object(token.payload);
    let human = format!(
        "UNVERIFIED: the signature was NOT checked, so none of this can be trusted.\n\
         To check it: entitle verify --pub VENDOR.pub {path}\n\
         header: {header}\npayload:\n{payload}",
        path = token_path.display(),
        payload = pretty(&payload),
    );
    Ok(Outcome::new(
        json!({"verified": false, "header": header, "payload": payload}),
        human,
    ))
}

fn revoke(args: &RevokeArgs, globals: &Globals) -> Result<Outcome, Error> {
    let key = read_signing_key(&args.key)?;
    let mut seen = HashSet::new();
    let ids: Vec<&str> = args
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect();
    let issued_at = globals.now();
    let mut document = json!({"v": 1, "issued_at": issued_at.to_rfc3339(), "ids": ids});
    if let Some(product) = &args.product {
        document["product"] = json!(product);
    }
    RevocationList::from_json(&document)?;
    let compact = token::sign(&document, &key, TokenType::Revocations)?;
    let armored = armor_checked(&compact, TokenType::Revocations, "signed revocation list")?;

    let mut result = json!({"kid": key.kid(), "ids": ids, "issued_at": issued_at,
        "product": args.product});
    let summary = format!(
        "Revoked {} license id(s), signed by kid {}.",
        ids.len(),
        key.kid()
    );
    let outcome = match &args.out {
        Some(out) => {
            files::write_text(out, "revocation list", &armored)?;
            result["out"] = json!(out.display().to_string());
            let human = format!(
                "{summary}\nWrote {out}.\n\
                 Next: apply it on each install with `entitle apply {out}`; \
                 those licenses stop working there for good.",
                out = out.display()
            );
            Outcome::new(result, human)
        }
        None => Outcome::new(result, armored.clone()).with_note(format!(
            "{summary}\nThe revocation list is on stdout; save it with --out FILE and apply it \
             on each install with `entitle apply FILE`."
        )),
    };
    Ok(with_token(outcome, &armored, &compact))
}

fn respond(args: &RespondArgs, globals: &Globals) -> Result<Outcome, Failure> {
    let key = read_signing_key(&args.key)?;
    let text = files::read_text(&args.request, "activation request")?;
    let request =
        ActivationRequest::from_json_text(&text).map_err(|e| in_file(e, &args.request))?;
    let issued_at = globals.now();
    if let Some(end) = args.expires {
        if end <= issued_at {
            return Err(Error::InvalidArgument(format!(
                "--expires {end} is not after now ({issued_at}): the certificate would never \
                 activate anything; give a later time"
            ))
            .into());
        }
    }
    let mut document = json!({
        "v": 1,
        "license_id": request.license_id,
        "fingerprint": request.fingerprint,
        "issued_at": issued_at.to_rfc3339(),
    });
    if let Some(end) = args.expires {
        document["expires_at"] = json!(end.to_rfc3339());
    }
    // The device is bound to the install that asked: its receipts and
    // reports are checked against this key (docs/formats.md#activation-request).
    if let Some(key) = &request.install_key {
        document["install_key"] = json!(key);
    }
    // A device the install named is bound to the machine it asked from
    // (docs/semantics.md#what-stored-state-is-trusted): the certificate holds only there.
    if let Some(machine) = &request.machine {
        document["machine"] = json!(machine);
    }
    MachineCertificate::from_json(&document)?;

    // A vendor without a licensing server counts activations in a state of
    // its own (`entitle --state vendor-state init` and `license add`): the
    // device is recorded there first, so one over `max` is refused before
    // anything is signed. Only a state the vendor named counts (a default
    // `./entitle-state` lying about is more likely an install's), and a
    // named one that is missing is an error: a typo must not sign an
    // uncounted certificate.
    let counted_in = if globals.state_named() {
        let books = open_books(globals)?;
        books.record_issued_certificate(&request, args.expires)?;
        Some(globals.location()?.to_string())
    } else {
        None
    };

    let compact = token::sign(&document, &key, TokenType::Machine)?;
    let armored = armor_checked(&compact, TokenType::Machine, "machine certificate")?;
    let mut result = json!({
        "license_id": request.license_id,
        "fingerprint": request.fingerprint,
        "hostname": request.hostname,
        "issued_at": issued_at,
        "expires_at": args.expires,
        "kid": key.kid(),
        "counted_in": counted_in,
        "install_key": request.install_key,
    });
    let mut summary = format!(
        "Signed a machine certificate for license `{}` on device `{}` (host {}), {}.",
        request.license_id,
        request.fingerprint,
        request.hostname,
        args.expires
            .map_or("with no end".to_owned(), |end| format!("valid until {end}")),
    );
    if let Some(key) = request.install_key.as_deref() {
        let kid = PublicKey::from_base64url(key)?;
        summary.push_str(&format!(
            "\nBound to the install key {} that asked: its deactivation receipts and usage \
             reports are checked against it.",
            kid.kid()
        ));
    }
    match &counted_in {
        Some(dir) => summary.push_str(&format!("\nCounted in the vendor state at {dir}.")),
        None => summary.push_str(
            "\nNot counted anywhere: name a vendor state with --state DIR to enforce the \
             license's maximum activations.",
        ),
    }
    let outcome = match &args.out {
        Some(out) => {
            files::write_text(out, "machine certificate", &armored)?;
            result["out"] = json!(out.display().to_string());
            let human = format!(
                "{summary}\nWrote {out}.\n\
                 Next: send {out} back to the customer, who runs `entitle apply {out}` on that \
                 device.",
                out = out.display()
            );
            Outcome::new(result, human)
        }
        None => Outcome::new(result, armored.clone()).with_note(format!(
            "{summary}\nThe certificate is on stdout; save it with --out FILE.machine and send \
             it back to the customer, who runs `entitle apply FILE.machine` on that device."
        )),
    };
    Ok(with_token(outcome, &armored, &compact))
}

fn rotate(args: &RotateArgs, globals: &Globals) -> Result<Outcome, Failure> {
    if args.public_keys.is_empty() && args.retire.is_empty() {
        return Err(Failure::Usage(clap::Error::raw(
            ErrorKind::MissingRequiredArgument,
            "a rotation trusts new keys (--pub FILE) or retires old ones (--retire KID)\n\n\
             Usage: entitle rotate --key CURRENT.key --pub NEW.pub... [--retire KID...] [--out FILE]\n",
        )));
    }
    let key = read_signing_key(&args.key)?;
    let mut new_keys = Vec::new();
    for path in &args.public_keys {
        let pem = files::read_text(path, "public key file")?;
        new_keys.push(PublicKey::from_pem(&pem).map_err(|e| in_file(e, path))?);
    }
    let issued_at = globals.now();
    let mut document = json!({
        "v": 1,
        "issued_at": issued_at.to_rfc3339(),
        "keys": new_keys.iter().map(|k| URL_SAFE_NO_PAD.encode(k.as_bytes())).collect::<Vec<_>>(),
    });
    if !args.retire.is_empty() {
        document["retire"] = json!(args.retire);
    }
    if let Some(product) = &args.product {
        document["product"] = json!(product);
    }
    KeyRotation::from_json(&document)?;
    let compact = token::sign(&document, &key, TokenType::Keys)?;
    let armored = armor_checked(&compact, TokenType::Keys, "signed key rotation")?;
    let trusted: Vec<&str> = new_keys.iter().map(PublicKey::kid).collect();
    let mut result = json!({
        "kid": key.kid(),
        "trusted": trusted,
        "retired": args.retire,
        "product": args.product,
        "issued_at": issued_at,
    });
    let summary = format!(
        "Signed a key rotation{} with kid {}: trust {} new key(s) ({}), retire {}.",
        for_product(args.product.as_deref()),
        key.kid(),
        trusted.len(),
        trusted.join(", "),
        if args.retire.is_empty() {
            "none".to_owned()
        } else {
            args.retire.join(", ")
        },
    );
    let outcome = match &args.out {
        Some(out) => {
            files::write_text(out, "key rotation", &armored)?;
            result["out"] = json!(out.display().to_string());
            Outcome::new(
                result,
                format!(
                    "{summary}\nWrote {out}.\nNext: apply it on each install with \
                     `entitle apply {out}`; licenses signed with the new key then verify there.",
                    out = out.display()
                ),
            )
        }
        None => Outcome::new(result, armored.clone()).with_note(format!(
            "{summary}\nThe rotation is on stdout; save it with --out FILE and apply it on each \
             install with `entitle apply FILE`."
        )),
    };
    Ok(with_token(outcome, &armored, &compact))
}

/// " for product `P`", or nothing, for a summary line.
fn for_product(product: Option<&str>) -> String {
    product.map_or(String::new(), |p| format!(" for product `{p}`"))
}

impl VerifyArgs {
    /// The key files and the token file. `--pub` takes several values, so
    /// `--pub a.pub b.pub token.lic` hands clap's greedy parser the token
    /// as a third key: then the last value is the token, as the user meant.
    fn files(&self) -> Result<(&[PathBuf], &Path), Failure> {
        match (&self.token, self.public_keys.split_last()) {
            (Some(token), _) => Ok((&self.public_keys, token)),
            (None, Some((token, keys))) if !keys.is_empty() => Ok((keys, token)),
            _ => Err(Failure::Usage(clap::Error::raw(
                ErrorKind::MissingRequiredArgument,
                "the token file is missing\n\n\
                 Usage: entitle verify --pub KEY.pub [--pub KEY2.pub ...] TOKEN_FILE\n",
            ))),
        }
    }
}

/// The armored token, refused when it would be too large for any reader
/// to accept: better to fail at the vendor than at every customer.
fn armor_checked(compact: &str, typ: TokenType, what: &'static str) -> Result<String, Error> {
    let armored = token::armor(compact, typ);
    if armored.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            what,
            size: armored.len(),
            limit: MAX_TOKEN_BYTES,
        });
    }
    Ok(armored)
}

/// Adds the token, armored and compact, to the JSON form of an outcome.
fn with_token(mut outcome: Outcome, armored: &str, compact: &str) -> Outcome {
    outcome.json_mut()["token"] = json!(armored);
    outcome.json_mut()["compact"] = json!(compact);
    outcome
}

fn read_signing_key(path: &Path) -> Result<SigningKey, Error> {
    let pem = files::read_text(path, "private key file")?;
    SigningKey::from_pem(&pem).map_err(|e| in_file(e, path))
}

/// Says which file a key or document error came from: with several
/// `--pub` files, "malformed public key" alone does not say which.
fn in_file(error: Error, path: &Path) -> Error {
    match error {
        Error::Malformed { what, detail } => Error::Malformed {
            what,
            detail: format!("in `{}`: {detail}", path.display()),
        },
        other => other,
    }
}

/// The public key beside a private key `PREFIX.key`, as `keygen` names them.
fn public_key_hint(private_key: &Path) -> String {
    if private_key.extension().is_some_and(|ext| ext == "key") {
        private_key.with_extension("pub").display().to_string()
    } else {
        "VENDOR.pub".to_owned()
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
