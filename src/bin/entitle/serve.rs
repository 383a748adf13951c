//! `entitle serve`: the license server over this install's state
//! (docs/http.md), in builds with the `server` feature.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use entitle::Error;

use crate::output::{Failure, Outcome};
use crate::Globals;

/// `entitle serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen, ADDR:PORT (port 0 picks a free port; the line
    /// `listening on http://ADDR:PORT` names it).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        required_unless_present = "print_lease_pub"
    )]
    listen: Option<SocketAddr>,
    /// A file holding the admin API's bearer token (without it the admin
    /// routes are off).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// The PEM PKCS#8 Ed25519 key to sign lease tokens with [default: the
    /// install's own key, kept in the state].
    #[arg(long, value_name = "FILE")]
    lease_key: Option<PathBuf>,
    /// Serve only clients in this network (repeatable), e.g.
    /// 192.168.1.0/24; others are answered 403 FORBIDDEN (and logged).
    #[arg(long, value_name = "CIDR")]
    allow: Vec<String>,
    /// Connections served at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Connections one client address may hold open at once; more from
    /// it are closed at once, so that one address cannot starve the
    /// others.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_address: u64,
    /// Checkouts that may wait in line per pool.
    #[arg(long, value_name = "N", default_value_t = 64, conflicts_with = "books")]
    max_queue: usize,
    /// How long one request may take, reading a slow client's body
    /// included (a checkout's `wait_secs` comes on top).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_secs: u64,
    /// The longest a checkout may wait in line for a seat (`wait_secs`).
    #[arg(long, value_name = "SECS", default_value_t = 60, conflicts_with = "books",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    max_wait_secs: u64,
    /// How the request log on stderr is written: one line per request,
    /// `text` (name=value fields) or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    /// Days of history kept: events and per-minute counts of each pool,
    /// read at /admin/history and /admin/events; 0 turns history off.
    #[arg(long, value_name = "DAYS", default_value_t = 90, conflicts_with = "books",
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    history_days: u32,
    /// Print the public key clients verify lease tokens with, and exit.
    #[arg(long, conflicts_with = "books")]
    print_lease_pub: bool,
    /// Serve the vendor's books instead: online activation by license
    /// key or login, trials, sync, and the admin API to issue and revoke
    /// (docs/http.md#the-vendors-service). Needs --vendor-key.
    #[arg(long, requires = "vendor_key", conflicts_with = "lease_key")]
    books: bool,
    /// With --books: the vendor's signing key (PEM PKCS#8 Ed25519), which
    /// the books must trust.
    #[arg(long, value_name = "FILE", requires = "books")]
    vendor_key: Option<PathBuf>,
    /// With --books: the license spec each device's trial is made from
    /// (`"trial": true` and `trial_secs`); without it, trials are refused.
    #[arg(long, value_name = "FILE", requires = "books")]
    trial_spec: Option<PathBuf>,
}

/// Runs the server until SIGTERM or SIGINT.
#[cfg(feature = "server")]
pub fn run(args: &ServeArgs, globals: &Globals) -> Result<Outcome, Failure> {
    use std::io::Write;
    use std::sync::Arc;

    use entitle::server::{self, Cidr, ServerConfig};
    use entitle::token::SigningKey;
    use serde_json::json;

    use crate::files;
    use entitle::books::online::Service;

    use crate::state::{open_books_with, open_install_with};

    let mut allow = Vec::new();
    for text in &args.allow {
        allow.push(text.parse::<Cidr>()?);
    }
    let lease_key = match &args.lease_key {
        Some(path) => Some(Arc::new(SigningKey::from_pem(&files::read_text(
            path,
            "lease key file",
        )?)?)),
        None => None,
    };
    let admin_token = match &args.admin_token_file {
        Some(path) => {
            let token = files::read_text(path, "admin token file")?
                .trim()
                .to_owned();
            if token.len() < 16 {
                return Err(Error::InvalidArgument(format!(
                    "the admin token in {} is shorter than 16 characters; use a long random one",
                    path.display()
                ))
                .into());
            }
            Some(token)
        }
        None => None,
    };
    let json = globals.json;
    let announce = move |addr: SocketAddr| {
        let mut stdout = std::io::stdout().lock();
        let _ = if json {
            writeln!(stdout, "{}", json!({"listening": format!("http://{addr}")}))
        } else {
            writeln!(stdout, "listening on http://{addr}")
        };
        let _ = stdout.flush();
    };
    if args.books {
        let Some(listen) = args.listen else {
            return Err(Error::InvalidArgument("`--listen ADDR:PORT` is required".into()).into());
        };
        let Some(key_path) = &args.vendor_key else {
            return Err(Error::InvalidArgument("--books needs --vendor-key FILE".into()).into());
        };
        let vendor = SigningKey::from_pem(&files::read_text(key_path, "vendor key file")?)?;
        let books = open_books_with(globals, true)?;
        let mut service = Service::new(books, vendor)?;
        if let Some(path) = &args.trial_spec {
            service = service.trial_spec(&files::read_text(path, "trial spec file")?)?;
        }
        let mut config = ServerConfig::new(listen);
        config.admin_token = admin_token;
        config.allow = allow;
        config.max_connections = args.max_connections;
        config.max_connections_per_address =
            usize::try_from(args.max_connections_per_address).unwrap_or(usize::MAX);
        config.request_timeout = std::time::Duration::from_secs(args.request_timeout_secs);
        config.log_format = args.log_format.parse()?;
        server::log_to_stderr(&config)?;
        server::run_books(service, config, announce)?;
        eprintln!("stopped: every request acknowledged is in the books.");
        return Ok(Outcome::new(json!({"stopped": true}), "").already_printed());
    }
    // A server runs for long: its engine refreshes its view of the state
    // in the background (the CLI may change it meanwhile).
    let opened = open_install_with(globals, !args.print_lease_pub)?;
    if args.print_lease_pub {
        let key = server::lease_key(&opened.engine, lease_key)?;
        let pem = key.public_key().to_pem();
        return Ok(Outcome::new(
            json!({"kid": key.kid(), "public_key": pem}),
            pem.trim_end().to_owned(),
        ));
    }
    let Some(listen) = args.listen else {
        return Err(Error::InvalidArgument("`--listen ADDR:PORT` is required".into()).into());
    };
    let mut config = ServerConfig::new(listen);
    config.admin_token = admin_token;
    config.lease_key = lease_key;
    config.allow = allow;
    config.max_connections = args.max_connections;
    config.max_connections_per_address =
        usize::try_from(args.max_connections_per_address).unwrap_or(usize::MAX);
    config.max_queue = args.max_queue;
    config.request_timeout = std::time::Duration::from_secs(args.request_timeout_secs);
    config.max_wait_secs = args.max_wait_secs;
    config.log_format = args.log_format.parse()?;
    server::log_to_stderr(&config)?;
    config.history_days = args.history_days;
    server::run(opened.engine, config, announce)?;
    // Said on stderr: stdout carried the one line (or JSON object) saying
    // where the server listened.
    eprintln!("stopped: every request acknowledged is in the state.");
    Ok(Outcome::new(json!({"stopped": true}), "").already_printed())
}

/// Without the `server` feature: says how to get it.
#[cfg(not(feature = "server"))]
pub fn run(_args: &ServeArgs, _globals: &Globals) -> Result<Outcome, Failure> {
    Err(Error::InvalidArgument(
        "this build of entitle has no server: build it with `cargo build --release --features \
         server`"
            .into(),
    )
    .into())
}
