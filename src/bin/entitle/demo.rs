//! `entitle demo`: a self-contained walk through the whole product, in a
//! temporary directory, printed for a person to read. It uses the library
//! exactly as an application would.

use std::fmt::Write as _;

use base64::Engine as _;

use entitle::books::Books;
use entitle::device::Device;
use entitle::engine::{license_query, Applied};
use entitle::store::FileStore;
use entitle::token::{armor, sign, SigningKey, TokenType};
use entitle::{Clock, Engine, Error, ManualClock, SystemClock, Timestamp};
use serde_json::json;

use crate::output::{Failure, Outcome};

const DAY: i64 = 24 * 3600;

/// The demo's transcript, and how many steps were checked.
struct Story {
    text: String,
    steps: u32,
}

impl Story {
    fn chapter(&mut self, title: &str) {
        // The title, then the library calls behind the chapter.
        let _ = write!(self.text, "\n== {title}\n");
    }

    fn say(&mut self, line: impl AsRef<str>) {
        self.steps += 1;
        let _ = writeln!(self.text, "  {}", line.as_ref());
    }
}

fn refused(result: Result<impl std::fmt::Debug, Error>) -> Result<String, Error> {
    match result {
        Ok(value) => Err(Error::InvalidArgument(format!(
            "the demo expected a refusal here, but got {value:?}"
        ))),
        Err(e) => Ok(format!("{} ({})", e.code(), e)),
    }
}

/// Runs the demo; `now` is the starting time (`--now`, or the clock).
pub fn run(now: Option<Timestamp>) -> Result<Outcome, Failure> {
    let start = Timestamp::from_unix(now.unwrap_or_else(|| SystemClock.now()).unix());
    let dir = tempfile_dir()?;
    let mut story = Story {
        text: String::new(),
        steps: 0,
    };
    let result = walk(&mut story, dir.path(), start);
    let _ = std::fs::remove_dir_all(dir.path());
    result?;
    let _ = write!(
        story.text,
        "\nDone: {} steps, all as expected. The state lived in a temporary directory, now removed.\n",
        story.steps
    );
    Ok(Outcome::new(
        json!({"ok": true, "steps": story.steps}),
        story.text,
    ))
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

fn tempfile_dir() -> Result<TempDir, Failure> {
    let name = format!(
        "entitle-demo-{}-{}",
        std::process::id(),
        SystemClock.now().unix()
    );
    let path = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&path).map_err(|e| Error::Io {
        context: format!("creating {}", path.display()),
        source: e,
    })?;
    Ok(TempDir(path))
}

fn walk(story: &mut Story, dir: &std::path::Path, start: Timestamp) -> Result<(), Error> {
    let at = |secs: i64| start.plus_secs(secs).to_string();

    story.chapter("1. The vendor makes a key pair and issues a license  [SigningKey::generate, token::sign, armor]");
    let vendor = SigningKey::generate()?;
    story.say(format!(
        "key pair made; its kid (RFC 7638 thumbprint) is {}",
        vendor.kid()
    ));
    let license = json!({
        "v": 1, "id": "lic_demo", "product": "acme-cad", "issued_at": start.to_string(),
        "customer": "Example Ltd", "kind": "subscription",
        "expires_at": at(30 * DAY), "grace_secs": 7 * DAY,
        "seats": {"max": 3, "hard_max": 4},
        "floating": {"seats": 2, "lease_secs": 300, "borrow_max_secs": 7 * DAY},
        "features": [
            {"code": "cad"},
            {"code": "render", "limit": 4},
            {"code": "api", "consumption": {"max": 100, "overage": 20, "reset": "monthly"}}
        ]
    });
    let compact = sign(&license, &vendor, TokenType::License)?;
    let token = armor(&compact, TokenType::License);
    story.say(format!(
        "license lic_demo signed: 3 seats (4 with overage), 2 floating seats, a metered `api` feature; {} bytes armored",
        token.len()
    ));

    story.chapter("2. The install adds the license  [Engine::builder, FileStore::create, add_license, licenses]");
    let clock = ManualClock::new(start);
    let engine = Engine::builder("acme-cad")
        .trust(vendor.public_key().clone())
        .clock(clock.clone())
        .store(FileStore::create(dir.join("install"))?)
        .fingerprint("workstation-7")
        .background_refresh(false)
        .build()?;
    engine.add_license(&token)?;
    let page = engine.licenses(&license_query(None, None, None, None)?)?;
    for l in &page.items {
        story.say(format!(
            "installed {} ({}, {}), expires {}",
            l.id,
            l.kind,
            l.status,
            l.expires_at.map_or("never".into(), |t| t.to_string())
        ));
    }
    // Flip one character of the payload: a customer "editing" their seats.
    let payload_at = compact.find('.').map_or(0, |i| i + 20);
    let mut forged = compact.clone().into_bytes();
    forged[payload_at] = if forged[payload_at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let forged = String::from_utf8_lossy(&forged).into_owned();
    story.say(format!(
        "a tampered copy is refused: {}",
        refused(engine.add_license(&forged))?
    ));

    story.chapter("3. Users take seats, into the soft band  [add_user, can_add_user, status]");
    for user in ["ann", "bob", "cy"] {
        let d = engine.add_user(user, "designer")?;
        story.say(format!("add {user}: {}", d.reason()));
    }
    story.say(format!(
        "can another user be added? {}",
        engine.can_add_user().reason()
    ));
    let d = engine.add_user("dee", "reviewer")?;
    story.say(format!(
        "add dee: {} (the 4th seat is overage, allowed and flagged)",
        d.reason()
    ));
    story.say(format!(
        "add eve: {}",
        refused(engine.add_user("eve", "reviewer"))?
    ));
    let status = engine.status();
    story.say(format!(
        "status: {} active users, {} licensed seats, {} hard seats",
        status.active_user_count, status.license_seats, status.hard_seats
    ));

    story.chapter(
        "4. The application checks features (the hot path)  [feature(..).check, lease, check_feature]",
    );
    let gate = engine.feature("cad");
    story.say(format!(
        "cad: {} (a FeatureGate, resolved once: this license's seats float, and the program holds none)",
        gate.check().reason()
    ));
    let seat = engine.lease(None)?;
    story.say(format!(
        "the program takes its own seat (a lease guard, renewed in the background): cad {}",
        gate.check().reason()
    ));
    drop(seat);
    story.say(format!(
        "the guard dropped, the seat is back in the pool: cad {}",
        gate.check().reason()
    ));
    let d = engine.check_feature("cad");
    story.say(format!(
        "check_feature(\"cad\"), what the licenses allow whoever holds a seat: {} until {}",
        d.reason(),
        d.until().map_or("-".into(), |t| t.to_string())
    ));
    story.say(format!(
        "simulate: {}",
        engine.check_feature("simulate").reason()
    ));
    story.say(format!(
        "render quota (a limit summed over licenses): {}",
        engine
            .limit("render")
            .map_or("none".into(), |l| l.to_string())
    ));

    story.chapter("5. Floating seats: lease, borrow, lapse  [checkout, borrow, heartbeat]");
    let laptop = engine.checkout("laptop-1", None)?;
    story.say(format!(
        "laptop-1 leased {} until {}",
        laptop.id, laptop.expires_at
    ));
    let desk = engine.checkout("desk-2", None)?;
    story.say(format!("desk-2 leased {}", desk.id));
    story.say(format!(
        "desk-3: {}",
        refused(engine.checkout("desk-3", None))?
    ));
    let borrowed = engine.borrow(&laptop.id, 3 * DAY)?;
    story.say(format!(
        "laptop-1 borrows its seat for a trip, until {}",
        borrowed
            .borrowed_until
            .map_or("-".into(), |t| t.to_string())
    ));
    clock.advance(3600);
    story.say("an hour later desk-2 has sent no heartbeat: its lease lapsed");
    story.say(format!(
        "desk-2 heartbeat: {}",
        refused(engine.heartbeat(&desk.id))?
    ));
    let desk3 = engine.checkout("desk-3", None)?;
    story.say(format!("desk-3 now gets the freed seat: {}", desk3.id));

    story.chapter("6. Metered feature, into overage  [consume]");
    let c = engine.consume("api", 90)?;
    story.say(format!(
        "consume 90: used {} of {}",
        c.used,
        c.max.map_or("unlimited".into(), |m| m.to_string())
    ));
    let c = engine.consume("api", 20)?;
    story.say(format!(
        "consume 20: used {}, overage {} ({})",
        c.used, c.overage, c.reason
    ));
    story.say(format!(
        "consume 15: {}",
        refused(engine.consume("api", 15))?
    ));
    story.say(format!(
        "the count resets at {}",
        c.period_ends_at.map_or("never".into(), |t| t.to_string())
    ));

    story.chapter("7. An air-gapped activation round trip  [activate, activation_request, Books::record_issued_certificate, apply]");
    let locked = json!({
        "v": 1, "id": "lic_offline", "product": "acme-cad", "issued_at": start.to_string(),
        "activations": {"max": 1, "counted_by": "vendor"},
        "features": [{"code": "offline-export"}]
    });
    engine.add_license(&sign(&locked, &vendor, TokenType::License)?)?;
    story.say(format!(
        "node-locked license added; offline-export: {}",
        engine.check_feature("offline-export").reason()
    ));
    story.say(format!(
        "a local activation: {}",
        refused(engine.activate(&Device::new("workstation-7")))?
    ));
    let request = engine.activation_request(Some("lic_offline"))?;
    story.say(format!(
        "the install writes a request for device {} (a file carried to the vendor)",
        request.fingerprint
    ));
    let vendor_books = Books::builder("acme-cad")
        .trust(vendor.public_key().clone())
        .clock(clock.clone())
        .store(FileStore::create(dir.join("vendor"))?)
        .background_refresh(false)
        .build()?;
    vendor_books.add_license(&sign(&locked, &vendor, TokenType::License)?)?;
    vendor_books.record_issued_certificate(&request, None)?;
    let cert = json!({"v": 1, "license_id": request.license_id, "fingerprint": request.fingerprint,
        "issued_at": clock.now().to_string(), "install_key": request.install_key});
    let cert = armor(
        &sign(&cert, &vendor, TokenType::Machine)?,
        TokenType::Machine,
    );
    story.say("the vendor records the activation in its own books and signs a machine certificate");
    let other = entitle::engine::ActivationRequest {
        fingerprint: "someone-elses-pc".into(),
        ..request.clone()
    };
    story.say(format!(
        "a second device asks: {}",
        refused(vendor_books.record_issued_certificate(&other, None))?
    ));
    match engine.apply(&cert)? {
        Applied::Machine { fingerprint, .. } => {
            story.say(format!("certificate applied for {fingerprint}"))
        }
        other => story.say(format!("applied {other:?}")),
    }
    story.say(format!(
        "offline-export: {}",
        engine.check_feature("offline-export").reason()
    ));

    story.chapter("8. The vendor rotates its signing key  [apply, add_license]");
    let next_key = SigningKey::generate()?;
    let renewal = json!({
        "v": 1, "id": "lic_addon", "product": "acme-cad", "issued_at": start.to_string(),
        "features": [{"code": "simulate"}]
    });
    let addon = sign(&renewal, &next_key, TokenType::License)?;
    story.say(format!(
        "a license signed with the new key, before the install trusts it: {}",
        refused(engine.add_license(&addon))?
    ));
    let rotation = json!({
        "v": 1, "product": "acme-cad", "issued_at": start.plus_secs(60).to_string(),
        "keys": [base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(next_key.public_key().as_bytes())]
    });
    engine.apply(&sign(&rotation, &vendor, TokenType::Keys)?)?;
    engine.add_license(&addon)?;
    story.say(format!(
        "the old key signs a rotation; once applied, the add-on installs: simulate {}",
        engine.check_feature("simulate").reason()
    ));

    story.chapter("9. Time passes: expiry, grace, and beyond  [check_feature, consume]");
    clock.set(start.plus_secs(30 * DAY + 3600));
    let d = engine.check_feature("cad");
    story.say(format!(
        "30 days on, cad: {} until {}",
        d.reason(),
        d.until().map_or("-".into(), |t| t.to_string())
    ));
    clock.set(start.plus_secs(38 * DAY));
    story.say(format!(
        "38 days on, cad: {}",
        engine.check_feature("cad").reason()
    ));
    story.say(format!(
        "the perpetual node-locked feature still works: {}",
        engine.check_feature("offline-export").reason()
    ));
    story.say(format!(
        "metering api: {}",
        refused(engine.consume("api", 1))?
    ));

    story.chapter("10. Someone sets the clock back  [refresh, check_feature]");
    engine.refresh()?;
    clock.set(start.plus_secs(20 * DAY));
    story.say(format!(
        "clock set back 18 days; cad: {} (time-bound rights are held)",
        engine.check_feature("cad").reason()
    ));
    story.say(format!(
        "offline-export (perpetual): {}",
        engine.check_feature("offline-export").reason()
    ));

    story.chapter("11. Back to the vendor: a usage report, and a device retired offline  [usage_report, deactivate_with_receipt, Books::accept_receipt, Books::ingest_report]");
    let report = engine.usage_report()?;
    story.say(format!(
        "the install signs usage report {} with its own key {} (a file carried to the vendor)",
        report.report.sequence, report.kid
    ));
    let ingested = vendor_books.ingest_report(&report.token)?;
    story.say(format!(
        "the vendor's books verify it against the key the request carried, and record it: \
         {} license(s) accounted for",
        ingested.report.licenses.len()
    ));
    story.say(format!(
        "the same report again: {}",
        refused(vendor_books.ingest_report(&report.token))?
    ));
    let receipt = engine.deactivate_with_receipt(&request.fingerprint, Some("lic_offline"))?;
    story.say(format!(
        "{} is retired offline, with a receipt the install signs; offline-export: {}",
        receipt.receipt.fingerprint,
        engine.check_feature("offline-export").reason()
    ));
    let accepted = vendor_books.accept_receipt(&receipt.token)?;
    story.say(format!(
        "the books accept the receipt and free the slot ({} transfer used)",
        accepted.transfers
    ));
    vendor_books.record_issued_certificate(&other, None)?;
    story.say(format!(
        "so the second device ({}) can be activated now",
        other.fingerprint
    ));
    story.say(format!(
        "the receipt again: {}",
        refused(vendor_books.accept_receipt(&receipt.token))?
    ));
    Ok(())
}
