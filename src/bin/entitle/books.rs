//! The vendor's books take what air-gapped installs send back
//! (docs/cli.md#the-vendors-books): `receipt` frees the slot of a device
//! deactivated offline,
//! `ingest` records a usage report. Both act on the vendor's own state
//! (`--state BOOKS`), the one `respond --state BOOKS` counted the
//! activations in and recorded each install's key.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use entitle::books::SequenceGap;
use serde_json::json;

use crate::output::{report_lines, to_json, Failure, Outcome};
use crate::state::open_books;
use crate::{files, Globals};

/// The books' intake of receipts and reports.
#[derive(Debug, Subcommand)]
pub enum BooksCommand {
    /// Free the slot of a device an install deactivated offline, on its
    /// signed receipt (in the vendor's books: --state BOOKS).
    Receipt(ReceiptArgs),
    /// Record a usage report an install signed (in the vendor's books:
    /// --state BOOKS).
    Ingest(IngestArgs),
}

/// `entitle receipt`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The receipt the install wrote (`entitle deactivate --receipt FILE`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `entitle ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The report the install wrote (`entitle report --out FILE`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Runs one of the books' commands.
pub fn run(command: BooksCommand, globals: &Globals) -> Result<Outcome, Failure> {
    match command {
        BooksCommand::Receipt(args) => receipt(&args, globals),
        BooksCommand::Ingest(args) => ingest(&args, globals),
    }
}

/// `entitle --state BOOKS receipt FILE`.
fn receipt(args: &ReceiptArgs, globals: &Globals) -> Result<Outcome, Failure> {
    let text = files::read_text(&args.file, "deactivation receipt")?;
    let books = open_books(globals)?;
    let accepted = books.accept_receipt(&text)?;
    let receipt = &accepted.receipt;
    let transfers = match accepted.max_transfers {
        Some(max) => format!("{} of {max} transfer(s) used", accepted.transfers),
        None => format!("{} transfer(s) used", accepted.transfers),
    };
    let human = format!(
        "Accepted the receipt: device `{}` was deactivated for license `{}` at {} (signed by its \
         install, kid {}).\nIts slot is free in these books; {transfers}.\n\
         Next: answer the new device's request with `entitle --state BOOKS respond`.",
        receipt.fingerprint, receipt.license_id, receipt.deactivated_at, accepted.kid
    );
    Ok(Outcome::new(
        json!({
            "accepted": true,
            "license_id": receipt.license_id,
            "fingerprint": receipt.fingerprint,
            "deactivated_at": receipt.deactivated_at,
            "nonce": receipt.nonce,
            "kid": accepted.kid,
            "transfers": accepted.transfers,
            "max_transfers": accepted.max_transfers,
        }),
        human,
    ))
}

/// `entitle --state BOOKS ingest FILE`.
fn ingest(args: &IngestArgs, globals: &Globals) -> Result<Outcome, Failure> {
    let text = files::read_text(&args.file, "usage report")?;
    let books = open_books(globals)?;
    let ingested = books.ingest_report(&text)?;
    let report = &ingested.report;
    let expected = ingested
        .previous_sequence
        .map_or(1, |p| p.saturating_add(1));
    let mut human = format!(
        "Recorded report {} from device `{}`, made {} (signed by its install, kid {}).",
        report.sequence, report.fingerprint, report.created_at, ingested.kid
    );
    human.push_str(&report_lines(report));
    if report.sequence != expected {
        let _ = write!(
            human,
            "\nExpected report {expected} next, got {}.",
            report.sequence
        );
    }
    if ingested.fork {
        let _ = write!(
            human,
            "\nFORK: it does not follow report {} as these books received it: the install was \
             restored from a backup or copied, and more than one state reports as device `{}`. \
             Ask the customer which one is in use; both may be counting.",
            ingested.previous_sequence.unwrap_or(0),
            report.fingerprint
        );
    }
    if ingested.clock_ahead {
        let _ = write!(
            human,
            "\nCLOCK AHEAD: it is dated {}, more than a day after these books' clock: the \
             install's clock was set forward (periods may have been spent early).",
            report.created_at
        );
    }
    if let Some(clock) = report.clock.filter(|c| c.tampered) {
        let _ = write!(
            human,
            "\nCLOCK SET BACK: the install's clock was behind the latest time it had seen ({}).",
            clock.latest_seen
        );
    }
    if report.periods_pending > 0 {
        let _ = write!(
            human,
            "\n{} more closed period(s) wait for the install's next report.",
            report.periods_pending
        );
    }
    if ingested.missing.is_empty() {
        human.push_str("\nNo report is missing from this device.");
    } else {
        let _ = write!(
            human,
            "\nMissing from this device: {}; ask the customer for them (the install cannot \
             sign them again: each report is made once, and the books take none below the \
             last).",
            gaps_text(&ingested.missing)
        );
    }
    Ok(Outcome::new(
        json!({
            "ingested": true,
            "fingerprint": report.fingerprint,
            "sequence": report.sequence,
            "created_at": report.created_at,
            "kid": ingested.kid,
            "previous_sequence": ingested.previous_sequence,
            "expected_sequence": expected,
            "previous": report.previous,
            "fork": ingested.fork,
            "clock_ahead": ingested.clock_ahead,
            "clock": to_json(&report.clock),
            "periods_pending": report.periods_pending,
            "missing": to_json(&ingested.missing),
            "licenses": to_json(&report.licenses),
        }),
        human,
    ))
}

/// "3, 5-7" for people.
fn gaps_text(gaps: &[SequenceGap]) -> String {
    gaps.iter()
        .map(|g| {
            if g.from == g.to {
                format!("report {}", g.from)
            } else {
                format!("reports {} to {}", g.from, g.to)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
