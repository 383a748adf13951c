//! `entitle`: the command-line tool for vendors (keys, issuing, revoking)
//! and, later, for administrators of installs.
//!
//! `entitle [--state DIR] [--now RFC3339] [--json] <command>`: the global
//! flags go before or after the command. Each group of commands lives in
//! its own module and returns an [`output::Outcome`]; `output` alone decides
//! how it is printed and which exit status it gives.
#![forbid(unsafe_code)]

mod files;
mod output;
mod vendor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use entitle::{Clock, SystemClock, Timestamp};

/// Offline license enforcement: issue, verify and enforce signed licenses.
#[derive(Debug, Parser)]
#[command(name = "entitle", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    globals: Globals,

    #[command(subcommand)]
    command: Command,
}

/// The flags every command accepts, before or after its name.
#[derive(Debug, clap::Args)]
pub struct Globals {
    /// The install's state directory.
    #[arg(
        long,
        global = true,
        env = "ENTITLE_STATE",
        default_value = "./entitle-state",
        value_name = "DIR"
    )]
    // Read by the install-side commands, which act on the state directory;
    // the vendor commands need none.
    #[allow(dead_code)]
    pub state: PathBuf,

    /// Use this time instead of the system clock (simulations, tests).
    #[arg(long, global = true, env = "ENTITLE_NOW", value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<Timestamp>,

    /// Print exactly one JSON object on stdout, errors included.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Globals {
    /// The time this run acts at: `--now`, or the system clock.
    pub fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(|| SystemClock.now())
    }
}

fn parse_now(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    // Install-side commands join here as another flattened group.
    #[command(flatten)]
    Vendor(vendor::VendorCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => return output::usage_error(&usage, output::json_requested()),
    };
    let outcome = match cli.command {
        Command::Vendor(command) => vendor::run(command, &cli.globals),
    };
    output::finish(outcome, cli.globals.json)
}
