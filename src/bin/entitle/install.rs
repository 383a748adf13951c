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
    /// The device named with `init --fingerprint`, when one was.
    pub const FINGERPRINT: &str = "fingerprint";
    /// This machine's fingerprint when `init` ran: where the state lives.
    pub const MACHINE: &str = "machine";
}

/// What a vendor compiled into this build (`build.rs`): the trust root
/// and the release date, which then override what a state records.
mod built_in {
    /// PEM public keys from `ENTITLE_TRUSTED_KEYS` at build time, or "".
    pub const KEYS: &str = include_str!(concat!(env!("OUT_DIR"), "/trusted_keys.pem"));
    /// `ENTITLE_RELEASE_DATE` at build time, or "".
    pub const RELEASE_DATE: &str = include_str!(concat!(env!("OUT_DIR"), "/release_date.txt"));

    /// Whether this build trusts only its own keys.
    pub const fn has_keys() -> bool {
        !KEYS.is_empty()
    }
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
    /// Fixed once the state exists: later keys come with a signed
    /// rotation (`entitle rotate`, then `entitle apply`).
    #[arg(long = "pub", value_name = "FILE", required = !built_in::has_keys(), num_args = 1..)]
    public_keys: Vec<PathBuf>,
    /// The product code this install enforces.
    #[arg(long, value_name = "CODE", value_parser = NonEmptyStringValueParser::new())]
    product: String,
    /// The release date of the application build, checked against
    /// `maintenance_until`. Fixed once the state exists.
    #[arg(long, value_name = "RFC3339", value_parser = crate::parse_time)]
    release_date: Option<Timestamp>,
    /// Name this device for activations [default: derived from the machine
    /// id]. The state still knows the machine it was made on: copied to
    /// another, it grants no node-locked right there.
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
        InstallCommand::Check(args) => Ok(check(&open_install(globals)?, &args)),
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
    /// The device named at `init` (a state written before machines were
    /// recorded always names one).
    pub fingerprint: Option<String>,
    /// This machine's fingerprint when `init` ran.
    pub machine: Option<String>,
}

impl Settings {
    /// Reads the settings from the state's meta table. A state that `init`
    /// never finished is missing, not corrupt: running `init` mends it.
    fn from_meta(meta: &BTreeMap<String, String>, dir: &Path) -> Result<Self, Error> {
        let location = dir.display().to_string();
        let Some(product) = meta.get(meta::PRODUCT) else {
            return Err(Error::StateMissing { path: location });
        };
        if !meta.contains_key(meta::KEYS) && !built_in::has_keys() {
            return Err(Error::StateMissing { path: location });
        }
        let corrupt = |detail: String| Error::StateCorrupt {
            path: location.clone(),
            detail,
        };
        let keys: Vec<String> = match meta.get(meta::KEYS) {
            Some(keys) => serde_json::from_str(keys).map_err(|e| {
                corrupt(format!("its trusted keys are not a JSON list of PEM ({e})"))
            })?,
            None => Vec::new(),
        };
        let release_date = meta
            .get(meta::RELEASE_DATE)
            .map(|text| Timestamp::parse(text))
            .transpose()
            .map_err(|e| corrupt(format!("its release date is unreadable ({e})")))?;
        Ok(Settings {
            product: product.clone(),
            keys,
            release_date,
            fingerprint: meta.get(meta::FINGERPRINT).cloned(),
            machine: meta.get(meta::MACHINE).cloned(),
        })
    }

    /// The keys this CLI trusts: those compiled into it, if any (then the
    /// state's are ignored), else those `init` recorded.
    fn keyring(&self, dir: &Path) -> Result<Keyring, Error> {
        if built_in::has_keys() {
            return Keyring::from_pems(pem_blocks(built_in::KEYS)).map_err(|e| {
                Error::InvalidArgument(format!(
                    "this build's compiled-in keys do not read ({e}); rebuild with \
                     ENTITLE_TRUSTED_KEYS naming PEM public keys"
                ))
            });
        }
        Keyring::from_pems(self.keys.iter().map(String::as_str)).map_err(|e| Error::StateCorrupt {
            path: dir.display().to_string(),
            detail: format!("a trusted key does not read ({e})"),
        })
    }

    /// The release date in force: the build's own, if compiled in, else
    /// the one `init` recorded.
    fn effective_release_date(&self) -> Result<Option<Timestamp>, Error> {
        if built_in::RELEASE_DATE.is_empty() {
            return Ok(self.release_date);
        }
        Timestamp::parse(built_in::RELEASE_DATE)
            .map(Some)
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "this build's ENTITLE_RELEASE_DATE is not an RFC 3339 time ({e}); rebuild it"
                ))
            })
    }

    /// The device this install is on `here` (this machine's fingerprint,
    /// computed afresh), and whether the state was made on another
    /// machine. A state names its device only on the machine it was made
    /// on; anywhere else the device is that machine itself, which no
    /// activation made for the old one covers (DESIGN section 11).
    fn device_on(&self, here: &str) -> (String, bool) {
        match (&self.fingerprint, &self.machine) {
            (Some(named), Some(home)) if home == here => (named.clone(), false),
            (None, Some(home)) => (here.to_owned(), home != here),
            // Written before machines were recorded: the device it names
            // holds only if it is this machine.
            (Some(named), None) if named == here => (named.clone(), false),
            (None, None) => (here.to_owned(), false),
            _ => (here.to_owned(), true),
        }
    }
}

/// The PEM blocks of a text holding several.
fn pem_blocks(text: &str) -> impl Iterator<Item = &str> {
    const END: &str = "-----END PUBLIC KEY-----";
    text.split_inclusive(END)
        .filter(|block| block.contains(END))
}

/// An opened install: its engine and the settings it was built from.
pub struct Install {
    /// The engine on the state directory.
    pub engine: Engine,
    /// The device this install is, for activations and requests.
    pub device: String,
    /// The state was made on another machine: node-locked rights it held
    /// there do not hold here.
    pub moved: bool,
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
    let (device, moved) = settings.device_on(&default_fingerprint());
    let mut builder = Engine::builder(settings.product.as_str())
        .keyring(settings.keyring(&dir)?)
        .store(store)
        .fingerprint(device.as_str())
        .virtual_machine(detect_virtual_machine())
        // One command, one mutation: nothing to keep fresh afterwards.
        .background_refresh(false);
    if let Some(date) = settings.effective_release_date()? {
        builder = builder.release_date(date);
    }
    builder = match globals.now {
        Some(now) => builder.clock(ManualClock::new(now)),
        None => builder.clock(SystemClock),
    };
    Ok(Install {
        engine: builder.build()?,
        device,
        moved,
    })
}

fn init(args: &InitArgs, globals: &Globals) -> Result<Outcome, Error> {
    check_name(&args.product, "a product code")?;
    if let Some(fingerprint) = &args.fingerprint {
        check_name(fingerprint, "a device fingerprint")?;
    }
    // Every key is read before the state is touched: a typo in a path must
    // not leave a half-made state behind.
    let mut offered = Keyring::new();
    for path in &args.public_keys {
        let pem = files::read_text(path, "public key file")?;
        offered.add(PublicKey::from_pem(&pem).map_err(|e| in_file(e, path))?);
    }

    let dir = globals.state_dir();
    let store = FileStore::create(&dir)?;
    let (_, persisted) = store.load()?;
    let here = default_fingerprint();
    let state = dir.display().to_string();
    match Settings::from_meta(&persisted.meta, &dir) {
        Ok(existing) => return init_again(args, &existing, &offered, &dir),
        Err(Error::StateMissing { .. }) => {}
        Err(other) => return Err(other),
    }
    // A state a program made (the product is all it records) keeps it.
    if let Some(product) = persisted.meta.get(meta::PRODUCT) {
        if *product != args.product {
            return Err(Error::StateExists {
                path: state,
                detail: format!(
                    "belongs to product `{product}`, not `{}`; use another --state directory",
                    args.product
                ),
            });
        }
    }

    // The trust root, fixed from now on. A build with keys compiled in
    // trusts only those and records none.
    let pems: Vec<String> = if built_in::has_keys() {
        Vec::new()
    } else {
        offered.keys().map(PublicKey::to_pem).collect()
    };
    let mut changes = vec![
        Change::Meta(meta::PRODUCT.into(), args.product.clone()),
        Change::Meta(
            meta::KEYS.into(),
            serde_json::to_string(&pems).unwrap_or_else(|_| "[]".into()),
        ),
        Change::Meta(meta::MACHINE.into(), here.clone()),
    ];
    if let Some(fingerprint) = &args.fingerprint {
        changes.push(Change::Meta(meta::FINGERPRINT.into(), fingerprint.clone()));
    }
    if let Some(date) = args.release_date {
        changes.push(Change::Meta(meta::RELEASE_DATE.into(), date.to_rfc3339()));
    }
    let mut txn = store.begin()?;
    txn.write(&changes)?;
    let generation = txn.commit()?;
    store.sync(generation)?;
    drop(store);

    let settings = Settings::from_meta(
        &changes
            .iter()
            .filter_map(|c| match c {
                Change::Meta(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        &dir,
    )?;
    let keyring = settings.keyring(&dir)?;
    let kids: Vec<String> = keyring.keys().map(|k| k.kid().to_owned()).collect();
    let fingerprint = settings.device_on(&here).0;
    let release_date = settings.effective_release_date()?;
    let mut human = format!(
        "Initialised the install at {state} for product `{product}`.\n\
         Trusted vendor keys{compiled}: {count}: {kid_list}\n\
         This device's fingerprint: {fingerprint}\n",
        product = args.product,
        compiled = if built_in::has_keys() {
            " (compiled into this build)"
        } else {
            ""
        },
        count = kids.len(),
        kid_list = kids.join(", "),
    );
    if let Some(date) = release_date {
        human.push_str(&format!("Application release date: {date}\n"));
    }
    human.push_str(
        "These settings are fixed from now on; the vendor changes keys with a signed rotation.\n\
         Next: add the license the vendor sent with `entitle license add FILE`, \
         then see it with `entitle license list`.",
    );
    Ok(Outcome::new(
        json!({
            "state": state,
            "created": true,
            "product": args.product,
            "kids": kids,
            "fingerprint": fingerprint,
            "release_date": release_date,
        }),
        human,
    ))
}

/// `init` on a state that exists: its settings are fixed, so this succeeds
/// only when it would change nothing (`STATE_EXISTS` otherwise), and says
/// how to make the change that was meant.
fn init_again(
    args: &InitArgs,
    existing: &Settings,
    offered: &Keyring,
    dir: &Path,
) -> Result<Outcome, Error> {
    let trusted = existing.keyring(dir)?;
    let mut differences = Vec::new();
    if existing.product != args.product {
        differences.push(format!(
            "belongs to product `{}`, not `{}` (use another --state directory for another product)",
            existing.product, args.product
        ));
    }
    let new_kids: Vec<&str> = offered
        .keys()
        .map(PublicKey::kid)
        .filter(|kid| trusted.get(kid).is_none())
        .collect();
    if !new_kids.is_empty() && !built_in::has_keys() {
        differences.push(format!(
            "does not trust {} (keys change only through a key rotation the vendor signs: \
             `entitle rotate`, then `entitle apply FILE` here)",
            new_kids.join(", ")
        ));
    }
    if let Some(date) = args.release_date {
        if existing.release_date != Some(date) {
            differences.push(format!(
                "records release date {} (fixed at creation)",
                existing
                    .release_date
                    .map_or("none".to_owned(), |d| d.to_string())
            ));
        }
    }
    if let Some(fingerprint) = &args.fingerprint {
        if existing.fingerprint.as_ref() != Some(fingerprint) {
            differences.push(format!(
                "names device {} (fixed at creation)",
                existing.fingerprint.as_deref().unwrap_or("this machine")
            ));
        }
    }
    let state = dir.display().to_string();
    if !differences.is_empty() {
        return Err(Error::StateExists {
            path: state,
            detail: format!(
                "its settings are fixed at creation; `init` changed nothing. It {}.",
                differences.join("; it ")
            ),
        });
    }
    let kids: Vec<String> = trusted.keys().map(|k| k.kid().to_owned()).collect();
    let (fingerprint, _) = existing.device_on(&default_fingerprint());
    let release_date = existing.effective_release_date()?;
    Ok(Outcome::new(
        json!({
            "state": state,
            "created": false,
            "product": existing.product,
            "kids": kids,
            "fingerprint": fingerprint,
            "release_date": release_date,
        }),
        format!(
            "The install at {state} exists with these settings already; nothing changed.\n\
             Next: `entitle license list` shows its licenses."
        ),
    ))
}

// ---- rights -----------------------------------------------------------------

fn check(install: &Install, args: &CheckArgs) -> Outcome {
    let engine = &install.engine;
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
    let mut outcome = Outcome::new(result, human);
    if install.moved && decision.reason() == Reason::NotActivated {
        outcome.json_mut()["state_moved"] = json!(true);
        outcome = outcome.with_warning(format!(
            "this state was made on another machine and moved or copied here: no device \
             activated there counts on this one (device `{}`); activate this machine to use \
             node-locked licenses here",
            install.device
        ));
    }
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
        Applied::Keys { trusted, retired } => format!(
            "Applied the key rotation: trusting {} new key(s) ({}){}.\nNext: licenses signed \
             with the new keys now verify here (`entitle license add FILE`).",
            trusted.len(),
            trusted.join(", "),
            if retired.is_empty() {
                String::new()
            } else {
                format!(", no longer trusting {}", retired.join(", "))
            }
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
