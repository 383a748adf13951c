//! `entitle lease ...`: floating seats leased to clients.

use std::fmt::Write as _;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use entitle::engine::Lease;
use serde_json::json;

use crate::output::to_json;
use crate::output::{Failure, Outcome};
use crate::state::open_engine;
use crate::Globals;

/// `entitle lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Take a floating seat for a client (the same client renews its lease).
    Checkout(CheckoutArgs),
    /// Renew a lease before it lapses.
    Heartbeat(IdArgs),
    /// Give a lease's seat back (a borrowed one only once its borrow has
    /// ended: LEASE_BORROWED before).
    Checkin(IdArgs),
    /// Keep a leased seat without heartbeats for a while (a trip).
    Borrow(BorrowArgs),
    /// Give back a borrowed lease once its borrow has ended (a borrow
    /// holds its seat until it ends: LEASE_BORROWED before).
    Return(IdArgs),
    /// The live leases.
    List,
}

/// `entitle lease checkout`.
#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// Who holds the seat (a host, a worker, a user).
    #[arg(long, value_name = "C", value_parser = NonEmptyStringValueParser::new())]
    client: String,
    /// Draw from this feature's own pool instead of the license's.
    #[arg(long, value_name = "F", value_parser = NonEmptyStringValueParser::new())]
    feature: Option<String>,
}

/// A command on one lease.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The lease id (from `entitle lease checkout`).
    #[arg(value_name = "ID")]
    id: String,
}

/// `entitle lease borrow`.
#[derive(Debug, Args)]
pub struct BorrowArgs {
    /// The lease id.
    #[arg(value_name = "ID")]
    id: String,
    /// For how many seconds.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    secs: i64,
}

/// Runs one `lease` command.
pub fn run(command: LeaseCommand, globals: &Globals) -> Result<Outcome, Failure> {
    let engine = open_engine(globals)?;
    match command {
        LeaseCommand::Checkout(args) => {
            let lease = engine.checkout(&args.client, args.feature.as_deref())?;
            let human = format!(
                "{}\nKeep it with `entitle lease heartbeat {id}` before it lapses; give it back \
                 with `entitle lease checkin {id}`.",
                lease_line(&lease),
                id = lease.id,
            );
            Ok(Outcome::new(to_json(&lease), human))
        }
        LeaseCommand::Heartbeat(args) => {
            let lease = engine.heartbeat(&args.id)?;
            let human = format!("Renewed: {}", lease_line(&lease));
            Ok(Outcome::new(to_json(&lease), human))
        }
        LeaseCommand::Checkin(args) => {
            engine.checkin(&args.id)?;
            let linger_id = format!("linger_{}", args.id);
            let lingering = engine.leases().into_iter().find(|l| l.id == linger_id);
            let human = match &lingering {
                Some(seat) => format!(
                    "Checked in lease `{}`; its seat stays with client `{}` until {} (linger), \
                     then is free.",
                    args.id, seat.client, seat.expires_at
                ),
                None => format!("Checked in lease `{}`; its seat is free.", args.id),
            };
            let mut json = json!({"id": args.id, "checked_in": true});
            if let Some(seat) = lingering {
                json["lingering_until"] = json!(seat.expires_at);
            }
            Ok(Outcome::new(json, human))
        }
        LeaseCommand::Borrow(args) => {
            let lease = engine.borrow(&args.id, args.secs)?;
            let human = format!(
                "Borrowed: {}\nNo heartbeat is needed until then, and the seat stays taken \
                 until then: a borrow cannot be checked in early.",
                lease_line(&lease),
            );
            Ok(Outcome::new(to_json(&lease), human))
        }
        LeaseCommand::Return(args) => {
            engine.return_borrow(&args.id)?;
            Ok(Outcome::new(
                json!({"id": args.id, "returned": true}),
                format!("Returned lease `{}`; its seat is free.", args.id),
            ))
        }
        LeaseCommand::List => {
            let items = engine.leases();
            let mut human = String::new();
            if items.is_empty() {
                human.push_str("No live lease.\n");
            }
            for lease in &items {
                let _ = writeln!(human, "{}", lease_line(lease));
            }
            Ok(Outcome::new(json!({"items": to_json(&items)}), human))
        }
    }
}

fn lease_line(lease: &Lease) -> String {
    let pool = lease
        .feature
        .as_deref()
        .map_or("the license pool".to_owned(), |f| format!("the `{f}` pool"));
    let mut line = format!(
        "lease {} for client `{}` from {pool}, until {}",
        lease.id, lease.client, lease.expires_at
    );
    if lease.borrowed_until.is_some() {
        line.push_str(" (borrowed)");
    }
    if lease.id.starts_with("linger_") {
        line.push_str(" (lingering after its check-in: only this client gets it back)");
    }
    line
}
