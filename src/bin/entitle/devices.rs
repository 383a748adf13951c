//! Node-locked devices: `activate`, `deactivate`, `activation list`;
//! `request`, the install's half of an offline activation; and what flows
//! back to the vendor from an air-gapped install: `deactivate --receipt`
//! and `report`, signed by the install's own key. The same through the
//! vendor's online service (`--online URL`, `sync`, `trial`) is in
//! `online`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use entitle::device::{detect_virtual_machine, Device};
use entitle::{Error, Reason};
use serde_json::json;

use crate::output::{report_lines, to_json};
use crate::output::{Failure, Outcome};
use crate::state::{open_books, open_engine, open_install};
use crate::{files, online, Globals};

/// The node-locked devices' commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Activate this device (or the one named) for node-locked licenses.
    Activate(ActivateArgs),
    /// Deactivate a device, freeing its slot (counts one transfer); with
    /// --receipt, write a signed receipt for the vendor's books.
    Deactivate(DeactivateArgs),
    /// The devices activated here.
    #[command(subcommand)]
    Activation(ActivationCommand),
    /// Write an offline activation request to send to the vendor.
    Request(RequestArgs),
    /// Write a usage report signed by this install, to send to the vendor.
    Report(ReportArgs),
    /// Bring this install up to date with the vendor's online service:
    /// newer licenses, revocations, key rotations, withdrawn activations
    /// (builds with the `client` feature).
    Sync(online::SyncArgs),
    /// Start this device's trial from the vendor's online service (builds
    /// with the `client` feature).
    Trial(online::TrialArgs),
}

/// Runs one device command.
pub fn run(command: DeviceCommand, globals: &Globals) -> Result<Outcome, Failure> {
    match command {
        DeviceCommand::Activate(args) => activate(&args, globals),
        DeviceCommand::Deactivate(args) => deactivate(&args, globals),
        DeviceCommand::Activation(ActivationCommand::List) => activation_list(globals),
        DeviceCommand::Request(args) => request(&args, globals),
        DeviceCommand::Report(args) => report(&args, globals),
        DeviceCommand::Sync(args) => online::sync(&args, globals),
        DeviceCommand::Trial(args) => online::trial(&args, globals),
    }
}

/// `entitle activate`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The device to activate [default: this install's fingerprint].
    #[arg(long, value_name = "F", value_parser = NonEmptyStringValueParser::new())]
    fingerprint: Option<String>,
    /// Declare the device a virtual machine (otherwise detected).
    #[arg(long)]
    vm: bool,
    /// Activate this device through the vendor's online service at URL
    /// (https://HOST[:PORT], or http:// to this machine), with --key or
    /// --email (builds with the `client` feature).
    #[arg(long, value_name = "URL", conflicts_with_all = ["fingerprint", "vm"])]
    online: Option<String>,
    /// With --online: the license key the vendor sent.
    #[arg(
        long,
        value_name = "KEY",
        requires = "online",
        conflicts_with = "email"
    )]
    key: Option<String>,
    /// With --online: log in as this user of the vendor's service, and
    /// activate the license assigned to them. The password comes from
    /// --password-file or $ENTITLE_PASSWORD, never the command line.
    #[arg(long, value_name = "EMAIL", requires = "online")]
    email: Option<String>,
    /// With --email: the file whose first line is the password.
    #[arg(long, value_name = "FILE", requires = "email")]
    password_file: Option<PathBuf>,
}

/// `entitle deactivate`.
#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// The device to deactivate [default: this install's fingerprint].
    #[arg(long, value_name = "F", value_parser = NonEmptyStringValueParser::new())]
    fingerprint: Option<String>,
    /// Write a deactivation receipt, signed by this install, to FILE: the
    /// vendor's books free the slot with `entitle --state BOOKS receipt
    /// FILE`. Run again after a crash or a lost file, it writes the same
    /// receipt again.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// With --receipt: the license to deactivate the device for, when it is
    /// activated for several (a receipt covers one).
    #[arg(long, value_name = "ID", requires = "receipt", value_parser = NonEmptyStringValueParser::new())]
    license: Option<String>,
    /// Deactivate this device and send its receipt to the vendor's online
    /// service at URL, which frees the slot (builds with the `client`
    /// feature).
    #[arg(long, value_name = "URL", conflicts_with_all = ["fingerprint", "receipt"])]
    online: Option<String>,
}

/// `entitle report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the report here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `entitle activation ...`.
#[derive(Debug, Subcommand)]
pub enum ActivationCommand {
    /// Every device activated here, live or lapsed.
    List,
}

/// `entitle request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Write the request here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The license to activate, when several node-locked ones are installed.
    #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    license: Option<String>,
}

/// `entitle activate`.
fn activate(args: &ActivateArgs, globals: &Globals) -> Result<Outcome, Failure> {
    if let Some(url) = &args.online {
        let credential = match (&args.key, &args.email) {
            (Some(key), _) => online::Credential::Key(key),
            (None, Some(email)) => online::Credential::Login {
                email,
                password_file: args.password_file.as_ref(),
            },
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "--online needs --key KEY (the license key the vendor sent) or --email \
                     EMAIL (a user of the vendor's service)"
                        .into(),
                )
                .into())
            }
        };
        return online::activate(url, credential, globals);
    }
    let install = open_install(globals)?;
    let engine = &install.engine;
    // Another device named with --fingerprint (a site server activating a
    // client) is declared a virtual machine with --vm or not at all: this
    // machine's detector says nothing about it (the server may itself be
    // one).
    let (fingerprint, vm, ids) = match &args.fingerprint {
        Some(other) => {
            let device = Device {
                vm: args.vm,
                ..Device::new(other.clone())
            };
            (other.clone(), args.vm, engine.activate(&device)?)
        }
        None => {
            let fingerprint = engine.fingerprint().ok_or_else(device_unknown)?.to_owned();
            let ids = if args.vm {
                engine.activate(&Device {
                    vm: true,
                    ..Device::new(fingerprint.clone())
                })?
            } else {
                engine.activate_this_device()?
            };
            (fingerprint, args.vm || detect_virtual_machine(), ids)
        }
    };
    let device = Device {
        fingerprint: fingerprint.clone(),
        vm,
        ..Device::new(String::new())
    };
    let human = format!(
        "Activated device `{fingerprint}`{vm} for license(s): {}.\n\
         Next: `entitle check FEATURE` confirms the rights; `entitle activation list` shows \
         the devices.",
        ids.join(", "),
        vm = if device.vm {
            " (a virtual machine)"
        } else {
            ""
        },
    );
    Ok(Outcome::new(
        json!({"fingerprint": fingerprint, "vm": device.vm, "license_ids": ids}),
        human,
    ))
}

/// This machine gives no machine id: no device to act for.
fn device_unknown() -> Error {
    Error::Denied {
        reason: Reason::DeviceUnknown,
        message: "this machine gives no machine id, so it has no device fingerprint: name the \
                  device with --fingerprint, or make the state with `entitle init --fingerprint F`"
            .into(),
        retry_at: None,
    }
}

/// `entitle deactivate`.
fn deactivate(args: &DeactivateArgs, globals: &Globals) -> Result<Outcome, Failure> {
    if let Some(url) = &args.online {
        return online::deactivate(url, globals);
    }
    let install = open_install(globals)?;
    let fingerprint = match (&args.fingerprint, install.engine.fingerprint()) {
        (Some(named), _) => named.clone(),
        (None, Some(this)) => this.to_owned(),
        (None, None) => return Err(device_unknown().into()),
    };
    if let Some(out) = &args.receipt {
        return deactivate_with_receipt(
            &install.engine,
            &fingerprint,
            args.license.as_deref(),
            out,
        );
    }
    let ids = install.engine.deactivate(&fingerprint)?;
    let human = format!(
        "Deactivated device `{fingerprint}` for license(s): {}; each counted one transfer.\n\
         Its slot is free: activate the new device with `entitle activate --fingerprint F`.",
        ids.join(", ")
    );
    Ok(Outcome::new(
        json!({"fingerprint": fingerprint, "license_ids": ids}),
        human,
    ))
}

/// `entitle deactivate --receipt FILE`: the deactivation and its receipt
/// are made durable together first; only then is the file written, so a
/// receipt on disk always stands for a deactivation that happened, and a
/// crash in between is mended by running the command again.
fn deactivate_with_receipt(
    engine: &entitle::Engine,
    fingerprint: &str,
    license: Option<&str>,
    out: &Path,
) -> Result<Outcome, Failure> {
    let issued = engine.deactivate_with_receipt(fingerprint, license)?;
    files::write_text(out, "deactivation receipt", &issued.token).map_err(|e| Error::Io {
        context: format!(
            "device `{fingerprint}` is deactivated and its receipt kept in the state, but \
                 the receipt could not be written: run `entitle deactivate --receipt FILE` again \
                 with a FILE that can be written ({e})"
        ),
        source: std::io::Error::other("the receipt file was not written"),
    })?;
    let receipt = &issued.receipt;
    let done = if issued.again {
        format!(
            "Device `{fingerprint}` was deactivated for license `{}` at {} already; wrote its \
             receipt again to {}.",
            receipt.license_id,
            receipt.deactivated_at,
            out.display()
        )
    } else {
        format!(
            "Deactivated device `{fingerprint}` for license `{}`; counted one transfer.\n\
             Wrote the receipt, signed by this install (kid {}), to {}.",
            receipt.license_id,
            issued.kid,
            out.display()
        )
    };
    let human = format!(
        "{done}\nNext: carry {out} to the vendor, who frees the slot in their books with \
         `entitle --state BOOKS receipt {out}`; then a new device can be activated.",
        out = out.display()
    );
    Ok(Outcome::new(
        json!({
            "fingerprint": fingerprint,
            "license_ids": [receipt.license_id],
            "receipt": to_json(receipt),
            "kid": issued.kid,
            "again": issued.again,
            "out": out.display().to_string(),
        }),
        human,
    ))
}

/// `entitle report`.
fn report(args: &ReportArgs, globals: &Globals) -> Result<Outcome, Failure> {
    let engine = open_engine(globals)?;
    let signed = engine.usage_report()?;
    let report = &signed.report;
    let mut summary = format!(
        "Usage report {} of device `{}`, signed by this install (kid {}):",
        report.sequence, report.fingerprint, signed.kid
    );
    summary.push_str(&report_lines(report));
    let mut result = json!({
        "fingerprint": report.fingerprint,
        "sequence": report.sequence,
        "created_at": report.created_at,
        "kid": signed.kid,
        "report": to_json(report),
        "token": signed.token,
    });
    let outcome = match &args.out {
        Some(out) => {
            files::write_text(out, "usage report", &signed.token).map_err(|e| Error::Io {
                context: format!(
                    "usage report {} was signed but could not be written ({e}); the next report \
                     is {} and the vendor will see {} missing",
                    report.sequence,
                    report.sequence.saturating_add(1),
                    report.sequence
                ),
                source: std::io::Error::other("the report file was not written"),
            })?;
            result["out"] = json!(out.display().to_string());
            let human = format!(
                "{summary}\nWrote {out}.\n\
                 Next: send {out} to the vendor, who records it with \
                 `entitle --state BOOKS ingest {out}`.",
                out = out.display()
            );
            Outcome::new(result, human)
        }
        None => Outcome::new(result, signed.token.clone()).with_note(format!(
            "{summary}\nThe report is on stdout; save it with --out FILE and send it to the \
             vendor, who records it with `entitle --state BOOKS ingest FILE`."
        )),
    };
    Ok(outcome)
}

/// `entitle activation list`.
fn activation_list(globals: &Globals) -> Result<Outcome, Failure> {
    // The listing is the state's records, whichever role the state plays
    // (an install, or the vendor's books): read as books, it needs no
    // device, so it answers the same on any machine.
    let books = open_books(globals)?;
    let now = books.now();
    let items = books.activations();
    let mut human = String::new();
    if items.is_empty() {
        human.push_str("No device is activated here. `entitle activate` activates this one.\n");
    }
    for item in &items {
        let _ = write!(
            human,
            "{}  license {}  host {}  activated {}",
            item.fingerprint, item.license_id, item.hostname, item.activated_at
        );
        match item.expires_at {
            Some(end) if end <= now => {
                let _ = write!(human, "  LAPSED at {end}");
            }
            Some(end) => {
                let _ = write!(human, "  until {end}");
            }
            None => {}
        }
        if item.certificate {
            human.push_str("  (vendor certificate)");
        }
        if item.vm {
            human.push_str("  (virtual machine)");
        }
        human.push('\n');
    }
    Ok(Outcome::new(json!({"items": to_json(&items)}), human))
}

/// `entitle request`.
fn request(args: &RequestArgs, globals: &Globals) -> Result<Outcome, Failure> {
    let engine = open_engine(globals)?;
    let request = engine.activation_request(args.license.as_deref())?;
    let text = serde_json::to_string_pretty(&request)
        .map_err(|e| Error::InvalidArgument(format!("cannot write the activation request: {e}")))?;
    let mut result = json!({
        "license_id": request.license_id,
        "fingerprint": request.fingerprint,
        "request": to_json(&request),
    });
    let summary = format!(
        "Activation request for license `{}` on this device (`{}`, host {}){}.",
        request.license_id,
        request.fingerprint,
        request.hostname,
        engine.install_key().map_or(String::new(), |key| format!(
            ", from install key {}",
            key.kid()
        ))
    );
    let outcome = match &args.out {
        Some(out) => {
            files::write_text(out, "activation request", &format!("{text}\n"))?;
            result["out"] = json!(out.display().to_string());
            let human = format!(
                "{summary}\nWrote {out}.\n\
                 Next: send {out} to your vendor. They reply with a machine certificate; \
                 install it here with `entitle apply FILE`.",
                out = out.display()
            );
            Outcome::new(result, human)
        }
        None => Outcome::new(result, text).with_note(format!(
            "{summary}\nThe request is on stdout; save it with --out FILE, send it to your \
             vendor, then `entitle apply` the machine certificate they return."
        )),
    };
    Ok(outcome)
}
