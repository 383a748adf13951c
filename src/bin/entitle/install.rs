//! The install side: `init` makes the state directory, every other command
//! opens it as an [`Engine`] and acts through the library, exactly as an
//! application linking the crate would.
//!
//! This module holds what every group shares (the state's settings,
//! [`open_engine`]) and the rights themselves (`check`, `limit`, `consume`,
//! `apply`); licenses, users, devices and leases have a module each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use entitle::device::{default_fingerprint, detect_virtual_machine};
use entitle::engine::Applied;
use entitle::license::MAX_NAME_LEN;
use entitle::store::{Change, FileStore, Store};
use entitle::token::{Keyring, PublicKey};
use entitle::{Decision, Engine, Error, ManualClock, Reason, SystemClock, Timestamp};
use serde_json::{json, Value};

use crate::output::{Failure, Outcome};
use crate::{devices, files, leases, licenses, users, Globals};

/// The meta keys `init` writes: the settings every later command reads.
mod meta {
    pub const PRODUCT: &str = "product";
    /// A JSON array of the trusted public keys, as PEM.
    pub const KEYS: &str = "keys";
    pub const RELEASE_DATE: &str = "release_date";
    pub const FINGERPRINT: &str = "fingerprint";
}

/// The install side of `entitle`.
#[derive(Debug, Subcommand)]
pub enum InstallCommand {
    /// Create this install's state directory, trusting the vendor's keys.
    Init(InitArgs),
    /// Add, list and remove licenses; seat status and usage.
    #[command(subcommand)]
    License(licenses::LicenseCommand),
    /// May FEATURE be used now? Exit status 0 allowed, 1 denied.
    Check(CheckArgs),
    /// The quota of a feature: the sum of `limit` over licenses in force.
    Limit(LimitArgs),
    /// Named users and their seats.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Activate this device (or the one named) for node-locked licenses.
    Activate(devices::ActivateArgs),
    /// Deactivate a device, freeing its slot (counts one transfer).
    Deactivate(devices::DeactivateArgs),
    /// The devices activated here.
    #[command(subcommand)]
    Activation(devices::ActivationCommand),
    /// Write an offline activation request to send to the vendor.
    Request(devices::RequestArgs),
    /// Apply a file from the vendor: license, machine certificate or
    /// revocation list.
    Apply(ApplyArgs),
    /// Floating seats: check out, renew, borrow, return.
    #[command(subcommand)]
    Lease(leases::LeaseCommand),
    /// Record use of a metered feature, all or nothing.
    Consume(ConsumeArgs),
    /// How much of a metered feature this period has used.
    Consumption(ConsumptionArgs),
}

/// `entitle init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The vendor public keys to trust (PEM); repeat or list several.
    #[arg(long = "pub", value_name = "FILE", required = true, num_args = 1..)]
    public_keys: Vec<PathBuf>,
    /// The product code this install enforces.
    #[arg(long, value_name = "CODE", value_parser = NonEmptyStringValueParser::new())]
    product: String,
    /// The release date of the application build, checked against
    /// `maintenance_until`.
    #[arg(long, value_name = "RFC3339", value_parser = crate::parse_time)]
    release_date: Option<Timestamp>,
    /// This device's fingerprint [default: derived from the machine id].
    #[arg(long, value_name = "STR", value_parser = NonEmptyStringValueParser::new())]
    fingerprint: Option<String>,
}

/// `entitle check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The feature code.
    #[arg(value_name = "FEATURE")]
    feature: String,
    /// Check for this user: licenses with `assigned_users` count only for them.
    #[arg(long, value_name = "ID")]
    user: Option<String>,
}

/// `entitle limit`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// The feature code.
    #[arg(value_name = "CODE")]
    code: String,
}

/// `entitle apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file (armored or a bare token).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `entitle consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The metered feature.
    #[arg(value_name = "FEATURE")]
    feature: String,
    /// How many units.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    amount: u64,
}

/// `entitle consumption`.
#[derive(Debug, Args)]
pub struct ConsumptionArgs {
    /// The metered feature.
    #[arg(value_name = "FEATURE")]
    feature: String,
}

/// Runs one install command.
pub fn run(command: InstallCommand, globals: &Globals) -> Result<Outcome, Failure> {
    match command {
        InstallCommand::Init(args) => Ok(init(&args, globals)?),
        InstallCommand::License(command) => licenses::run(command, globals),
        InstallCommand::Check(args) => Ok(check(&open_engine(globals)?, &args)),
        InstallCommand::Limit(args) => Ok(limit(&open_engine(globals)?, &args.code)),
        InstallCommand::User(command) => users::run(command, globals),
        InstallCommand::Activate(args) => devices::activate(&args, globals),
        InstallCommand::Deactivate(args) => devices::deactivate(&args, globals),
        InstallCommand::Activation(command) => devices::run(command, globals),
        InstallCommand::Request(args) => devices::request(&args, globals),
        InstallCommand::Apply(args) => Ok(apply(&open_engine(globals)?, &args.file)?),
        InstallCommand::Lease(command) => leases::run(command, globals),
        InstallCommand::Consume(args) => Ok(consume(&open_engine(globals)?, &args)?),
        InstallCommand::Consumption(args) => Ok(consumption(&open_engine(globals)?, &args.feature)),
    }
}

// ---- the state's settings -------------------------------------------------

/// What `init` recorded about this install.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The product enforced.
    pub product: String,
    /// The trusted public keys, as PEM.
    pub keys: Vec<String>,
    /// The application build's release date.
    pub release_date: Option<Timestamp>,
    /// This device's fingerprint.
    pub fingerprint: String,
}

impl Settings {
    /// Reads the settings from the state's meta table. A state that `init`
    /// never finished is missing, not corrupt: running `init` mends it.
    fn from_meta(meta: &BTreeMap<String, String>, dir: &Path) -> Result<Self, Error> {
        let location = dir.display().to_string();
        let (Some(product), Some(keys)) = (meta.get(meta::PRODUCT), meta.get(meta::KEYS)) else {
            return Err(Error::StateMissing { path: location });
        };
        let corrupt = |detail: String| Error::StateCorrupt {
            path: location.clone(),
            detail,
        };
        let keys: Vec<String> = serde_json::from_str(keys)
            .map_err(|e| corrupt(format!("its trusted keys are not a JSON list of PEM ({e})")))?;
        let release_date = meta
            .get(meta::RELEASE_DATE)
            .map(|text| Timestamp::parse(text))
            .transpose()
            .map_err(|e| corrupt(format!("its release date is unreadable ({e})")))?;
        let fingerprint = meta
            .get(meta::FINGERPRINT)
            .cloned()
            .unwrap_or_else(default_fingerprint);
        Ok(Settings {
            product: product.clone(),
            keys,
            release_date,
            fingerprint,
        })
    }

    fn keyring(&self, dir: &Path) -> Result<Keyring, Error> {
        Keyring::from_pems(self.keys.iter().map(String::as_str)).map_err(|e| Error::StateCorrupt {
            path: dir.display().to_string(),
            detail: format!("a trusted key does not read ({e})"),
        })
    }
}

/// An opened install: its engine and the settings it was built from.
pub struct Install {
    /// The engine on the state directory.
    pub engine: Engine,
    /// The settings `init` recorded.
    pub settings: Settings,
}

/// Opens the state directory as an engine: `STATE_MISSING` if `init` never
/// ran there.
pub fn open_engine(globals: &Globals) -> Result<Engine, Failure> {
    Ok(open_install(globals)?.engine)
}

/// Opens the state directory: the engine and the install's settings.
pub fn open_install(globals: &Globals) -> Result<Install, Error> {
    let dir = globals.state_dir();
    let store = FileStore::open(&dir)?;
    let (_, persisted) = store.load()?;
    let settings = Settings::from_meta(&persisted.meta, &dir)?;
    let mut builder = Engine::builder(settings.product.as_str())
        .keyring(settings.keyring(&dir)?)
        .store(store)
        .fingerprint(settings.fingerprint.as_str())
        .virtual_machine(detect_virtual_machine())
        // One command, one mutation: nothing to keep fresh afterwards.
        .background_refresh(false);
    if let Some(date) = settings.release_date {
        builder = builder.release_date(date);
    }
    builder = match globals.now {
        Some(now) => builder.clock(ManualClock::new(now)),
        None => builder.clock(SystemClock),
    };
    Ok(Install {
        engine: builder.build()?,
        settings,
    })
}

fn init(args: &InitArgs, globals: &Globals) -> Result<Outcome, Error> {
    check_name(&args.product, "a product code")?;
    if let Some(fingerprint) = &args.fingerprint {
        if fingerprint.len() > 256 || fingerprint.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(
                "a device fingerprint is 1 to 256 printable characters".into(),
            ));
        }
    }
    // Every key is read before the state is touched: a typo in a path must
    // not leave a half-made state behind.
    let mut offered = Vec::new();
    for path in &args.public_keys {
        let pem = files::read_text(path, "public key file")?;
        offered.push(PublicKey::from_pem(&pem).map_err(|e| in_file(e, path))?);
    }

    let dir = globals.state_dir();
    let store = FileStore::create(&dir)?;
    let (_, persisted) = store.load()?;
    let existing = &persisted.meta;
    if let Some(product) = existing.get(meta::PRODUCT) {
        if *product != args.product {
            return Err(Error::InvalidArgument(format!(
                "the state at {} already belongs to product `{product}`, not `{}`; \
                 use another --state directory for another product",
                dir.display(),
                args.product
            )));
        }
    }
    let created = !existing.contains_key(meta::KEYS);

    // Re-running init adds keys (a vendor's key rotation) and never drops
    // one: licenses signed with an older key must keep verifying.
    let mut keyring = match existing.get(meta::KEYS) {
        Some(_) => Settings::from_meta(existing, &dir)?.keyring(&dir)?,
        None => Keyring::new(),
    };
    let known = keyring.len();
    for key in offered {
        keyring.add(key);
    }
    let pems: Vec<String> = keyring.keys().map(PublicKey::to_pem).collect();
    let kids: Vec<String> = keyring.keys().map(|k| k.kid().to_owned()).collect();
    let fingerprint = args
        .fingerprint
        .clone()
        .or_else(|| existing.get(meta::FINGERPRINT).cloned())
        .unwrap_or_else(default_fingerprint);

    let mut changes = vec![
        Change::Meta(meta::PRODUCT.into(), args.product.clone()),
        Change::Meta(
            meta::KEYS.into(),
            serde_json::to_string(&pems).unwrap_or_else(|_| "[]".into()),
        ),
        Change::Meta(meta::FINGERPRINT.into(), fingerprint.clone()),
    ];
    if let Some(date) = args.release_date {
        changes.push(Change::Meta(meta::RELEASE_DATE.into(), date.to_rfc3339()));
    }
    let mut txn = store.begin()?;
    txn.write(&changes)?;
    let generation = txn.commit()?;
    store.sync(generation)?;

    let release_date = args.release_date.or_else(|| {
        existing
            .get(meta::RELEASE_DATE)
            .and_then(|t| Timestamp::parse(t).ok())
    });
    let state = dir.display().to_string();
    let verb = if created { "Initialised" } else { "Updated" };
    let added = keyring.len() - known;
    let mut human = format!(
        "{verb} the install at {state} for product `{product}`.\n\
         Trusted vendor keys: {count} ({added} new): {kid_list}\n\
         This device's fingerprint: {fingerprint}\n",
        product = args.product,
        count = kids.len(),
        kid_list = kids.join(", "),
    );
    if let Some(date) = release_date {
        human.push_str(&format!("Application release date: {date}\n"));
    }
    human.push_str(
        "Next: add the license the vendor sent with `entitle license add FILE`, \
         then see it with `entitle license list`.",
    );
    Ok(Outcome::new(
        json!({
            "state": state,
            "created": created,
            "product": args.product,
            "kids": kids,
            "fingerprint": fingerprint,
            "release_date": release_date,
        }),
        human,
    ))
}

// ---- rights -----------------------------------------------------------------

fn check(engine: &Engine, args: &CheckArgs) -> Outcome {
    let decision = match &args.user {
        Some(user) => engine.check_feature_for(user, &args.feature),
        None => engine.check_feature(&args.feature),
    };
    let mut json = decision_json(&decision);
    let mut result = json!({"feature": args.feature});
    if let Some(user) = &args.user {
        result["user"] = json!(user);
    }
    if let (Value::Object(result), Value::Object(decision)) = (&mut result, &mut json) {
        result.append(decision);
    }
    let subject = match &args.user {
        Some(user) => format!("`{}` for user `{user}`", args.feature),
        None => format!("`{}`", args.feature),
    };
    let verdict = if decision.allowed() {
        "ALLOWED"
    } else {
        "DENIED"
    };
    let mut human = format!("{verdict}: {subject} ({})", decision.reason());
    if let Some(until) = decision.until() {
        human.push_str(&format!(", until {until}"));
    }
    human.push('.');
    if let Some(hint) = reason_hint(decision.reason()) {
        human.push('\n');
        human.push_str(hint);
    }
    let outcome = Outcome::new(result, human);
    if decision.allowed() {
        outcome
    } else {
        outcome.denied()
    }
}

/// `allowed`, `reason` and `until` of a decision, as every check prints it.
pub fn decision_json(decision: &Decision) -> Value {
    json!({
        "allowed": decision.allowed(),
        "reason": decision.reason().code(),
        "until": decision.until(),
    })
}

/// What a person can do about a reason, when there is something to do.
pub fn reason_hint(reason: Reason) -> Option<&'static str> {
    Some(match reason {
        Reason::Ok => return None,
        Reason::InGrace => {
            "The license has expired and runs on its grace period: ask the vendor for a renewal."
        }
        Reason::Overage => {
            "Allowed beyond the licensed amount (overage): consider a top-up license."
        }
        Reason::ExpiredKept => {
            "The license has expired but keeps this right; nothing new can be added under it."
        }
        Reason::NotLicensed => {
            "No installed license grants it: add one with `entitle license add FILE`."
        }
        Reason::Expired => "Every license granting it has expired: ask the vendor for a renewal.",
        Reason::NotYetValid => "The license granting it has not started yet.",
        Reason::Suspended => "The license granting it is suspended: contact the vendor.",
        Reason::Revoked => "The license granting it was revoked: contact the vendor.",
        Reason::MaintenanceExpired => {
            "This build was released after the license's maintenance ended: \
             use an older build or renew maintenance."
        }
        Reason::NotActivated => {
            "The license is node-locked and this device is not activated: run `entitle activate`, \
             or for vendor-activated licenses `entitle request` and `entitle apply` the reply."
        }
        Reason::SeatLimit => {
            "Every seat is taken: remove a user (`entitle user remove ID`) or add a seat top-up."
        }
        Reason::ClockTampered => {
            "The system clock is behind the latest time this install has seen: set it right, \
             or apply a fresh file from the vendor."
        }
        _ => return None,
    })
}

fn limit(engine: &Engine, code: &str) -> Outcome {
    let limit = engine.limit(code);
    let human = match limit {
        Some(n) => format!("`{code}`: limit {n} (summed over the licenses in force)."),
        None => format!(
            "`{code}`: no license in force sets a limit (`entitle check {code}` says whether it \
             is granted at all)."
        ),
    };
    Outcome::new(json!({"code": code, "limit": limit}), human)
}

fn consume(engine: &Engine, args: &ConsumeArgs) -> Result<Outcome, Error> {
    let consumed = engine.consume(&args.feature, args.amount)?;
    let max = consumed
        .max
        .map_or("unlimited".to_owned(), |m| m.to_string());
    let mut human = format!(
        "Recorded {amount} unit(s) of `{feature}`: {used} of {max} used this period \
         (license `{license}`)",
        amount = args.amount,
        feature = consumed.feature,
        used = consumed.used,
        license = consumed.license_id,
    );
    match consumed.period_ends_at {
        Some(end) => human.push_str(&format!("; the count resets at {end}.")),
        None => human.push_str("; the count never resets."),
    }
    let overage = consumed.overage;
    let mut outcome = Outcome::new(to_json(&consumed), human);
    outcome.json_mut()["amount"] = json!(args.amount);
    if overage {
        outcome = outcome.with_warning(format!(
            "`{}` is in overage: {} used, {max} licensed; ask the vendor for a larger quota.",
            args.feature, consumed.used
        ));
    }
    Ok(outcome)
}

fn consumption(engine: &Engine, feature: &str) -> Outcome {
    let items = engine.consumption(feature);
    let mut human = String::new();
    if items.is_empty() {
        human = format!(
            "No license in force lets `{feature}` be consumed now (`entitle check {feature}` \
             says why)."
        );
    }
    for item in &items {
        let max = item.max.map_or("unlimited".to_owned(), |m| m.to_string());
        let resets = item
            .period_ends_at
            .map_or("never resets".to_owned(), |t| format!("resets at {t}"));
        human.push_str(&format!(
            "`{feature}` under license `{}`: {} of {max} used ({resets}){}\n",
            item.license_id,
            item.used,
            if item.overage { ", in overage" } else { "" },
        ));
    }
    let used: u64 = items.iter().map(|i| i.used).sum();
    Outcome::new(
        json!({"feature": feature, "used": used, "items": to_json(&items)}),
        human,
    )
}

fn apply(engine: &Engine, path: &Path) -> Result<Outcome, Error> {
    let text = files::read_text(path, "file to apply")?;
    let applied = engine.apply(&text)?;
    let human = match &applied {
        Applied::License { id } => format!(
            "Applied license `{id}`.\nNext: `entitle license list` shows it; \
             `entitle check FEATURE` checks a right."
        ),
        Applied::Revocations { ids } => format!(
            "Applied the revocation list: {} license id(s) revoked for good on this install: {}.",
            ids.len(),
            ids.join(", ")
        ),
        Applied::Machine {
            license_id,
            fingerprint,
            expires_at,
        } => format!(
            "Applied the machine certificate: this device (`{fingerprint}`) is activated for \
             license `{license_id}` {until}.\nNext: `entitle check FEATURE` confirms the rights.",
            until = expires_at.map_or("with no end".to_owned(), |t| format!("until {t}")),
        ),
        _ => "Applied.".to_owned(),
    };
    Ok(Outcome::new(to_json(&applied), human))
}

// ---- shared by the install modules ----------------------------------------

/// A library value as JSON. The library's outputs are plain data (no maps
/// with non-string keys), so this cannot fail; were it to, a `null` beats
/// a panic.
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Refuses names a state cannot hold well: empty, too long, or with
/// control characters (which would garble every listing).
pub fn check_name(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{what} is 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Says which file a key error came from.
fn in_file(error: Error, path: &Path) -> Error {
    match error {
        Error::Malformed { what, detail } => Error::Malformed {
            what,
            detail: format!("in `{}`: {detail}", path.display()),
        },
        other => other,
    }
}
