//! `entitle license ...`: the licenses installed here, and the seats they
//! give.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use entitle::engine::license_query;
use entitle::license::{CountedBy, License};
use entitle::{token, Engine, Error};
use serde_json::{json, Value};

use crate::output::{license_line, reason_hint, to_json};
use crate::output::{Failure, Outcome};
use crate::state::open_engine;
use crate::{files, Globals};

/// `entitle license ...`.
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Verify and install a license file from the vendor.
    Add(AddArgs),
    /// List the installed licenses: filtered, ordered, a page at a time.
    List(ListArgs),
    /// Remove an installed license.
    Remove(RemoveArgs),
    /// Seat usage now: active users against licensed and hard seats.
    Status,
    /// The users, a page at a time, and a summary by user type.
    Usage(UsageArgs),
}

/// `entitle license add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The license file (armored or a bare token).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `entitle license list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// A SCIM-style filter, e.g. `status eq "active" and expires_at lt
    /// "2027-01-01T00:00:00Z"`.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// The field to order by; a leading `-` reverses (e.g. `-expires_at`).
    #[arg(long, value_name = "[-]FIELD", allow_hyphen_values = true)]
    order: Option<String>,
    /// At most this many licenses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    limit: Option<u64>,
    /// Resume after the page that printed this `next_cursor`.
    #[arg(long, value_name = "C")]
    cursor: Option<String>,
}

/// `entitle license remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The license id.
    #[arg(value_name = "ID")]
    id: String,
    /// Leave a tombstone: this id can never be added again.
    #[arg(long)]
    hard: bool,
}

/// `entitle license usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Skip this many users (ordered by id).
    #[arg(long, value_name = "N", default_value_t = 0)]
    offset: usize,
    /// At most this many users (up to 1000).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    size: u64,
}

/// Runs one `license` command.
pub fn run(command: LicenseCommand, globals: &Globals) -> Result<Outcome, Failure> {
    match command {
        LicenseCommand::Add(args) => Ok(add(&open_engine(globals)?, &args)?),
        LicenseCommand::List(args) => {
            // The query is checked before the state is opened: a bad
            // filter is the user's to fix, whatever the state holds.
            let query = license_query(
                args.filter.as_deref(),
                args.order.as_deref(),
                args.limit.map(|n| n as usize),
                args.cursor.as_deref(),
            )?;
            let engine = open_engine(globals)?;
            let page = engine.licenses(&query)?;
            let mut human = String::new();
            if page.items.is_empty() {
                human.push_str(if args.filter.is_some() || args.cursor.is_some() {
                    "No license matches.\n"
                } else {
                    "No license is installed. Add one with `entitle license add FILE`.\n"
                });
            }
            for info in &page.items {
                human.push_str(&license_line(info));
                human.push('\n');
            }
            if let Some(cursor) = &page.next_cursor {
                let _ = writeln!(human, "More: add --cursor {cursor}");
            }
            Ok(Outcome::new(
                json!({"items": to_json(&page.items), "next_cursor": page.next_cursor}),
                human,
            ))
        }
        LicenseCommand::Remove(args) => {
            let engine = open_engine(globals)?;
            let removed = engine.remove_license(&args.id, args.hard)?;
            let human = if args.hard {
                format!(
                    "Removed license `{}` for good: it can never be added again here.",
                    args.id
                )
            } else {
                format!(
                    "Removed license `{}`. Its rights end now; adding the file again brings it \
                     back.",
                    args.id
                )
            };
            // The removed license's fields, and how and when it went.
            let mut json = match removed {
                Some(info) => to_json(&info),
                None => json!({"id": args.id}),
            };
            json["removed"] = json!(true);
            json["hard"] = json!(args.hard);
            json["removed_at"] = json!(engine.now());
            Ok(Outcome::new(json, human))
        }
        LicenseCommand::Status => Ok(status(&open_engine(globals)?)),
        LicenseCommand::Usage(args) => Ok(usage(&open_engine(globals)?, &args)),
    }
}

fn add(engine: &Engine, args: &AddArgs) -> Result<Outcome, Error> {
    let text = files::read_text(&args.file, "license file")?;
    let id = engine.add_license(&text)?;
    let info = engine.license_infos().into_iter().find(|l| l.id == id);
    let mut human = format!("Added license `{id}`.");
    if let Some(info) = &info {
        human = format!("Added {}", license_line(info));
    }
    // The engine accepted the token, so its document is the vendor's: read
    // it again only to say what the license asks of this install.
    let document = token::decode_unverified(&text)
        .ok()
        .and_then(|t| License::from_json(&Value::Object(t.payload)).ok());
    let next = match document.as_ref().and_then(|l| l.activations) {
        Some(rules) if rules.counted_by == CountedBy::Vendor => {
            "\nIt is node-locked and activated by the vendor: run `entitle request --out \
             activation.json`, send that file to the vendor, then `entitle apply` the \
             certificate they return."
        }
        Some(_) => "\nIt is node-locked: activate this device with `entitle activate`.",
        None if document.as_ref().is_some_and(|l| l.seats.is_some()) => {
            "\nNext: add users with `entitle user add ID`; `entitle license status` shows the \
             seats."
        }
        None => "\nNext: `entitle check FEATURE` checks a right.",
    };
    human.push_str(next);
    let mut json = json!({"id": id});
    if let Some(info) = info {
        json["license"] = to_json(&info);
    }
    Ok(Outcome::new(json, human))
}

fn status(engine: &Engine) -> Outcome {
    let status = engine.status();
    let mut human = format!(
        "Users: {active} active of {total}; seats: {seats} licensed, {hard} hard limit; \
         {licenses} license(s) installed.\n",
        active = status.active_user_count,
        total = status.total_users,
        seats = status.license_seats,
        hard = status.hard_seats,
        licenses = status.licenses,
    );
    let decision = status.can_add_user;
    let _ = write!(
        human,
        "Another user: {} ({}).",
        if decision.allowed() {
            "can be added"
        } else {
            "cannot be added"
        },
        status.reason
    );
    if let Some(hint) = reason_hint(decision.reason()) {
        human.push('\n');
        human.push_str(hint);
    }
    if status.clock_tampered {
        human.push_str(
            "\nThe clock is behind the latest time this install has seen: time-limited \
             rights are held until it is right again.",
        );
    }
    Outcome::new(to_json(&status), human)
}

fn usage(engine: &Engine, args: &UsageArgs) -> Outcome {
    let usage = engine.usage(args.offset, args.size as usize);
    let mut human = String::new();
    if usage.total == 0 {
        human.push_str("No users yet. Add one with `entitle user add ID`.\n");
    }
    for user in &usage.users {
        let who = match (&user.name, &user.email) {
            (Some(name), Some(email)) => format!("  {name} <{email}>"),
            (Some(name), None) => format!("  {name}"),
            (None, Some(email)) => format!("  <{email}>"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            human,
            "{id}{who}  {user_type}  {state}  last active {at}",
            id = user.id,
            user_type = user.user_type,
            state = if user.active { "active" } else { "idle" },
            at = user.last_active_at,
        );
    }
    if !usage.summary.is_empty() {
        human.push_str("By type:\n");
    }
    for (user_type, summary) in &usage.summary {
        let _ = writeln!(
            human,
            "  {user_type}: {} total, {} active, {} inactive",
            summary.total, summary.active, summary.inactive
        );
    }
    let shown_to = usage.offset + usage.users.len();
    if (shown_to as u64) < usage.total {
        let _ = writeln!(
            human,
            "Users {}..{shown_to} of {}; more with --offset {shown_to}.",
            usage.offset + 1,
            usage.total
        );
    }
    Outcome::new(to_json(&usage), human)
}
