//! The install side: `init` makes the state (a directory, or a namespace
//! in PostgreSQL) and fixes its
//! settings; `check`, `limit`, `apply`, `consume` and `consumption` act on
//! the rights themselves, through the library exactly as an application
//! linking the crate would. Licenses, users, devices and leases have a
//! module each; what they all share is in `state` and `output`.

use std::path::{Path, PathBuf};

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use entitle::device::machine_fingerprint;
use entitle::engine::Applied;
use entitle::store::InstallSettings;
use entitle::token::{Keyring, PublicKey};
use entitle::{Engine, Error, ManualClock, Reason, Timestamp};
use serde_json::{json, Value};

use crate::output::{decision_json, reason_hint, to_json, Failure, Outcome};
use crate::state::{
    built_in, check_name, open_engine, open_install, Install, Location, Opened, Settings,
};
use crate::{files, Globals};

/// The install side of `entitle`: making the state, and the rights
/// themselves. Licenses, users, devices and leases have a module each.
#[derive(Debug, Subcommand)]
pub enum InstallCommand {
    /// Create this install's state directory, trusting the vendor's keys.
    Init(InitArgs),
    /// May FEATURE be used now? Exit status 0 allowed, 1 denied.
    Check(CheckArgs),
    /// The quota of a feature: the sum of `limit` over licenses in force.
    Limit(LimitArgs),
    /// Apply a file from the vendor: license, machine certificate,
    /// revocation list or key rotation.
    Apply(ApplyArgs),
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
    /// The application's version (semver, e.g. `2.3.1`), checked against
    /// a license's `versions`. Fixed once the state exists.
    #[arg(long, value_name = "SEMVER", value_parser = parse_version)]
    app_version: Option<String>,
    /// The application's release channel (e.g. `stable`, `beta`), checked
    /// against a license's `channels`. Fixed once the state exists.
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    channel: Option<String>,
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
        InstallCommand::Check(args) => Ok(check(&open_install(globals)?, &args)),
        InstallCommand::Limit(args) => Ok(limit(&open_engine(globals)?, &args.code)),
        InstallCommand::Apply(args) => Ok(apply(&open_engine(globals)?, &args.file)?),
        InstallCommand::Consume(args) => Ok(consume(&open_engine(globals)?, &args)?),
        InstallCommand::Consumption(args) => Ok(consumption(&open_engine(globals)?, &args.feature)),
    }
}

// ---- init -------------------------------------------------------------------

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

    let location = globals.location()?;
    let store = Opened::open(&location, true)?;
    let state = location.to_string();
    match Settings::read(&store, &location) {
        Ok(existing) => return init_again(args, &existing, &offered, &location),
        Err(Error::StateMissing { .. }) => {}
        Err(other) => return Err(other),
    }
    // A state a program made (the product is all it records) keeps it.
    if let Some(product) = store.settings()?.product {
        if product != args.product {
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
    let here = machine_fingerprint();
    let mut install = InstallSettings::default();
    if !built_in::has_keys() {
        install.trusted_keys = offered.keys().map(PublicKey::to_pem).collect();
    }
    install.release_date = args.release_date.map(Timestamp::unix);
    install.version = args.app_version.clone();
    install.channel = args.channel.clone();
    install.device = args.fingerprint.clone();
    install.machine = here.clone();
    let settings = Settings {
        product: args.product.clone(),
        install,
    };
    let keyring = settings.keyring(&location)?;
    let engine = store
        .attach(Engine::builder(args.product.as_str()).keyring(keyring.clone()))
        .background_refresh(false)
        // `init` records settings, not time: on a clock at the epoch, the
        // latest time seen is left to the first command that acts (as
        // before init used an engine), so an install made on the real
        // clock can then be driven with an earlier `--now`.
        .clock(ManualClock::new(Timestamp::from_unix(0)))
        .build()?;
    engine.fix_install_settings(settings.install.clone())?;

    let kids: Vec<String> = keyring.keys().map(|k| k.kid().to_owned()).collect();
    let fingerprint = settings.device_on(here.as_deref()).0;
    // The install's own key, made with the state: its public half only.
    let install_key = engine.install_key();
    let release_date = settings.release_date()?;
    let mut human = format!(
        "Initialised the install at {state} for product `{product}`.\n\
         Trusted vendor keys{compiled}: {count}: {kid_list}\n\
         This device's fingerprint: {fingerprint}\n\
         This install's own key (it signs receipts and usage reports): {install_kid}\n",
        fingerprint = fingerprint.as_deref().unwrap_or(
            "none (this machine gives no machine id: node-locked licenses cannot be used here)"
        ),
        install_kid = install_key.as_ref().map_or("none", |k| k.kid()),
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
    if let Some(version) = settings.app_version() {
        human.push_str(&format!("Application version: {version}\n"));
    }
    if let Some(channel) = settings.app_channel() {
        human.push_str(&format!("Application release channel: {channel}\n"));
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
            "app_version": settings.app_version(),
            "channel": settings.app_channel(),
            "install_key": install_key.as_ref().map(|k| k.to_base64url()),
            "install_kid": install_key.as_ref().map(|k| k.kid()),
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
    location: &Location,
) -> Result<Outcome, Error> {
    let trusted = existing.keyring(location)?;
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
        if existing.install.release_date != Some(date.unix()) {
            differences.push(format!(
                "records release date {} (fixed at creation)",
                existing
                    .install
                    .release_date
                    .map_or("none".to_owned(), |d| Timestamp::from_unix(d).to_string())
            ));
        }
    }
    if let Some(version) = &args.app_version {
        if existing.install.version.as_ref() != Some(version) {
            differences.push(format!(
                "records application version {} (fixed at creation)",
                existing.install.version.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(channel) = &args.channel {
        if existing.install.channel.as_ref() != Some(channel) {
            differences.push(format!(
                "records release channel {} (fixed at creation)",
                existing.install.channel.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(fingerprint) = &args.fingerprint {
        if existing.install.device.as_ref() != Some(fingerprint) {
            differences.push(format!(
                "names device {} (fixed at creation)",
                existing.install.device.as_deref().unwrap_or("this machine")
            ));
        }
    }
    let state = location.to_string();
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
    let (fingerprint, _) = existing.device_on(machine_fingerprint().as_deref());
    let release_date = existing.release_date()?;
    Ok(Outcome::new(
        json!({
            "state": state,
            "created": false,
            "product": existing.product,
            "kids": kids,
            "fingerprint": fingerprint,
            "release_date": release_date,
            "app_version": existing.app_version(),
            "channel": existing.app_channel(),
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
    if let Some(warning) = decision.warning() {
        human.push_str(&format!("\nNotice ({warning}): {}", warning.message()));
    }
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
            install.device.as_deref().unwrap_or("unknown")
        ));
    }
    if decision.allowed() {
        outcome
    } else {
        outcome.denied()
    }
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

/// Says which file a key error came from.
/// `--app-version`: a semver version, checked here so that `init` never
/// records one the engine would refuse at every later command.
fn parse_version(text: &str) -> Result<String, String> {
    entitle::semver::Version::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a semver version ({e}); give MAJOR.MINOR.PATCH, such as 2.3.1"))
}

fn in_file(error: Error, path: &Path) -> Error {
    match error {
        Error::Malformed { what, detail } => Error::Malformed {
            what,
            detail: format!("in `{}`: {detail}", path.display()),
        },
        other => other,
    }
}
