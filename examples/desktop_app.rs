//! A desktop application, by task: what a CAD program linking `entitle`
//! does from start-up to its About box.
//!
//! ```sh
//! cargo run --example desktop_app --features server,client
//! ```
//!
//! (`client` is what the application links for its floating seats;
//! `server` only runs the site's license server in this same process, so
//! the example needs no second terminal.)
//!
//! The vendor's side (its key, the licenses it signs) is simulated at the
//! top so the example runs anywhere; in a real program the public key is
//! compiled in and the license file comes from the customer. The state
//! lives in a temporary directory here; a real program keeps it in the
//! user's data directory.

use entitle::client::Client;
use entitle::license::{Activations, Consumption, Feature, Floating, License, Reset, Seats};
use entitle::store::FileStore;
use entitle::token::{armor, SigningKey, TokenType};
use entitle::{Clock, Engine, Error, SystemClock};

fn main() -> Result<(), Error> {
    // ---- the vendor, elsewhere --------------------------------------
    let vendor = SigningKey::generate()?;
    let vendor_pub = vendor.public_key().to_pem(); // compiled into the app
    let now = SystemClock.now();
    // A trial compiled into every copy: 14 days from first use here.
    let trial = License::builder("acme-cad")
        .id("trial")
        .issued_at(now)
        .trial_secs(14 * 24 * 3600)
        .feature(Feature::new("edit"))
        .sign(&vendor)?;
    // What the customer bought: node-locked to 2 machines, 100 cloud
    // exports a month; and for the whole site, a floating render pool of
    // 1 seat, served by the site's license server.
    let site = License::builder("acme-cad")
        .id("lic_example_ltd_site")
        .issued_at(now)
        .customer("Example Ltd")
        .feature(Feature::new("render").with_floating(Floating::new(1, 300)))
        .sign(&vendor)?;
    let bought = License::builder("acme-cad")
        .id("lic_example_ltd")
        .issued_at(now)
        .customer("Example Ltd")
        .activations(Activations::up_to(2))
        .seats(Seats::new(5))
        .feature(Feature::new("edit"))
        .feature(
            Feature::new("cloud_export")
                .with_consumption(Consumption::up_to(100).with_reset(Reset::Monthly)),
        )
        .sign(&vendor)?;
    let license_file = armor(&bought, TokenType::License);

    // ---- the site's license server, elsewhere on the LAN -------------------
    // `entitle serve` on the administrator's machine; here, a thread.
    let server_engine = Engine::builder("acme-cad")
        .trust(vendor.public_key().clone())
        .in_memory()
        .build()?;
    server_engine.add_license(&site)?;
    // The key its leases are signed with, which the application is
    // configured with (`entitle serve --print-lease-pub`).
    let server_key = entitle::server::lease_key(&server_engine, None)?
        .public_key()
        .clone();
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let config = entitle::server::ServerConfig::new(([127, 0, 0, 1], 0).into());
        entitle::server::run(server_engine, config, move |addr| {
            let _ = ready.send(addr);
        })
    });
    let server_url = format!("http://{}", listening.recv().expect("the server starts"));

    // ---- start-up ------------------------------------------------------
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let store = match FileStore::open(data_dir.path()) {
        Ok(store) => store,
        Err(Error::StateMissing { .. }) => FileStore::create(data_dir.path())?,
        Err(other) => return Err(other),
    };
    // `Engine::builder` takes this machine's fingerprint from the
    // operating system's machine id; `fingerprint()` is `None` where the
    // OS gives none (node-locked rights are then `DEVICE_UNKNOWN`).
    let engine = Engine::builder("acme-cad")
        .trust(entitle::token::PublicKey::from_pem(&vendor_pub)?)
        .store(store)
        .build()?;
    println!(
        "Engine::builder(..).store(..).build(): this machine is {}",
        engine.fingerprint().unwrap_or("unidentified")
    );

    // First run: the compiled-in trial. Its window starts now, on this
    // install, and removing and re-adding it never restarts it.
    engine.add_license(&trial)?;
    let edit = engine.feature("edit"); // resolve once, check often
    println!(
        "feature(\"edit\").check() under the trial: {} (until {})",
        edit.check().reason(),
        edit.check().until().map_or("-".into(), |t| t.to_string())
    );

    // ---- the customer enters the license they bought ---------------------
    // A damaged paste first: the dialog says so in the user's words (and
    // the log keeps the code and the details for support).
    if let Err(e) = engine.add_license("-----BEGIN ENTITLE LICENSE-----\nnot really") {
        println!(
            "add_license(damaged): {} [{}: {e}]",
            e.user_message(),
            e.code()
        );
    }
    engine.add_license(&license_file)?;
    engine.add_license(&site)?; // the site's license, as the server holds it
    match engine.activate_this_device() {
        Ok(ids) => println!("activate_this_device(): activated for {ids:?}"),
        // What a dialog shows: the user's words, not a code.
        Err(e) => println!(
            "activate_this_device(): {} [{}]",
            e.user_message(),
            e.code()
        ),
    }
    println!(
        "is_activated(\"lic_example_ltd\"): {}",
        engine.is_activated("lic_example_ltd")
    );

    // ---- using the product -------------------------------------------------
    // A floating feature needs a seat held by this program, here from the
    // site's license server. The client is made from the engine: the seat
    // it holds counts in the engine's gates, so the program gates every
    // feature the one way, `feature(code).check()`.
    let render = engine.feature("render");
    println!(
        "feature(\"render\").check() before a seat: {}",
        render.check().reason()
    );
    let client = Client::connect(&engine, &server_url, server_key)?;
    match client.lease(Some("render")) {
        Ok(seat) => {
            println!(
                "client.lease(Some(\"render\")): held until {}; feature(\"render\").check(): {}",
                seat.lease()
                    .map_or("-".into(), |l| l.expires_at.to_string()),
                render.check().reason()
            );
            drop(seat); // the seat goes back to the server's pool
            println!(
                "after the seat is dropped, feature(\"render\").check(): {}",
                render.check().reason()
            );
        }
        // Unreachable (SERVER_UNREACHABLE), full (FLOATING_EXHAUSTED, with
        // `retry_at`; `lease_waiting` waits in the server's line) or the
        // wrong server key (LEASE_KEY_MISMATCH): the user's words.
        Err(e) => println!("client.lease(Some(\"render\")): {}", e.user_message()),
    }

    // A metered feature: charge what is used; the gate says when the
    // month's quota runs out.
    let export = engine.feature("cloud_export");
    match engine.consume("cloud_export", 1) {
        Ok(used) => println!(
            "consume(\"cloud_export\", 1): {} of {} this month; gate: {}",
            used.used,
            used.max.map_or("unlimited".into(), |m| m.to_string()),
            export.check().reason()
        ),
        Err(e) => println!("consume: {}", e.user_message()),
    }

    // Something the license does not include: tell the user plainly.
    let denied = engine.check_feature("simulate");
    if !denied.allowed() {
        println!("check_feature(\"simulate\"): {}", denied.message());
    }

    // ---- Help > About ----------------------------------------------------------
    println!("\nlicense_infos(), as an About box:");
    for info in engine.license_infos() {
        println!(
            "  {} ({}{})",
            info.name.as_deref().unwrap_or(&info.id),
            info.status,
            if info.trial { ", trial" } else { "" }
        );
        if let Some(customer) = info.customer.as_ref().and_then(|c| c.as_str()) {
            println!("    licensed to {customer}");
        }
        if let Some(end) = info.expires_at {
            println!("    valid until {end}");
        }
        if let Some(a) = &info.activations {
            println!(
                "    computers: {} of {}",
                a.used,
                a.max.map_or("any".into(), |m| m.to_string())
            );
        }
        for feature in &info.features {
            match &feature.consumption {
                Some(c) => println!(
                    "    {}: {} of {} used",
                    feature.code,
                    c.used,
                    c.max.map_or("unlimited".into(), |m| m.to_string())
                ),
                None => println!("    {}", feature.code),
            }
        }
    }
    Ok(())
}
