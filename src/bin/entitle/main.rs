//! `entitle`: the command-line tool for vendors (keys, issuing, revoking,
//! offline activation, and the books that take receipts and usage reports)
//! and for administrators of installs.
//!
//! `entitle [--state DIR | --store URL [--namespace NAME]] [--now RFC3339]
//! [--json] <command>`: the global flags go before or after the command. Each group of commands lives in
//! its own module and returns an [`output::Outcome`]; `output` alone decides
//! how it is printed and which exit status it gives.
#![forbid(unsafe_code)]

mod books;
mod demo;
mod devices;
mod files;
mod install;
mod leases;
mod licenses;
mod namespaces;
mod online;
mod output;
mod serve;
mod state;
mod users;
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
    /// The install's state directory [default: ./entitle-state].
    // No clap default: `respond` counts in a vendor state only when one
    // was named, so "given" and "defaulted" must stay apart.
    #[arg(long, global = true, env = "ENTITLE_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Where the install's state lives, in place of --state: a PostgreSQL
    /// URL (postgres://USER@HOST:PORT/DATABASE, or postgresql://), a
    /// directory, or file://DIR.
    #[arg(
        long,
        global = true,
        env = "ENTITLE_STORE",
        value_name = "URL",
        conflicts_with = "state"
    )]
    pub store: Option<String>,

    /// The install within a PostgreSQL store: one database holds any
    /// number of them. `init` makes it; every other command needs it to
    /// exist (`entitle namespace list` lists them).
    #[arg(
        long,
        global = true,
        env = "ENTITLE_NAMESPACE",
        value_name = "NAME",
        default_value = "default"
    )]
    pub namespace: String,

    /// Use this time instead of the system clock (simulations, tests).
    #[arg(long, global = true, env = "ENTITLE_NOW", value_name = "RFC3339", value_parser = parse_time)]
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

    /// Where the state lives: `--store`/`$ENTITLE_STORE`, else
    /// `--state`/`$ENTITLE_STATE`, else the default directory.
    pub fn location(&self) -> Result<state::Location, entitle::Error> {
        let dir = |path: PathBuf| state::Location::Dir(path);
        let location = match &self.store {
            Some(url) => state::Location::parse(url, &self.namespace)?,
            None => dir(self
                .state
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))),
        };
        if matches!(location, state::Location::Dir(_)) && self.namespace != "default" {
            return Err(entitle::Error::InvalidArgument(
                "--namespace names an install in a PostgreSQL store; a state directory holds \
                 one install (use another directory for another)"
                    .into(),
            ));
        }
        Ok(location)
    }

    /// Whether the state was named (`--state` or `--store`, or their
    /// variables) rather than defaulted.
    pub fn state_named(&self) -> bool {
        self.state.is_some() || self.store.is_some()
    }
}

/// Where the state lives when neither `--state` nor `$ENTITLE_STATE` says.
const DEFAULT_STATE_DIR: &str = "./entitle-state";

/// Parses an RFC 3339 time on the command line (`--now`, `--expires`...).
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Vendor(vendor::VendorCommand),
    #[command(flatten)]
    Books(books::BooksCommand),
    #[command(flatten)]
    Install(install::InstallCommand),
    /// Add, list and remove licenses; seat status and usage.
    #[command(subcommand)]
    License(licenses::LicenseCommand),
    /// Named users and their seats.
    #[command(subcommand)]
    User(users::UserCommand),
    #[command(flatten)]
    Devices(devices::DeviceCommand),
    /// Floating seats: check out, renew, borrow, return.
    #[command(subcommand)]
    Lease(leases::LeaseCommand),
    /// The installs a PostgreSQL store (--store) holds: list them, or
    /// delete one. `init` makes one.
    #[command(subcommand)]
    Namespace(namespaces::NamespaceCommand),
    /// A guided walk through everything, in a temporary directory.
    Demo,
    /// Serve this install's floating seats, checks and admin API over
    /// HTTP to a LAN; with --books, the vendor's online service (builds
    /// with the `server` feature).
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => return output::usage_error(&usage, output::json_requested()),
    };
    let outcome = match cli.command {
        Command::Vendor(command) => vendor::run(command, &cli.globals),
        Command::Books(command) => books::run(command, &cli.globals),
        Command::Install(command) => install::run(command, &cli.globals),
        Command::License(command) => licenses::run(command, &cli.globals),
        Command::User(command) => users::run(command, &cli.globals),
        Command::Devices(command) => devices::run(command, &cli.globals),
        Command::Lease(command) => leases::run(command, &cli.globals),
        Command::Namespace(command) => namespaces::run(command, &cli.globals),
        Command::Demo => demo::run(cli.globals.now),
        Command::Serve(args) => serve::run(&args, &cli.globals),
    };
    output::finish(outcome, cli.globals.json)
}
