//! `entitle user ...`: named users, who hold seats while active.

use std::fmt::Write as _;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use entitle::engine::NewUser;
use entitle::Reason;
use serde_json::json;

use crate::output::{decision_json, license_line, reason_hint, to_json};
use crate::output::{Failure, Outcome};
use crate::state::open_engine;
use crate::Globals;

/// `entitle user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a named user, taking a seat (or record activity if known).
    Add(AddArgs),
    /// Record that a user was active (an idle user needs a free seat).
    Activity(IdArgs),
    /// Remove a user, freeing their seat.
    Remove(IdArgs),
    /// May one more user be added now? Exit status 0 yes, 1 no.
    CanAdd,
    /// The licenses that give this user rights now.
    Licenses(IdArgs),
}

/// `entitle user add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user id.
    #[arg(value_name = "ID")]
    id: String,
    /// The user type, for usage reports (e.g. `designer`, `viewer`).
    #[arg(long = "type", value_name = "T", default_value = "user",
          value_parser = NonEmptyStringValueParser::new())]
    user_type: String,
    /// The user's name, shown by `entitle license usage`.
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    name: Option<String>,
    /// The user's email address, shown by `entitle license usage`.
    #[arg(long, value_name = "ADDRESS", value_parser = NonEmptyStringValueParser::new())]
    email: Option<String>,
}

/// A command on one user.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The user id.
    #[arg(value_name = "ID")]
    id: String,
}

/// Runs one `user` command.
pub fn run(command: UserCommand, globals: &Globals) -> Result<Outcome, Failure> {
    let engine = open_engine(globals)?;
    match command {
        UserCommand::Add(args) => {
            let mut user = NewUser::new(&args.id, &args.user_type);
            if let Some(name) = &args.name {
                user = user.name(name);
            }
            if let Some(email) = &args.email {
                user = user.email(email);
            }
            let decision = engine.add_user_with(&user)?;
            let status = engine.status();
            let human = format!(
                "Added user `{id}` ({user_type}): {active} of {seats} licensed seats in use \
                 (hard limit {hard}).",
                id = args.id,
                user_type = args.user_type,
                active = status.active_user_count,
                seats = status.license_seats,
                hard = status.hard_seats,
            );
            let mut result = json!({
                "id": args.id,
                "user_type": args.user_type,
                "name": args.name,
                "email": args.email,
                "reason": decision.reason().code(),
                "overage": decision.reason() == Reason::Overage,
                "active_user_count": status.active_user_count,
            });
            result["allowed"] = json!(decision.allowed());
            let mut outcome = Outcome::new(result, human);
            if decision.reason() == Reason::Overage {
                outcome = outcome.with_warning(format!(
                    "user `{}` takes an overage seat: beyond the {} licensed, within the hard \
                     limit of {}; ask the vendor for a seat top-up.",
                    args.id, status.license_seats, status.hard_seats
                ));
            }
            Ok(outcome)
        }
        UserCommand::Activity(args) => {
            engine.record_activity(&args.id)?;
            Ok(Outcome::new(
                json!({"id": args.id, "recorded": true, "at": engine.now()}),
                format!("Recorded activity for user `{}`.", args.id),
            ))
        }
        UserCommand::Remove(args) => {
            engine.remove_user(&args.id)?;
            Ok(Outcome::new(
                json!({"id": args.id, "removed": true}),
                format!("Removed user `{}`; their seat is free.", args.id),
            ))
        }
        UserCommand::CanAdd => {
            let decision = engine.can_add_user();
            let mut human = if decision.allowed() {
                format!("Yes: another user can be added ({}).", decision.reason())
            } else {
                format!("No: another user cannot be added ({}).", decision.reason())
            };
            if let Some(hint) = reason_hint(decision.reason()) {
                human.push('\n');
                human.push_str(hint);
            }
            let outcome = Outcome::new(decision_json(&decision), human);
            Ok(if decision.allowed() {
                outcome
            } else {
                outcome.denied()
            })
        }
        UserCommand::Licenses(args) => {
            let items = engine.licenses_for_user(&args.id);
            let mut human = String::new();
            if items.is_empty() {
                let _ = writeln!(
                    human,
                    "No license in force gives user `{}` rights.",
                    args.id
                );
            }
            for info in &items {
                human.push_str(&license_line(info));
                human.push('\n');
            }
            Ok(Outcome::new(
                json!({"user": args.id, "items": to_json(&items)}),
                human,
            ))
        }
    }
}
