//! The install's side of the vendor's online service, in builds with the
//! `client` feature (docs/http.md#the-vendors-service): `activate
//! --online` (by license key, or a user's login), `deactivate --online`,
//! `sync --online` and `trial --online`. Without the feature each says
//! how to get it.

use std::path::PathBuf;

use clap::Args;

#[cfg(not(feature = "client"))]
use crate::output::{Failure, Outcome};
#[cfg(not(feature = "client"))]
use crate::Globals;

/// `entitle sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The vendor's service: https://HOST[:PORT], or http:// to this
    /// machine.
    #[arg(long, value_name = "URL")]
    online: String,
}

/// `entitle trial`.
#[derive(Debug, Args)]
pub struct TrialArgs {
    /// The vendor's service: https://HOST[:PORT], or http:// to this
    /// machine.
    #[arg(long, value_name = "URL")]
    online: String,
}

/// How `activate --online` proves the right to a license.
#[derive(Debug)]
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub enum Credential<'a> {
    /// A license key the vendor sent.
    Key(&'a str),
    /// A user's email; the password comes from this file, or from
    /// `$ENTITLE_PASSWORD`.
    Login {
        /// The user's email.
        email: &'a str,
        /// The file holding the password.
        password_file: Option<&'a PathBuf>,
    },
}

/// The variable a password may come in, when no file is named: never the
/// command line, which other users of the machine can read.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
const PASSWORD_VARIABLE: &str = "ENTITLE_PASSWORD";

#[cfg(feature = "client")]
mod with_client {
    use entitle::client::{OnlineActivation, VendorClient};
    use entitle::Error;
    use serde_json::json;
    use zeroize::Zeroizing;

    use super::{Credential, SyncArgs, TrialArgs, PASSWORD_VARIABLE};
    use crate::files;
    use crate::output::{to_json, Failure, Outcome};
    use crate::state::open_install;
    use crate::Globals;

    /// The password of a login: the file's first line, or the variable.
    fn password(file: Option<&std::path::PathBuf>) -> Result<Zeroizing<String>, Error> {
        if let Some(path) = file {
            let text = Zeroizing::new(files::read_text(path, "password file")?);
            let line = text.lines().next().unwrap_or_default();
            return Ok(Zeroizing::new(line.to_owned()));
        }
        match std::env::var(PASSWORD_VARIABLE) {
            Ok(value) => Ok(Zeroizing::new(value)),
            Err(_) => Err(Error::InvalidArgument(format!(
                "--email needs the password in a file (--password-file FILE) or in \
                 ${PASSWORD_VARIABLE}; it is never taken on the command line, where other users \
                 of this machine could read it"
            ))),
        }
    }

    pub fn activate(
        url: &str,
        credential: Credential<'_>,
        globals: &Globals,
    ) -> Result<Outcome, Failure> {
        let vendor = VendorClient::new(url)?;
        let install = open_install(globals)?;
        let engine = &install.engine;
        let done = match credential {
            Credential::Key(key) => engine.activate_online(&vendor, key)?,
            Credential::Login {
                email,
                password_file,
            } => {
                let password = password(password_file)?;
                engine.activate_online_user(&vendor, email, &password)?
            }
        };
        Ok(activated("Activated", &done, url))
    }

    pub fn trial(args: &TrialArgs, globals: &Globals) -> Result<Outcome, Failure> {
        let vendor = VendorClient::new(&args.online)?;
        let install = open_install(globals)?;
        let done = install.engine.start_trial_online(&vendor)?;
        Ok(activated("Started the trial:", &done, &args.online))
    }

    fn activated(what: &str, done: &OnlineActivation, url: &str) -> Outcome {
        let counted = if done.newly_counted {
            "the vendor counted this device now"
        } else {
            "the vendor had counted this device before and sent a fresh certificate"
        };
        let until = match done.expires_at {
            Some(end) => format!(
                "The activation holds offline until {end}; run `entitle sync --online {url}` \
                 before then for a fresh one."
            ),
            None => "The activation holds offline with no end.".to_owned(),
        };
        let human = format!(
            "{what} device `{}` for license `{}` ({counted}).\n{until}\n\
             Next: `entitle check FEATURE` confirms the rights; `entitle deactivate --online \
             {url}` frees this device's slot before moving to another machine.",
            done.fingerprint, done.license_id
        );
        let mut json = to_json(done);
        json["online"] = json!(url);
        Outcome::new(json, human)
    }

    pub fn deactivate(url: &str, globals: &Globals) -> Result<Outcome, Failure> {
        let vendor = VendorClient::new(url)?;
        let install = open_install(globals)?;
        let done = install.engine.deactivate_online(&vendor)?;
        let again = if done.again {
            " (deactivated here before: its kept receipt was sent again)"
        } else {
            ""
        };
        let human = format!(
            "Deactivated device `{}` for license(s) {}{again}; the vendor's service took the \
             receipt and freed the slot.\n\
             Next: activate the new machine with `entitle activate --online {url} --key KEY`.",
            done.fingerprint,
            done.license_ids.join(", ")
        );
        let mut json = to_json(&done);
        json["online"] = json!(url);
        Ok(Outcome::new(json, human))
    }

    pub fn sync(args: &SyncArgs, globals: &Globals) -> Result<Outcome, Failure> {
        let url = &args.online;
        let vendor = VendorClient::new(url)?;
        let install = open_install(globals)?;
        let outcome = install.engine.sync_online(&vendor)?;
        let mut lines = Vec::new();
        if !outcome.licenses.is_empty() {
            lines.push(format!(
                "Installed or renewed license(s): {}.",
                outcome.licenses.join(", ")
            ));
        }
        if !outcome.revoked.is_empty() {
            lines.push(format!(
                "Applied the revocation list: {} revoked.",
                outcome.revoked.join(", ")
            ));
        }
        if !outcome.trusted_keys.is_empty() || !outcome.retired_keys.is_empty() {
            lines.push(format!(
                "Applied a key rotation: trusting {}; retired {}.",
                outcome.trusted_keys.join(", "),
                if outcome.retired_keys.is_empty() {
                    "none".to_owned()
                } else {
                    outcome.retired_keys.join(", ")
                }
            ));
        }
        for withdrawn in &outcome.withdrawn {
            lines.push(format!(
                "The vendor withdrew the activation of device `{}` for license `{}`: it no \
                 longer grants here; `entitle activate --online {url} --key KEY` activates \
                 again if a slot is free.",
                withdrawn.fingerprint, withdrawn.license_id
            ));
        }
        if lines.is_empty() && outcome.refused.is_empty() {
            lines.push("Up to date: the vendor's service had nothing new.".to_owned());
        }
        lines.push("Next: `entitle license list` shows the licenses and their status.".into());
        let mut json = to_json(&outcome);
        json["applied"] = json!(outcome.applied());
        json["online"] = json!(url);
        let mut result = Outcome::new(json, lines.join("\n"));
        for refused in &outcome.refused {
            result = result.with_warning(format!(
                "refused {} from the vendor's service [{}]: {}; it grants nothing",
                refused.what, refused.code, refused.message
            ));
        }
        // Something the service sent was not believed: a script must see it.
        if !outcome.refused.is_empty() {
            result = result.denied();
        }
        Ok(result)
    }
}

#[cfg(feature = "client")]
pub use with_client::{activate, deactivate, sync, trial};

#[cfg(not(feature = "client"))]
fn without_client() -> Failure {
    entitle::Error::InvalidArgument(
        "this build of entitle has no client of the vendor's online service: build it with \
         `cargo build --release --features client`"
            .into(),
    )
    .into()
}

/// Without the `client` feature: says how to get it.
#[cfg(not(feature = "client"))]
pub fn activate(_: &str, _: Credential<'_>, _: &Globals) -> Result<Outcome, Failure> {
    Err(without_client())
}

/// Without the `client` feature: says how to get it.
#[cfg(not(feature = "client"))]
pub fn deactivate(_: &str, _: &Globals) -> Result<Outcome, Failure> {
    Err(without_client())
}

/// Without the `client` feature: says how to get it.
#[cfg(not(feature = "client"))]
pub fn sync(_: &SyncArgs, _: &Globals) -> Result<Outcome, Failure> {
    Err(without_client())
}

/// Without the `client` feature: says how to get it.
#[cfg(not(feature = "client"))]
pub fn trial(_: &TrialArgs, _: &Globals) -> Result<Outcome, Failure> {
    Err(without_client())
}
