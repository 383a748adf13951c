//! How a command's outcome reaches the user: one JSON object on stdout with
//! `--json`, readable text otherwise, and the exit status.
//!
//! Commands never print. They return an [`Outcome`] or an
//! [`entitle::Error`], so the `--json` promise (exactly one object on
//! stdout, failures included) is kept in one place.

use std::ffi::OsStr;
use std::io::Write;
use std::process::ExitCode;

use std::fmt::Write as _;

use entitle::engine::{FloatingInfo, LicenseInfo};
use entitle::{Decision, Error, Reason};
use serde_json::{json, Value};

/// Success (or "allowed").
const EXIT_SUCCESS: u8 = 0;
/// Failure (or "denied").
const EXIT_FAILURE: u8 = 1;
/// The command line itself was wrong.
const EXIT_USAGE: u8 = 2;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong in a way clap could not see (exit 2).
    Usage(clap::Error),
    /// The command failed (exit 1).
    Error(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Error(error)
    }
}

/// What a command did, in both forms it can be shown in.
#[derive(Debug)]
pub struct Outcome {
    json: Value,
    human: String,
    note: Option<String>,
    warnings: Vec<String>,
    denied: bool,
    printed: bool,
}

impl Outcome {
    /// An outcome shown as `json` (an object) with `--json`, as `human`
    /// on stdout otherwise.
    pub fn new(json: Value, human: impl Into<String>) -> Self {
        Outcome {
            json,
            human: human.into(),
            note: None,
            warnings: Vec::new(),
            denied: false,
            printed: false,
        }
    }

    /// Marks the outcome as printed already, by a command that speaks as
    /// it runs (`serve` says where it listens): nothing more goes to
    /// stdout, so `--json` still prints exactly one object.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub fn already_printed(mut self) -> Self {
        self.printed = true;
        self
    }

    /// The JSON form, to add fields to.
    pub fn json_mut(&mut self) -> &mut Value {
        &mut self.json
    }

    /// Adds a note for a person, printed on stderr in human mode only: for
    /// hints beside an output that is itself data (a token on stdout must
    /// stay pipeable into a file).
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Adds a warning: the command did what it was asked, but the result
    /// may not be what was meant. Printed on stderr in both modes, each
    /// on its own line.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Marks the outcome a denial: printed like a success, but the exit
    /// status is 1, so scripts can branch on `entitle check`.
    pub fn denied(mut self) -> Self {
        self.denied = true;
        self
    }
}

/// Prints the outcome or the error and returns the exit status.
pub fn finish(result: Result<Outcome, Failure>, json: bool) -> ExitCode {
    match result {
        Ok(outcome) => {
            for warning in &outcome.warnings {
                eprintln!("warning: {}", warning.trim_end());
            }
            let printed = if outcome.printed {
                true
            } else if json {
                print_json(&outcome.json)
            } else {
                if let Some(note) = &outcome.note {
                    eprintln!("{}", note.trim_end());
                }
                print_text(&outcome.human)
            };
            match (printed, outcome.denied) {
                (true, false) => ExitCode::from(EXIT_SUCCESS),
                _ => ExitCode::from(EXIT_FAILURE),
            }
        }
        Err(Failure::Usage(usage)) => usage_error(&usage, json),
        Err(Failure::Error(error)) => {
            let hint = error_hint(&error);
            if json {
                let mut value = error_json(error.code(), &error.to_string());
                if let Some(hint) = hint {
                    value["error"]["hint"] = json!(hint);
                }
                print_json(&value);
            } else {
                eprintln!("error [{}]: {error}", error.code());
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Reports a command line clap refused (exit 2), or prints the help or
/// version it was asked for (exit 0).
pub fn usage_error(error: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    let asked_for_text = matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    if json && !asked_for_text {
        let text = error.render().to_string();
        let message = text.trim().trim_start_matches("error: ");
        print_json(&error_json("USAGE", message));
        return ExitCode::from(EXIT_USAGE);
    }
    // Printing help or a usage message can only fail on a closed stream,
    // and then there is no one left to tell.
    let _ = error.print();
    if asked_for_text {
        ExitCode::from(EXIT_SUCCESS)
    } else {
        ExitCode::from(EXIT_USAGE)
    }
}

/// Whether `--json` is on the command line, for when clap could not parse
/// it: a program that asked for JSON gets JSON even for a usage error.
pub fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != OsStr::new("--"))
        .any(|arg| arg == OsStr::new("--json"))
}

fn error_json(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// Prints one JSON object on one line; false if stdout is gone.
fn print_json(value: &Value) -> bool {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}")
        .and_then(|()| stdout.flush())
        .is_ok()
}

fn print_text(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let mut stdout = std::io::stdout().lock();
    let text = text.trim_end_matches('\n');
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .is_ok()
}

/// A library value as JSON. The library's outputs are plain data (no maps
/// with non-string keys), so this cannot fail; were it to, a `null` beats
/// a panic.
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `allowed`, `reason`, `until` and `warning` (the notice to show while
/// allowed: `IN_GRACE`, `OVERAGE`, `EXPIRED_KEPT`, `ENDING`, or null) of a
/// decision, as every check prints it.
pub fn decision_json(decision: &Decision) -> Value {
    json!({
        "allowed": decision.allowed(),
        "reason": decision.reason().code(),
        "until": decision.until(),
        "warning": decision.warning().map(|w| w.code()),
    })
}

/// What the person at the command line can do about an error: the
/// library's errors name no commands, the CLI adds its own.
pub fn error_hint(error: &Error) -> Option<&'static str> {
    Some(match error {
        Error::UnknownKey { .. } => {
            "apply the vendor's signed key rotation with `entitle apply FILE`."
        }
        Error::LicenseNotFound { .. } => "`entitle license list` shows the installed licenses.",
        Error::UserNotFound { .. } => "`entitle license usage` lists the users.",
        Error::FingerprintMismatch { .. } | Error::InstallKeyMismatch { .. } => {
            "run `entitle request` and send its file to the vendor."
        }
        Error::ReportReplayed { .. } => "the customer makes a new one with `entitle report`.",
        Error::StateMissing { .. } => "run `entitle init --pub KEY.pub --product CODE` first.",
        Error::Denied { reason, .. } => match reason {
            Reason::LeaseNotFound | Reason::LeaseExpired => {
                "`entitle lease list` shows the live leases; `entitle lease checkout` takes a new one."
            }
            Reason::LeaseBorrowed => {
                "a borrowed seat frees itself when its borrow ends; `entitle lease list` shows when."
            }
            Reason::ActivationLimit => {
                "`entitle activation list` shows the devices; free one with `entitle deactivate --fingerprint F`."
            }
            Reason::CertificateRequired => {
                "run `entitle request`, send the file to the vendor, and `entitle apply` the certificate they return."
            }
            Reason::NotActivated => {
                "`entitle activation list` shows the activated devices; `entitle activate` activates this one."
            }
            other => return reason_hint(*other),
        },
        _ => return None,
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
        Reason::VersionNotLicensed => {
            "The license is for other versions or channels of the program (`entitle license list` \
             shows them): run a version it covers; an install says its own with \
             `entitle init --app-version V --channel C`."
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

/// What a usage report accounts for, a line per license and metered
/// feature, for people (the install that signs it and the books that
/// ingest it say the same).
pub fn report_lines(report: &entitle::license::UsageReport) -> String {
    let mut text = String::new();
    if report.licenses.is_empty() {
        text.push_str("\n  It accounts for no license.");
    }
    for license in &report.licenses {
        let _ = write!(
            text,
            "\n  license {}: {} active user(s), {} device(s) activated",
            license.id, license.active_users, license.activations
        );
        for feature in &license.features {
            let _ = write!(text, "\n    {}: {} used", feature.code, feature.used);
            match feature.period_starts_at {
                Some(start) => {
                    let _ = write!(text, " in the period since {start}");
                }
                None => text.push_str(" in all"),
            }
            for closed in &feature.periods {
                let _ = write!(
                    text,
                    "\n      closed: {} used from {} to {}",
                    closed.used, closed.starts_at, closed.ends_at
                );
            }
        }
    }
    if let Some(clock) = &report.clock {
        let _ = write!(
            text,
            "\n  clock: latest time seen {}{}",
            clock.latest_seen,
            if clock.tampered {
                ", and the clock was behind it (set back)"
            } else {
                ""
            }
        );
    }
    text
}

/// The versions and channels a license is for, in words (`versions
/// >=2.0, <3 on the channels stable, beta`); `None` when it is for any.
pub fn version_limits(versions: Option<&str>, channels: Option<&[String]>) -> Option<String> {
    let channels = channels.map(|c| c.join(", "));
    match (versions, channels) {
        (None, None) => None,
        (Some(v), None) => Some(format!("versions {v}")),
        (None, Some(c)) => Some(format!("the channels {c}")),
        (Some(v), Some(c)) => Some(format!("versions {v} on the channels {c}")),
    }
}

/// A floating pool in words: "1 of 2 seats in use, borrowable for up to
/// 3600 s".
fn pool_words(pool: &FloatingInfo) -> String {
    let mut words = format!("{} of {} seats in use", pool.in_use, pool.seats);
    match pool.borrow_max_secs {
        Some(secs) => {
            let _ = write!(words, ", borrowable for up to {secs} s");
        }
        None => words.push_str(", not borrowable"),
    }
    words
}

/// One line about a license, for people.
pub fn license_line(info: &LicenseInfo) -> String {
    let mut line = format!("{}  {}  {}", info.id, info.status, info.kind);
    if let Some(name) = &info.name {
        let _ = write!(line, "  \"{name}\"");
    }
    match info.expires_at {
        Some(end) => {
            let _ = write!(line, "  expires {end}");
        }
        None => line.push_str("  no expiry"),
    }
    if let Some(pool) = &info.floating {
        let _ = write!(line, "  floating: {}", pool_words(pool));
    }
    if !info.features.is_empty() {
        let codes: Vec<String> = info
            .features
            .iter()
            .map(|f| {
                let mut words = f.code.clone();
                if let Some(name) = &f.name {
                    let _ = write!(words, " (\"{name}\")");
                }
                if let Some(pool) = &f.floating {
                    let _ = write!(words, " ({})", pool_words(pool));
                }
                words
            })
            .collect();
        let _ = write!(line, "  features: {}", codes.join(", "));
    }
    if let Some(limits) = version_limits(info.versions.as_deref(), info.channels.as_deref()) {
        let _ = write!(line, "\n  for {limits}");
        if !info.version_licensed {
            line.push_str(" (not this install's: its features are VERSION_NOT_LICENSED here)");
        }
    }
    if let Some(notice) = &info.notice {
        let _ = write!(line, "\n  notice: {notice}");
    }
    line
}
